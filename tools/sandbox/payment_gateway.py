"""Sandbox of the payment gateway (docs/adapters.md, "Payment gateway").

Speaks the transfer protocol on 127.0.0.1, signed as in §1.1:

- `POST /v1/transfers` executes a transfer at most once per `request_no` (idempotent: the same
  number with the same body answers the same transfer; with another body → 409
  `{"error": "request_no_conflict"}`);
- `GET /v1/transfers/{request_no}` answers its current state, or 404
  `{"error": "transfer_not_found"}`;
- `GET /v1/statements/{YYYY-MM-DD}` answers the CSV statement of the transfers finished that
  day (China time);
- each transfer that reaches a final status is reported to its `notify_url` by a callback signed
  with the callback secret, from a background thread, retried until the receiver answers 2xx.

The outcome depends on the last four digits of the account number: `…4000` FAILED
`account_invalid`, `…4001` FAILED `account_frozen`, `…4002` FAILED `name_mismatch`, `…5000`
PROCESSING then SUCCESS after `processing_seconds`, `…5001` PROCESSING then FAILED
`account_closed`, `…5009` PROCESSING until settled by hand; any other account: SUCCESS at once.
With a `balance`, a transfer above what is left FAILS with `insufficient_funds`.

Faults are injected per next N requests through the unsigned control endpoint
`POST /_sandbox/faults` (127.0.0.1 only) or `sandbox.control(...)`; the executed transfers are
listed by `GET /_sandbox/transfers` or `sandbox.transfers()` — tests assert "paid exactly once"
with it. It imports nothing from `apps`.

Run alone: `python -m tools.sandbox.payment_gateway --port 8704 --secret … --callback-secret …`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from .base import (
    MALFORMED_BODY,
    MAX_BODY_BYTES,
    JsonSandbox,
    ReceivedRequest,
    Route,
    _Handler,
    encode_json,
    run_cli,
)

logger = logging.getLogger(__name__)

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
TRANSFERS_PATH = "/v1/transfers"
STATEMENTS_PREFIX = "/v1/statements/"
CONTROL_PREFIX = "/_sandbox/"
STATEMENT_HEADER = ("request_no", "provider_ref", "amount", "status", "finished_at")
ACCOUNT_TYPES = frozenset({"bank_card", "wallet"})
MAX_FIELD_LENGTH = 64
MAX_MEMO_LENGTH = 128
_REQUEST_NO = re.compile(r"[A-Z0-9-]{8,40}")
_AMOUNT = re.compile(r"[0-9]{1,12}\.[0-9]{2}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
GARBLED_BODY = b'{"request_no": "'

SUCCESS, PROCESSING, FAILED = "SUCCESS", "PROCESSING", "FAILED"

# Outcome by the last four digits of the account number (documented in docs/adapters.md):
# FAILED at once with (fail_code, fail_message), or PROCESSING and later settled to
# (status, fail_code, fail_message) — None: PROCESSING until `settle()`. Others: SUCCESS.
FAIL_AT_ONCE = {
    "4000": ("account_invalid", "收款账户不存在或无效"),
    "4001": ("account_frozen", "收款账户已冻结"),
    "4002": ("name_mismatch", "户名与账户不符"),
}
SETTLE_LATER: dict[str, tuple[str, str, str] | None] = {
    "5000": (SUCCESS, "", ""),
    "5001": (FAILED, "account_closed", "收款账户已销户"),
    "5009": None,  # stays PROCESSING until settle()
}

# Faults of the transport (they decide how a reply is delivered, or not) and of the rest.
TRANSPORT_FAULTS = frozenset({"timeout", "error_5xx", "lost_reply", "garbled"})
CALLBACK_FAULTS = frozenset({"duplicate_callback", "forged_callback"})
STATEMENT_FAULTS = frozenset({"statement_mismatch"})
FAULT_KINDS = TRANSPORT_FAULTS | CALLBACK_FAULTS | STATEMENT_FAULTS
ENDPOINTS = frozenset({"transfer", "query", "statement", "any"})
# Whether a transport fault on `POST /v1/transfers` still executes the transfer, by default.
EXECUTES_BY_DEFAULT = {"timeout": True, "error_5xx": False, "lost_reply": True, "garbled": True}


class ControlError(ValueError):
    """A malformed control request (400 from the control endpoint)."""


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, CHINA).isoformat(timespec="seconds")


@dataclass
class Transfer:
    """One transfer as the provider keeps it: created once per request_no, never re-executed."""

    request_no: str
    amount: Decimal
    currency: str
    account_type: str
    account_no: str
    account_name: str
    memo: str
    notify_url: str
    provider_ref: str
    status: str
    created_at: float
    fail_code: str = ""
    fail_message: str = ""
    finished_at: float | None = None
    settle_to: tuple[str, str, str] | None = None
    held: bool = False  # the amount is taken from the balance while PROCESSING
    callbacks_dispatched: int = 0

    def same_request(self, other: dict[str, Any]) -> bool:
        """Whether a retry carries the same transfer (notify_url aside)."""
        return (
            self.amount == other["amount"]
            and self.currency == other["currency"]
            and self.account_type == other["account_type"]
            and self.account_no == other["account_no"]
            and self.account_name == other["account_name"]
            and self.memo == other["memo"]
        )

    def reply(self) -> dict[str, Any]:
        """The protocol's transfer object."""
        return {
            "request_no": self.request_no,
            "status": self.status,
            "provider_ref": self.provider_ref,
            "amount": f"{self.amount:.2f}",
            "fail_code": self.fail_code,
            "fail_message": self.fail_message,
            "finished_at": _iso(self.finished_at),
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything the sandbox knows (the control endpoint's view; includes the account)."""
        return {
            **self.reply(),
            "currency": self.currency,
            "account_type": self.account_type,
            "account_no": self.account_no,
            "account_name": self.account_name,
            "memo": self.memo,
            "notify_url": self.notify_url,
            "created_at": _iso(self.created_at),
            "paid": self.status == SUCCESS,
            "callbacks_dispatched": self.callbacks_dispatched,
        }


@dataclass
class PaymentFault:
    """A fault for the next `remaining` requests (or callbacks, or statements) it applies to."""

    kind: str
    remaining: int
    endpoint: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SentCallback:
    """One callback POST the sandbox made (each attempt and each copy is one entry)."""

    request_no: str
    url: str
    body: bytes
    headers: dict[str, str]
    forged: bool
    attempt: int
    answered: int | None = None  # the receiver's HTTP status; None: no answer
    error: str = ""
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_no": self.request_no,
            "url": self.url,
            "body": self.body.decode("utf-8"),
            "forged": self.forged,
            "attempt": self.attempt,
            "answered": self.answered,
            "error": self.error,
        }


def _sign(secret: str, *, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    """§1.1 of docs/adapters.md, written out again: the sandbox shares no code with the client."""
    message = "\n".join([timestamp, nonce, method, path, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


class PaymentSandbox(JsonSandbox):
    """In-memory payment provider speaking the transfer protocol, with injectable faults."""

    service_name = "payment-gateway"
    default_port = 8704

    def __init__(
        self,
        *,
        callback_secret: str | None = None,
        processing_seconds: float = 1.0,
        callback_delay: float = 0.05,
        callback_attempts: int = 3,
        callback_retry_seconds: float = 0.2,
        callback_timeout: float = 2.0,
        balance: Decimal | str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.callback_secret = callback_secret or secrets.token_hex(24)
        self.processing_seconds = processing_seconds
        self.callback_delay = callback_delay
        self.callback_attempts = callback_attempts
        self.callback_retry_seconds = callback_retry_seconds
        self.callback_timeout = callback_timeout
        self.balance = Decimal(str(balance)) if balance is not None else None
        self.callbacks: list[SentCallback] = []
        self._transfers: dict[str, Transfer] = {}
        # Every execution, in order: the provider's own journal. A request_no appearing twice
        # here would be a double payment (tests assert it never does).
        self.executions: list[str] = []
        self._payment_faults: list[PaymentFault] = []
        self._timers: list[threading.Timer] = []
        self._serial = 0

    def routes(self) -> dict[tuple[str, str], Route]:  # routing is done in `_handle`
        return {}

    @property
    def url(self) -> str:
        return self.base_url

    def start(self) -> PaymentSandbox:
        super().start()
        # socketserver listens with a backlog of 5: parallel payout workers would see dropped
        # connections (a client-side timeout), which is a fault the sandbox must not invent.
        if self._server is not None:
            self._server.socket.listen(128)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self.lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        super().stop()

    # --- the Python side of the control endpoint -------------------------------------------

    def control(
        self, fault: str, *, times: int = 1, endpoint: str | None = None, **options: Any
    ) -> int:
        """Queue `fault` for the next `times` requests it applies to; returns faults pending.

        Transport faults (`timeout`, `error_5xx`, `lost_reply`, `garbled`) apply to `endpoint`
        (`transfer` by default, or `query`, `statement`, `any`); callback faults to the next
        callbacks; `statement_mismatch` to the next statements. See docs/adapters.md.
        """
        if fault not in FAULT_KINDS:
            raise ControlError(f"unknown fault {fault!r}")
        if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 1000:
            raise ControlError("times must be a whole number from 1 to 1000")
        endpoint = endpoint or "transfer"
        if endpoint not in ENDPOINTS:
            raise ControlError(f"endpoint must be one of {sorted(ENDPOINTS)}")
        _check_options(fault, options)
        with self.lock:
            self._payment_faults.append(PaymentFault(fault, times, endpoint, dict(options)))
            return sum(f.remaining for f in self._payment_faults)

    def clear_faults(self) -> None:
        with self.lock:
            self._payment_faults.clear()
        self.faults.clear()

    def reset(self) -> None:
        """Forget received requests and every planned fault (not the transfers)."""
        super().reset()
        self.clear_faults()

    def clear_transfers(self) -> None:
        """Forget every transfer and callback (a fresh provider)."""
        with self.lock:
            self._transfers.clear()
            self.executions.clear()
            self.callbacks.clear()

    def transfers(self) -> list[dict[str, Any]]:
        """Every transfer received, in arrival order (what `GET /_sandbox/transfers` lists), each
        with `executions`: how many times the provider's journal shows it executed (always 1)."""
        with self.lock:
            return [
                {**t.as_dict(), "executions": self.executions.count(t.request_no)}
                for t in self._transfers.values()
            ]

    def paid(self) -> list[dict[str, Any]]:
        """The transfers that moved money (status SUCCESS)."""
        return [t for t in self.transfers() if t["paid"]]

    def transfer(self, request_no: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._transfers.get(request_no)
            return found.as_dict() if found is not None else None

    def callbacks_for(self, request_no: str) -> list[SentCallback]:
        with self.lock:
            return [c for c in self.callbacks if c.request_no == request_no]

    def settle(self, request_no: str, status: str, fail_code: str = "", fail_message: str = ""):
        """Finish a PROCESSING transfer by hand (SUCCESS or FAILED); its callback follows."""
        if status not in (SUCCESS, FAILED):
            raise ControlError("status must be SUCCESS or FAILED")
        if status == FAILED and not fail_code:
            raise ControlError("a FAILED transfer needs a fail_code")
        with self.lock:
            found = self._transfers.get(request_no)
            if found is None:
                raise ControlError("no such transfer")
            if found.status != PROCESSING:
                raise ControlError("the transfer is not PROCESSING")
            self._finish(found, status, fail_code, fail_message)
            return found.as_dict()

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
        if path.startswith(CONTROL_PREFIX):
            self._control(h, path, body)
            return

        record = ReceivedRequest(
            method=h.command, path=path, headers=dict(h.headers.items()), body=body
        )
        generic = self.faults.take()
        record.fault = generic
        with self.lock:
            self.requests.append(record)
        if generic is not None:  # the base sandbox's network faults (docs/adapters.md §5)
            if generic.delay and self._stopping.wait(generic.delay):
                return
            if generic.drop:
                h.close_connection = True
                return
            if generic.malformed:
                self._send(h, record, generic.status or 200, MALFORMED_BODY)
                return
            if generic.status is not None or generic.body is not None:
                status = generic.status or 200
                self._reply(h, record, status, generic.body or self._fault_body(status))
                return

        endpoint, argument = _route(h.command, path)
        if endpoint is None:
            if argument == "method_not_allowed":
                self._reply(h, record, 405, {"error": "method_not_allowed"})
            else:
                self._reply(h, record, 404, {"error": "not_found"})
            return
        auth_error = self._authenticate(h, target, body)
        if auth_error:
            record.auth_error = auth_error
            self._reply(h, record, 401, {"error": auth_error})
            return
        fault = self._take_fault(endpoint, TRANSPORT_FAULTS)
        execute = True
        if fault is not None:
            execute = bool(fault.options.get("execute", EXECUTES_BY_DEFAULT[fault.kind]))

        csv_body: bytes | None = None
        if endpoint == "transfer":
            if execute:
                status, reply = self._transfer_request(body)
            else:
                status, reply = 503, {"error": "unavailable"}
        elif endpoint == "query":
            status, reply = self._query(argument)
        else:
            status, reply, csv_body = self._statement(argument)

        if fault is not None and self._deliver_fault(h, record, fault):
            return
        if csv_body is not None:
            self._send_csv(h, record, csv_body)
        else:
            self._reply(h, record, status, reply)

    def _deliver_fault(self, h: _Handler, record: ReceivedRequest, fault: PaymentFault) -> bool:
        """Deliver the reply as the fault says; False to deliver it normally."""
        if fault.kind == "timeout":
            # Longer than the client waits: it gives up, the work is done all the same.
            return self._stopping.wait(float(fault.options.get("seconds", 6.0)))
        if fault.kind == "error_5xx":
            status = int(fault.options.get("status", 503))
            self._reply(h, record, status, {"error": "unavailable"})
            return True
        if fault.kind == "lost_reply":
            h.close_connection = True  # no byte of reply at all
            return True
        if fault.kind == "garbled":
            self._send(h, record, 200, GARBLED_BODY)
            return True
        return False

    def _take_fault(self, endpoint: str, kinds: frozenset[str]) -> PaymentFault | None:
        with self.lock:
            for fault in self._payment_faults:
                if fault.kind not in kinds:
                    continue
                # Only transport faults are aimed at an endpoint; the others have one target.
                if fault.kind in TRANSPORT_FAULTS and fault.endpoint not in (endpoint, "any"):
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._payment_faults.remove(fault)
                return fault
        return None

    # --- the endpoints -----------------------------------------------------------------------

    def _transfer_request(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            payload = json.loads(body.decode("utf-8"), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return 400, {"error": "invalid_json"}
        if not isinstance(payload, dict):
            return 400, {"error": "invalid_json"}
        fields, bad = _transfer_fields(payload)
        if bad:
            return 400, {"error": "invalid_request", "fields": bad}
        with self.lock:
            existing = self._transfers.get(fields["request_no"])
            if existing is not None:
                if not existing.same_request(fields):
                    return 409, {"error": "request_no_conflict"}
                return 200, existing.reply()  # the same transfer: never executed twice
            transfer = self._execute(fields)
            return 200, transfer.reply()

    def _execute(self, fields: dict[str, Any]) -> Transfer:
        """Create and run one transfer (under the lock; the request_no is new)."""
        now = self.clock()
        self._serial += 1
        ref = f"SBX{datetime.fromtimestamp(now, CHINA):%Y%m%d}{self._serial:08d}"
        transfer = Transfer(
            **fields, provider_ref=ref, status=PROCESSING, created_at=now, finished_at=None
        )
        self._transfers[transfer.request_no] = transfer
        self.executions.append(transfer.request_no)
        suffix = transfer.account_no[-4:]
        if suffix in FAIL_AT_ONCE:
            code, message = FAIL_AT_ONCE[suffix]
            self._finish(transfer, FAILED, code, message)
        elif self.balance is not None and transfer.amount > self.balance:
            self._finish(transfer, FAILED, "insufficient_funds", "商户备付金余额不足")
        elif suffix in SETTLE_LATER:
            if self.balance is not None:
                self.balance -= transfer.amount
                transfer.held = True
            transfer.settle_to = SETTLE_LATER[suffix]
            if transfer.settle_to is not None:
                timer = threading.Timer(
                    self.processing_seconds, self._settle_due, args=(transfer.request_no,)
                )
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
        else:
            if self.balance is not None:
                self.balance -= transfer.amount
            self._finish(transfer, SUCCESS, "", "")
        return transfer

    def _settle_due(self, request_no: str) -> None:
        with self.lock:
            transfer = self._transfers.get(request_no)
            if transfer is None or transfer.status != PROCESSING or transfer.settle_to is None:
                return
            status, code, message = transfer.settle_to
            self._finish(transfer, status, code, message)

    def _finish(self, transfer: Transfer, status: str, code: str, message: str) -> None:
        """Record the final status (under the lock) and dispatch its callback."""
        if transfer.held and status == FAILED and self.balance is not None:
            self.balance += transfer.amount  # the hold comes back
        transfer.held = False
        transfer.status = status
        transfer.fail_code = code
        transfer.fail_message = message
        transfer.finished_at = self.clock()
        if transfer.notify_url:
            transfer.callbacks_dispatched += 1
            snapshot = transfer.reply()
            fault = self._take_fault("callback", CALLBACK_FAULTS)
            thread = threading.Thread(
                target=self._run_callbacks,
                args=(transfer.request_no, transfer.notify_url, snapshot, fault),
                name="payment-sandbox-callback",
                daemon=True,
            )
            thread.start()

    def _query(self, request_no: str) -> tuple[int, dict[str, Any]]:
        if not _REQUEST_NO.fullmatch(request_no):
            return 400, {"error": "invalid_request", "fields": ["request_no"]}
        with self.lock:
            transfer = self._transfers.get(request_no)
            if transfer is None:
                return 404, {"error": "transfer_not_found"}
            return 200, transfer.reply()

    def _statement(self, day_text: str) -> tuple[int, dict[str, Any], bytes | None]:
        try:
            if not _DATE.fullmatch(day_text):
                raise ValueError(day_text)
            day = date.fromisoformat(day_text)
        except ValueError:
            return 400, {"error": "invalid_request", "fields": ["date"]}, None
        with self.lock:
            finished = [
                t
                for t in self._transfers.values()
                if t.finished_at is not None
                and datetime.fromtimestamp(t.finished_at, CHINA).date() == day
            ]
            finished.sort(key=lambda t: (t.finished_at, t.request_no))
            rows = [
                [t.request_no, t.provider_ref, f"{t.amount:.2f}", t.status, _iso(t.finished_at)]
                for t in finished
            ]
        fault = self._take_fault("statement", STATEMENT_FAULTS)
        extra_raw: list[str] = []
        if fault is not None:
            rows, extra_raw = _mismatch(rows, fault.options, day)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(STATEMENT_HEADER)
        writer.writerows(rows)
        for line in extra_raw:
            out.write(line + "\r\n")
        return 200, {}, out.getvalue().encode("utf-8")

    def _send_csv(self, h: _Handler, record: ReceivedRequest, raw: bytes) -> None:
        record.status = 200
        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/csv; charset=utf-8")
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
        except OSError:
            record.status = None

    # --- callbacks ---------------------------------------------------------------------------

    def _run_callbacks(
        self,
        request_no: str,
        url: str,
        snapshot: dict[str, Any],
        fault: PaymentFault | None,
    ) -> None:
        if self._stopping.wait(self.callback_delay):
            return
        body = encode_json(snapshot)
        if fault is not None and fault.kind == "forged_callback":
            forged = {**snapshot, "status": fault.options.get("status", SUCCESS)}
            if forged["status"] == SUCCESS:
                forged.update(fail_code="", fail_message="")
            forged_body = encode_json(forged)
            wrong_key = str(fault.options.get("key") or secrets.token_hex(24))
            self._post_callback(request_no, url, forged_body, wrong_key, forged=True, attempt=1)
            if not fault.options.get("genuine", True):
                return
        copies = 2 if fault is not None and fault.kind == "duplicate_callback" else 1
        for _copy in range(copies):
            for attempt in range(1, self.callback_attempts + 1):
                answered = self._post_callback(
                    request_no, url, body, self.callback_secret, forged=False, attempt=attempt
                )
                if answered is not None and 200 <= answered < 300:
                    break
                if self._stopping.wait(self.callback_retry_seconds):
                    return

    def _post_callback(
        self, request_no: str, url: str, body: bytes, key: str, *, forged: bool, attempt: int
    ) -> int | None:
        """One signed POST of a callback (fresh timestamp and nonce each time)."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timestamp, nonce = str(int(self.clock())), secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Client-Id": self.client_id,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": _sign(
                key, timestamp=timestamp, nonce=nonce, method="POST", path=target, body=body
            ),
        }
        sent = SentCallback(request_no, url, body, headers, forged=forged, attempt=attempt)
        # notify_url was checked to be http(s) when the transfer was received.
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) checked
        try:
            with urllib.request.urlopen(request, timeout=self.callback_timeout) as response:  # noqa: S310 - http(s) checked
                sent.answered = response.status
        except urllib.error.HTTPError as exc:
            sent.answered = exc.code
        except (urllib.error.URLError, OSError) as exc:
            sent.error = type(exc).__name__
        with self.lock:
            self.callbacks.append(sent)
        return sent.answered

    # --- the control endpoint ----------------------------------------------------------------

    def _control(self, h: _Handler, path: str, body: bytes) -> None:
        if h.client_address[0] not in _LOOPBACK:
            self._reply(h, None, 403, {"error": "forbidden"})
            return
        try:
            payload: dict[str, Any] = {}
            if body:
                loaded = json.loads(body.decode("utf-8"), parse_float=Decimal)
                if not isinstance(loaded, dict):
                    raise ControlError("the body must be a JSON object")
                payload = loaded
            status, reply = self._control_action(h.command, path, payload)
        except ControlError as exc:
            status, reply = 400, {"error": "invalid_request", "detail": str(exc)}
        except (ValueError, UnicodeDecodeError):
            status, reply = 400, {"error": "invalid_json"}
        self._reply(h, None, status, reply)

    def _control_action(
        self, method: str, path: str, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if (method, path) == ("POST", "/_sandbox/faults"):
            options = dict(payload)
            fault = options.pop("fault", None)
            times = options.pop("times", 1)
            endpoint = options.pop("endpoint", None)
            if not isinstance(fault, str):
                raise ControlError("fault is required")
            pending = self.control(fault, times=times, endpoint=endpoint, **options)
            return 200, {"queued": fault, "times": times, "pending": pending}
        if (method, path) == ("DELETE", "/_sandbox/faults"):
            self.clear_faults()
            return 200, {"pending": 0}
        if (method, path) == ("GET", "/_sandbox/transfers"):
            return 200, {"transfers": self.transfers()}
        if (method, path) == ("GET", "/_sandbox/callbacks"):
            with self.lock:
                return 200, {"callbacks": [c.as_dict() for c in self.callbacks]}
        if (method, path) == ("POST", "/_sandbox/settle"):
            request_no = payload.get("request_no")
            if not isinstance(request_no, str):
                raise ControlError("request_no is required")
            transfer = self.settle(
                request_no,
                str(payload.get("status", "")),
                str(payload.get("fail_code", "")),
                str(payload.get("fail_message", "")),
            )
            return 200, {"transfer": transfer}
        if (method, path) == ("POST", "/_sandbox/reset"):
            self.reset()
            if payload.get("transfers", True):
                self.clear_transfers()
            return 200, {"reset": True}
        return 404, {"error": "not_found"}


def _route(method: str, path: str) -> tuple[str | None, str]:
    """(endpoint, argument), or (None, "method_not_allowed" | "") for no route."""
    if path == TRANSFERS_PATH:
        return ("transfer", "") if method == "POST" else (None, "method_not_allowed")
    for prefix, endpoint in ((TRANSFERS_PATH + "/", "query"), (STATEMENTS_PREFIX, "statement")):
        if path.startswith(prefix) and "/" not in path[len(prefix) :] and path[len(prefix) :]:
            if method != "GET":
                return None, "method_not_allowed"
            return endpoint, path[len(prefix) :]
    return None, ""


def _transfer_fields(payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The validated fields of a transfer request, and the names of the bad ones."""
    bad: list[str] = []

    def text(name: str, *, max_length: int, required: bool = True) -> str:
        value = payload.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value) or len(value) > max_length:
            bad.append(name)
            return ""
        return value

    request_no = text("request_no", max_length=40)
    if request_no and not _REQUEST_NO.fullmatch(request_no):
        bad.append("request_no")
    amount_text = payload.get("amount")
    amount = Decimal("0")
    if isinstance(amount_text, str) and _AMOUNT.fullmatch(amount_text):
        amount = Decimal(amount_text)
    if amount <= 0:
        bad.append("amount")
    currency = payload.get("currency")
    if currency != "CNY":
        bad.append("currency")
    account_type = text("account_type", max_length=MAX_FIELD_LENGTH)
    if account_type and account_type not in ACCOUNT_TYPES:
        bad.append("account_type")
    account_no = text("account_no", max_length=MAX_FIELD_LENGTH)
    account_name = text("account_name", max_length=MAX_FIELD_LENGTH)
    memo = text("memo", max_length=MAX_MEMO_LENGTH, required=False)
    notify_url = text("notify_url", max_length=512, required=False)
    if notify_url and urlsplit(notify_url).scheme not in ("http", "https"):
        bad.append("notify_url")
    fields = {
        "request_no": request_no,
        "amount": amount,
        "currency": "CNY",
        "account_type": account_type,
        "account_no": account_no,
        "account_name": account_name,
        "memo": memo,
        "notify_url": notify_url,
    }
    return fields, sorted(set(bad))


def _check_options(fault: str, options: dict[str, Any]) -> None:
    allowed = {
        "timeout": {"seconds", "execute"},
        "error_5xx": {"status", "execute"},
        "lost_reply": {"execute"},
        "garbled": {"execute"},
        "duplicate_callback": set(),
        "forged_callback": {"status", "genuine", "key"},
        "statement_mismatch": {"extra", "missing", "wrong_amount", "wrong_status", "bad_lines"},
    }[fault]
    unknown = set(options) - allowed
    if unknown:
        raise ControlError(f"unknown options for {fault}: {sorted(unknown)}")
    status = options.get("status")
    if (
        fault == "error_5xx"
        and status is not None
        and not (isinstance(status, int) and 500 <= status <= 599)
    ):
        raise ControlError("status must be 500-599")
    if fault == "forged_callback" and status not in (None, SUCCESS, FAILED, PROCESSING):
        raise ControlError("status must be SUCCESS, FAILED or PROCESSING")


def _select(rows: list[list[str]], spec: Any, taken: set[str]) -> list[list[str]]:
    """The rows a mismatch option names: a count (the first rows not yet altered) or a list of
    request numbers."""
    if isinstance(spec, list):
        wanted = {str(x) for x in spec}
        return [r for r in rows if r[0] in wanted]
    count = int(spec or 0)
    return [r for r in rows if r[0] not in taken][:count]


def _mismatch(
    rows: list[list[str]], options: dict[str, Any], day: date
) -> tuple[list[list[str]], list[str]]:
    """A statement that disagrees with what happened, as `statement_mismatch` asks.

    With no option: one line missing, one wrong amount, one wrong status (as far as there are
    lines) and one extra line. Returns the rows and raw malformed lines to append.
    """
    if not options:
        options = {"extra": 1, "missing": 1, "wrong_amount": 1, "wrong_status": 1}
    rows = [list(r) for r in rows]
    taken: set[str] = set()
    missing = _select(rows, options.get("missing", 0), taken)
    taken |= {r[0] for r in missing}
    wrong_amount = _select(rows, options.get("wrong_amount", 0), taken)
    taken |= {r[0] for r in wrong_amount}
    wrong_status = _select(rows, options.get("wrong_status", 0), taken)
    for row in wrong_amount:
        row[2] = f"{Decimal(row[2]) + Decimal('0.01'):.2f}"
    for row in wrong_status:
        row[3] = FAILED if row[3] == SUCCESS else SUCCESS
    gone = {r[0] for r in missing}
    rows = [r for r in rows if r[0] not in gone]
    finished = datetime(day.year, day.month, day.day, 12, 0, tzinfo=CHINA).isoformat()
    for n in range(1, int(options.get("extra", 0) or 0) + 1):
        rows.append([f"EXTRA-{day:%Y%m%d}-{n:04d}", f"SBXEXTRA{n:08d}", "8.88", SUCCESS, finished])
    bad_lines = [
        f"BROKEN-LINE-{n},,not-money" for n in range(1, int(options.get("bad_lines", 0)) + 1)
    ]
    return rows, bad_lines


class PaymentSandboxControl:
    """The control endpoint of a sandbox running in another process (demos, e2e tests)."""

    def __init__(self, base_url: str, *, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 - the sandbox's own http URL
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - own URL
            return json.loads(response.read().decode("utf-8"))

    def control(
        self, fault: str, *, times: int = 1, endpoint: str | None = None, **options: Any
    ) -> int:
        payload = {"fault": fault, "times": times, **options}
        if endpoint is not None:
            payload["endpoint"] = endpoint
        return self._call("POST", "/_sandbox/faults", payload)["pending"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def transfers(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_sandbox/transfers")["transfers"]

    def callbacks(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_sandbox/callbacks")["callbacks"]

    def settle(self, request_no: str, status: str, fail_code: str = "") -> dict[str, Any]:
        payload = {"request_no": request_no, "status": status, "fail_code": fail_code}
        return self._call("POST", "/_sandbox/settle", payload)["transfer"]

    def reset(self, *, transfers: bool = True) -> None:
        self._call("POST", "/_sandbox/reset", {"transfers": transfers})


# --- Command line ---------------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--callback-secret",
        default=os.environ.get("SANDBOX_CALLBACK_SECRET", ""),
        help="HMAC secret of the callbacks (PAYMENT_GATEWAY_CALLBACK_SECRET)",
    )
    parser.add_argument(
        "--processing-seconds",
        type=float,
        default=5.0,
        help="how long accounts ending 5000/5001 stay PROCESSING",
    )
    parser.add_argument("--balance", default=None, help="funds available (default: unlimited)")


def _configure(sandbox: JsonSandbox, args: argparse.Namespace) -> None:
    if not isinstance(sandbox, PaymentSandbox):
        raise TypeError("a PaymentSandbox is expected")
    sandbox.processing_seconds = args.processing_seconds
    if args.balance is not None:
        sandbox.balance = Decimal(args.balance)
    if args.callback_secret:
        sandbox.callback_secret = args.callback_secret
    else:
        print(f"  callback secret: {sandbox.callback_secret}  (generated; pass --callback-secret)")
    print(
        "  accounts ending 4000/4001/4002 fail, 5000/5001 settle after "
        f"{sandbox.processing_seconds:g} s, 5009 stays PROCESSING; control: POST /_sandbox/faults"
    )


def main(argv: list[str] | None = None) -> None:
    run_cli(
        PaymentSandbox,
        description="Payment gateway sandbox",
        default_port=PaymentSandbox.default_port,
        argv=argv,
        add_arguments=_add_arguments,
        configure=_configure,
    )


if __name__ == "__main__":
    main()
