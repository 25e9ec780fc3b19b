"""Fixtures for prize payouts: the payment-gateway sandbox on 127.0.0.1, settings pointing at it,
and a receiver that records the provider's callbacks.

- `payment_sandbox`: a started `PaymentSandbox` (`.url`, `.control(fault, times=…, **options)`,
  `.transfers()`, `.paid()`, `.settle(…)`, `.callbacks`), fast: PROCESSING transfers settle
  after 0.3 s and callbacks go out at once.
- `payment_callbacks`: a `CallbackReceiver` (`.url`, `.received`, `.wait_for(n)`, `.answer`).
- `payment_gateway_settings`: the `PAYMENT_GATEWAY_*` settings for the sandbox (client timeout
  `PAYMENT_CLIENT_TIMEOUT`, callbacks to `payment_callbacks`); yields the sandbox.
- `payment_gateway`: `get_payment_gateway()` under those settings.

A callback the receiver recorded can be handed to the gateway as Django would:
`gateway.parse_callback(method=c.method, path=c.path, headers=c.headers, body=c.body)`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from tools.sandbox.payment_gateway import PaymentSandbox

# Short enough for fast fault tests, long enough for a busy 2-core machine.
PAYMENT_CLIENT_TIMEOUT = 0.5
# A `timeout` fault sleeps this long: well past the client's patience.
PAYMENT_TIMEOUT_FAULT_SECONDS = 3.0


@dataclass
class ReceivedCallback:
    method: str
    path: str  # the request target as received (what `request.get_full_path()` gives)
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)


class _CallbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    receiver: CallbackReceiver


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        with receiver.lock:
            receiver.received.append(
                ReceivedCallback(self.command, self.path, dict(self.headers.items()), body)
            )
            status = receiver.answer
            receiver.arrived.notify_all()
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CallbackReceiver:
    """Stands in for our callback endpoint: records every POST and answers `answer` (200)."""

    path = "/api/v1/payments/callback/"

    def __init__(self) -> None:
        self.received: list[ReceivedCallback] = []
        self.answer = 200
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self._server = _CallbackServer(("127.0.0.1", 0), _CallbackHandler)
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedCallback]:
        """Wait until at least `count` callbacks arrived; returns them all (fails on timeout)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} callbacks within {timeout} s, got {len(self.received)}"
                    )
                self.arrived.wait(left)
            return list(self.received)


@pytest.fixture
def payment_sandbox():
    sandbox = PaymentSandbox(
        secret="sandbox-payment-secret-0123456789",
        callback_secret="sandbox-callback-secret-0123456789",
        processing_seconds=0.3,
        callback_delay=0.0,
        callback_retry_seconds=0.05,
    )
    with sandbox:
        yield sandbox


@pytest.fixture
def payment_callbacks():
    receiver = CallbackReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def payment_gateway_settings(payment_sandbox, payment_callbacks):
    with override_settings(
        PAYMENT_GATEWAY_BASE_URL=payment_sandbox.url,
        PAYMENT_GATEWAY_CLIENT_ID=payment_sandbox.client_id,
        PAYMENT_GATEWAY_SECRET=payment_sandbox.secret,
        PAYMENT_GATEWAY_CALLBACK_SECRET=payment_sandbox.callback_secret,
        PAYMENT_GATEWAY_TIMEOUT=PAYMENT_CLIENT_TIMEOUT,
        PAYMENT_GATEWAY_NOTIFY_URL=payment_callbacks.url,
    ):
        yield payment_sandbox


@pytest.fixture
def payment_gateway(payment_gateway_settings):
    from apps.prizes.gateway import get_payment_gateway

    return get_payment_gateway()


# --- Added for the prize service tests (tests/prizes/test_*.py beyond the gateway) -------------


@pytest.fixture
def identity_sandbox():
    """The identity service sandbox on 127.0.0.1, with the `IDENTITY_VERIFIER_*` settings
    pointing at it (payout account ownership checks). Seed it with `add_person`/`add_account`
    (or `tests.prizes.helpers.payee` and `payout_account`)."""
    from tools.sandbox.identity_service import IdentitySandbox

    with (
        IdentitySandbox() as server,
        override_settings(
            IDENTITY_VERIFIER_BACKEND="http",
            IDENTITY_VERIFIER_URL=server.base_url,
            IDENTITY_VERIFIER_CLIENT_ID=server.client_id,
            IDENTITY_VERIFIER_SECRET=server.secret,
            IDENTITY_VERIFIER_TIMEOUT=PAYMENT_CLIENT_TIMEOUT,
        ),
    ):
        yield server


@pytest.fixture
def finance(db):
    """Finance staff: `maker`, `checker`, `checker2` and `officer` (see helpers.finance_team)."""
    from tests.prizes.helpers import finance_team

    return finance_team()


@pytest.fixture
def prize_world(payment_gateway_settings, payment_callbacks, identity_sandbox, finance):
    """A funded campaign (100 000.00), one verified winner known to the identity register, the
    finance team, the payment sandbox (`sandbox`) and callback receiver (`callbacks`)."""
    from types import SimpleNamespace

    from tests.prizes.helpers import payee, prize_campaign

    return SimpleNamespace(
        sandbox=payment_gateway_settings,
        callbacks=payment_callbacks,
        identity=identity_sandbox,
        team=finance,
        campaign=prize_campaign(),
        consumer=payee(identity_sandbox, real_name="张三"),
    )
