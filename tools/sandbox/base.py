"""A local JSON-over-HTTP server that stands in for an external service, with injectable faults.

`JsonSandbox` runs a `ThreadingHTTPServer` in a background thread on 127.0.0.1 (an ephemeral
port unless one is given), speaks the common protocol of docs/adapters.md and checks every
request's signature exactly as a real service would: a missing or unknown client, a bad
signature, a timestamp more than `max_skew` seconds off, or a nonce seen before → 401.

It is written from the document, not from our client: it imports nothing from `apps`, so a
client that drifts from the protocol fails its tests.

Use it as a context manager::

    with TaxSandbox() as sandbox:
        verifier = HttpTaxVerifier(sandbox.base_url, sandbox.client_id, sandbox.secret, 0.5)
        sandbox.faults.next(status=503).next(delay=2.0)   # 1st request 503, 2nd slow
        ...
        assert sandbox.call_count == 3

Faults apply to requests in arrival order, before authentication (they model the network and
the service's infrastructure): `delay` (seconds, then the normal answer — or the fault's),
`status` with an optional `body`, `malformed` (a 200 with a truncated JSON body), `drop` (the
connection is closed without any reply). `faults.next()` with no argument lets one request
through untouched, so `faults.next().next(status=503)` fails the second request.

For demos each service module runs on its own: `python -m tools.sandbox.tax_service --port 8701`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024
_NONCE = re.compile(r"[0-9a-f]{16,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
MALFORMED_BODY = b'{"result": "found", "invoice": {"number": '

Route = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Fault:
    """What to do to one request; all defaults means "let it through"."""

    delay: float = 0.0
    status: int | None = None
    body: dict[str, Any] | None = None
    malformed: bool = False
    drop: bool = False


class FaultPlan:
    """A thread-safe queue of faults, one per incoming request, in arrival order."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()

    def next(
        self,
        *,
        delay: float = 0.0,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        malformed: bool = False,
        drop: bool = False,
        times: int = 1,
    ) -> FaultPlan:
        """Queue a fault for the next `times` requests not yet planned; returns the plan."""
        fault = Fault(delay=delay, status=status, body=body, malformed=malformed, drop=drop)
        with self._lock:
            self._queue.extend([fault] * times)
        return self

    def take(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)


@dataclass
class ReceivedRequest:
    """One request as the sandbox saw it, and how it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # the status answered; None: no reply (dropped, gone)
    auth_error: str = ""
    fault: Fault | None = None
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode_json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, default=_json_default).encode("utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler asleep in a `delay` fault must not hold up stop()
    sandbox: JsonSandbox


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no stale keep-alive surprises
    server_version = "LotteryInvoiceSandbox/1"
    sys_version = ""
    timeout = 10  # seconds a client may take to send its request

    def do_POST(self) -> None:
        self.server.sandbox._handle(self)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class JsonSandbox:
    """Base of the service sandboxes: transport, signature checks, faults and counters.

    Subclasses define `routes()` — `{(method, path): handler(payload) -> (status, reply)}` —
    and may set `rate_limit_error` (the `error` of a 429 fault). Handlers run under `self.lock`.
    """

    service_name = "sandbox"
    rate_limit_error = "rate_limited"
    default_port = 0

    def __init__(
        self,
        *,
        client_id: str = "sandbox-client",
        secret: str | None = None,
        port: int = 0,
        max_skew: int = 300,
        clock: Callable[[], float] = time.time,
    ):
        self.client_id = client_id
        self.secret = secret or secrets.token_hex(24)
        self.clients: dict[str, str] = {client_id: self.secret}
        self.max_skew = max_skew
        self.clock = clock
        self.faults = FaultPlan()
        self.requests: list[ReceivedRequest] = []
        self.lock = threading.RLock()
        self._requested_port = port
        self._nonces: dict[tuple[str, str], float] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> JsonSandbox:
        if self._server is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        server = _Server((HOST, self._requested_port), _Handler)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.service_name}-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a `delay` fault
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> JsonSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # --- counters ----------------------------------------------------------------------------

    @property
    def call_count(self) -> int:
        """Requests received (faulted, refused and answered alike)."""
        with self.lock:
            return len(self.requests)

    def calls(self, path: str | None = None, *, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (path is None or r.path == path) and (status is None or r.status == status)
            )

    @property
    def last_request(self) -> ReceivedRequest:
        with self.lock:
            return self.requests[-1]

    def reset(self) -> None:
        """Forget received requests and planned faults (not the seeded data)."""
        with self.lock:
            self.requests.clear()
        self.faults.clear()

    # --- to override -------------------------------------------------------------------------

    def routes(self) -> dict[tuple[str, str], Route]:
        raise NotImplementedError

    # --- request handling --------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        target = h.path
        path = urlsplit(target).path
        length_text = h.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            self._reply(h, None, 400, {"error": "invalid_request"})
            return
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self._reply(h, None, 413, {"error": "body_too_large"})
            return
        body = h.rfile.read(length) if length else b""
        record = ReceivedRequest(
            method=h.command,
            path=path,
            headers=dict(h.headers.items()),
            body=body,
        )
        fault = self.faults.take()
        record.fault = fault
        with self.lock:
            self.requests.append(record)
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
                return  # shutting down: no reply
            if fault.drop:
                h.close_connection = True
                return
            if fault.malformed:
                self._send(h, record, fault.status or 200, MALFORMED_BODY)
                return
            if fault.status is not None or fault.body is not None:
                status = fault.status or 200
                self._reply(h, record, status, fault.body or self._fault_body(status))
                return
        route = self.routes().get((h.command, path))
        if route is None:
            known = any(p == path for _m, p in self.routes())
            status = 405 if known else 404
            self._reply(
                h, record, status, {"error": "method_not_allowed" if known else "not_found"}
            )
            return
        auth_error = self._authenticate(h, target, body)
        if auth_error:
            record.auth_error = auth_error
            self._reply(h, record, 401, {"error": auth_error})
            return
        try:
            payload = json.loads(body.decode("utf-8"), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._reply(h, record, 400, {"error": "invalid_json"})
            return
        if not isinstance(payload, dict):
            self._reply(h, record, 400, {"error": "invalid_json"})
            return
        with self.lock:
            status, reply = route(payload)
        self._reply(h, record, status, reply)

    def _fault_body(self, status: int) -> dict[str, Any]:
        if status == 429:
            return {"error": self.rate_limit_error}
        if status >= 500:
            return {"error": "unavailable"}
        return {"error": "fault"}

    def _authenticate(self, h: _Handler, target: str, body: bytes) -> str:
        """The 401 error token, or "" when the signature holds (docs/adapters.md, "Signing")."""
        client_id = h.headers.get("X-Client-Id", "")
        timestamp = h.headers.get("X-Timestamp", "")
        nonce = h.headers.get("X-Nonce", "")
        signature = h.headers.get("X-Signature", "")
        if not (client_id and timestamp and nonce and signature):
            return "missing_signature"
        secret = self.clients.get(client_id)
        if secret is None:
            return "unknown_client"
        if not _TIMESTAMP.fullmatch(timestamp) or not _NONCE.fullmatch(nonce):
            return "bad_signature"
        message = "\n".join([timestamp, nonce, h.command, target, hashlib.sha256(body).hexdigest()])
        expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return "bad_signature"
        now = self.clock()
        if abs(now - int(timestamp)) > self.max_skew:
            return "stale_timestamp"
        with self.lock:
            horizon = now - 2 * self.max_skew
            for key in [k for k, seen in self._nonces.items() if seen < horizon]:
                del self._nonces[key]
            if (client_id, nonce) in self._nonces:
                return "replayed_nonce"
            self._nonces[(client_id, nonce)] = now
        return ""

    def _reply(
        self, h: _Handler, record: ReceivedRequest | None, status: int, data: dict[str, Any]
    ) -> None:
        self._send(h, record, status, encode_json(data))

    def _send(self, h: _Handler, record: ReceivedRequest | None, status: int, raw: bytes) -> None:
        if record is not None:
            record.status = status  # before writing: the client may read it at once
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
        except OSError:  # the client gave up (its timeout) and closed the connection
            if record is not None:
                record.status = None


# --- Command line ---------------------------------------------------------------------------


def run_cli(
    factory: Callable[..., JsonSandbox],
    *,
    description: str,
    default_port: int,
    argv: list[str] | None = None,
    configure: Callable[[JsonSandbox, argparse.Namespace], None] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Serve one sandbox on 127.0.0.1 until Ctrl-C (the demos' `python -m tools.sandbox.…`).

    The secret comes from `--secret`, else the `SANDBOX_SECRET` environment variable, else it
    is generated and printed, so it can be copied into the matching `*_SECRET` setting.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port, help="port on 127.0.0.1")
    parser.add_argument("--client-id", default="sandbox-client")
    parser.add_argument(
        "--secret", default=os.environ.get("SANDBOX_SECRET", ""), help="shared HMAC secret"
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sandbox = factory(client_id=args.client_id, secret=args.secret or None, port=args.port)
    if configure is not None:
        configure(sandbox, args)
    with sandbox:
        print(f"{description} on {sandbox.base_url}")
        print(f"  client id: {sandbox.client_id}")
        if not args.secret:
            print(f"  secret:    {sandbox.secret}  (generated; pass --secret to fix it)")
        print("Ctrl-C (or SIGTERM) stops it.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print("stopped", flush=True)
