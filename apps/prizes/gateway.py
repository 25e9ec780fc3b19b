"""The payment gateway: transfers of prize money, their status, callbacks and daily statements.

Money leaves the platform only through `PaymentGateway.transfer`, so this module is built around
one rule: **an answer we cannot read is never taken for a refusal**.

- Every transfer carries our idempotency number `request_no`, reused on every retry; the provider
  executes a number at most once and answers a repeat with the same transfer.
- `transfer()` never raises because of the network: a timeout, a dropped connection, a 5xx, an
  unexpected status or a garbled reply all give `UNKNOWN` (the money may or may not have left),
  which only `query()` or the daily statement resolves — never a transfer under a new number.
  Only the provider's explicit `FAILED` (with its `fail_code`) is a definite refusal.
- A `request_no` reused with a different body is a programming error: the provider answers 409
  and `transfer()` raises `GatewayMisuse`.
- `parse_callback()` believes a callback only if it is signed with the callback secret, fresh
  (±300 s) and not replayed (its nonce is remembered in the cache for 600 s).
- `fetch_statement()` returns the provider's CSV for a day; `parse_statement()` reads it into
  lines and per-line errors for reconciliation (nothing is auto-fixed here).

The wire protocol is in docs/adapters.md ("Payment gateway"); the sandbox that speaks it for
tests and demos is `tools/sandbox/payment_gateway.py`. Logs carry the path, the status or failure
token and the time taken, never an account number, a name or a secret.
"""

from __future__ import annotations

import csv
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import urllib3
from django.conf import settings
from django.core.cache import BaseCache
from django.core.cache import cache as default_cache
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.common.http import (
    MIN_SECRET_LENGTH,
    USER_AGENT,
    JsonServiceClient,
    ServiceError,
    ServiceUnavailable,
    _transport_reason,
    check_base_url,
    check_credentials,
    check_timeout,
    parse_json_object,
    sign,
    signed_headers,
)

logger = logging.getLogger(__name__)

TRANSFERS_PATH = "/v1/transfers"
STATEMENTS_PATH = "/v1/statements/"
CURRENCY = "CNY"
DEFAULT_TIMEOUT_SECONDS = 5.0
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")
ACCOUNT_TYPES = ("bank_card", "wallet")
MAX_ACCOUNT_FIELD_LENGTH = 64
MAX_MEMO_LENGTH = 128
MAX_PROVIDER_REF_LENGTH = 64
MAX_FAIL_MESSAGE_LENGTH = 200
# A JSON reply is a few hundred bytes; a day's statement of many thousand transfers is larger.
MAX_REPLY_BYTES = 64 * 1024
MAX_STATEMENT_BYTES = 64 * 1024 * 1024
# Callbacks: the same window and nonce memory as the services apply to us (docs §1.1).
CALLBACK_MAX_SKEW_SECONDS = 300
CALLBACK_NONCE_SECONDS = 600
STATEMENT_HEADER = ("request_no", "provider_ref", "amount", "status", "finished_at")

REQUEST_NO_PATTERN = re.compile(r"[A-Z0-9-]{8,40}")
_AMOUNT = re.compile(r"[0-9]{1,12}\.[0-9]{2}")
_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,39}")
_NONCE = re.compile(r"[0-9a-f]{16,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class TransferStatus(models.TextChoices):
    """Where a transfer stands, as far as we know.

    SUCCESS, FAILED and PROCESSING are the provider's words. UNKNOWN is ours: we asked and got no
    readable answer, so the money may or may not have left. NOT_FOUND: the provider says it never
    received the request number (a `query` answer only).
    """

    SUCCESS = "SUCCESS", _("Paid")
    FAILED = "FAILED", _("Refused by the provider")
    PROCESSING = "PROCESSING", _("Processing at the provider")
    UNKNOWN = "UNKNOWN", _("Unknown (no answer)")
    NOT_FOUND = "NOT_FOUND", _("Not received by the provider")


# The statuses the provider itself uses (UNKNOWN and NOT_FOUND are ours).
PROVIDER_STATUSES = frozenset({"SUCCESS", "FAILED", "PROCESSING"})


# --- Errors ----------------------------------------------------------------------------------


class GatewayError(Exception):
    """Base of the gateway's errors; `code` is a stable token."""

    code = "gateway.error"

    def __init__(self, code: str | None = None, message: str = ""):
        if code:
            self.code = code
        super().__init__(message or self.code)


class GatewayMisuse(GatewayError):
    """Our bug, refused by the provider: a `request_no` reused with a different body (409,
    `request_no_conflict`) or a request it calls malformed (400, `invalid_request`). Nothing was
    executed; retrying the same call will not help."""

    code = "request_no_conflict"


class GatewayUnavailable(GatewayError):
    """No usable answer (for `fetch_statement`): `code` is `timeout`, `connection_error`,
    `http_<status>`, `malformed_reply` or the provider's error token (`statement_not_ready`)."""

    code = "unavailable"


class CallbackRejected(GatewayError):
    """A callback that must not be believed. `code`: `missing_signature`, `bad_signature`,
    `stale_timestamp`, `replayed_nonce` or `bad_body`."""

    code = "bad_signature"


class MalformedReply(ValueError):
    """A reply that parsed as JSON but does not follow the protocol (the field is `args[0]`)."""


# --- Values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferRequest:
    """One transfer to ask for. Checked on construction (`ValueError`): a request the provider
    would refuse as malformed never leaves. The account number and name stay out of `repr`."""

    request_no: str
    amount: Decimal
    account_type: str
    account_no: str = field(repr=False)
    account_name: str = field(repr=False)
    memo: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.request_no, str) or not REQUEST_NO_PATTERN.fullmatch(
            self.request_no
        ):
            raise ValueError("request_no must match ^[A-Z0-9-]{8,40}$")
        amount = self.amount
        if (
            not isinstance(amount, Decimal)
            or not amount.is_finite()
            or amount != amount.quantize(CENT)
            or not Decimal("0") < amount <= MAX_AMOUNT
        ):
            raise ValueError("amount must be a Decimal > 0 with at most two decimal places")
        object.__setattr__(self, "amount", amount.quantize(CENT))
        if self.account_type not in ACCOUNT_TYPES:
            raise ValueError(f"account_type must be one of {ACCOUNT_TYPES}")
        for name in ("account_no", "account_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_ACCOUNT_FIELD_LENGTH:
                raise ValueError(f"{name} must be 1-{MAX_ACCOUNT_FIELD_LENGTH} characters")
        if not isinstance(self.memo, str) or len(self.memo) > MAX_MEMO_LENGTH:
            raise ValueError(f"memo must be at most {MAX_MEMO_LENGTH} characters")

    def payload(self, notify_url: str = "") -> dict[str, str]:
        """The JSON body of `POST /v1/transfers`."""
        body = {
            "request_no": self.request_no,
            "amount": f"{self.amount:.2f}",
            "currency": CURRENCY,
            "account_type": self.account_type,
            "account_no": self.account_no,
            "account_name": self.account_name,
            "memo": self.memo,
        }
        if notify_url:
            body["notify_url"] = notify_url
        return body


@dataclass(frozen=True)
class TransferResult:
    """What we know about one transfer after a call.

    `provider_ref`, `amount` and `finished_at` are the provider's (finished_at is set for SUCCESS
    and FAILED). For FAILED, `fail_code` is the provider's reason (`account_invalid` …); for
    UNKNOWN it is our transport token (`timeout`, `connection_error`, `http_503`,
    `malformed_reply`, `amount_mismatch`) so the payout's history can say why.
    """

    request_no: str
    status: TransferStatus
    provider_ref: str = ""
    amount: Decimal | None = None
    fail_code: str = ""
    fail_message: str = ""
    finished_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", TransferStatus(self.status))

    @property
    def is_final(self) -> bool:
        """SUCCESS or FAILED: the provider will not change its mind."""
        return self.status in (TransferStatus.SUCCESS, TransferStatus.FAILED)

    @classmethod
    def unknown(cls, request_no: str, reason: str) -> TransferResult:
        return cls(request_no=request_no, status=TransferStatus.UNKNOWN, fail_code=reason)


@dataclass(frozen=True)
class StatementLine:
    """One line of the provider's daily statement; `line_no` counts the header as line 1."""

    line_no: int
    request_no: str
    provider_ref: str
    amount: Decimal
    status: str
    finished_at: datetime | None


@runtime_checkable
class PaymentGateway(Protocol):
    """What the payout service needs from a payment provider (see the module docstring)."""

    def transfer(self, req: TransferRequest) -> TransferResult: ...

    def query(self, request_no: str) -> TransferResult: ...

    def parse_callback(
        self, *, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> TransferResult: ...

    def fetch_statement(self, day: date) -> bytes: ...


# --- Parsing the provider's words ------------------------------------------------------------


def _text(data: Mapping[str, Any], name: str, *, max_length: int) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise MalformedReply(name)
    return value


def _aware_or_none(value: object, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedReply(name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedReply(name) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise MalformedReply(name)
    return parsed


def _money(value: object, name: str) -> Decimal:
    # Strings only: money is never a JSON number.
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
        raise MalformedReply(name)
    try:
        return Decimal(value)
    except InvalidOperation:
        raise MalformedReply(name) from None


def parse_transfer(data: Mapping[str, Any], *, request_no: str | None = None) -> TransferResult:
    """The protocol's transfer object as a `TransferResult` (`MalformedReply` if it is not one).

    With `request_no`, an answer about another number is malformed (no answer at all).
    """
    number = data.get("request_no")
    if not isinstance(number, str) or not REQUEST_NO_PATTERN.fullmatch(number):
        raise MalformedReply("request_no")
    if request_no is not None and number != request_no:
        raise MalformedReply("request_no")
    status = data.get("status")
    if status not in PROVIDER_STATUSES:
        raise MalformedReply("status")
    fail_code = _text(data, "fail_code", max_length=40)
    if fail_code and not _TOKEN.fullmatch(fail_code):
        raise MalformedReply("fail_code")
    if status == TransferStatus.FAILED and not fail_code:
        fail_code = "unspecified"  # a refusal without a reason is still a refusal
    if status != TransferStatus.FAILED:
        fail_code = ""
    return TransferResult(
        request_no=number,
        status=TransferStatus(status),
        provider_ref=_text(data, "provider_ref", max_length=MAX_PROVIDER_REF_LENGTH),
        amount=_money(data.get("amount"), "amount"),
        fail_code=fail_code,
        fail_message=_text(data, "fail_message", max_length=MAX_FAIL_MESSAGE_LENGTH)
        if status == TransferStatus.FAILED
        else "",
        finished_at=_aware_or_none(data.get("finished_at"), "finished_at"),
    )


def parse_statement(data: bytes) -> tuple[list[StatementLine], list[tuple[int, str]]]:
    """The provider's daily statement: the good lines, and `(line_no, error)` for the bad ones.

    `line_no` is the physical line (the header is line 1). Errors: `not_utf8` (line 0, nothing
    read), `bad_header` (line 1, nothing read), `field_count`, `request_no`, `provider_ref`,
    `amount`, `status`, `finished_at`, `unreadable` (not CSV), `duplicate_request_no` (the later
    line of a number is the bad one).
    Blank lines are skipped; a UTF-8 BOM and either line ending are accepted.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [(0, "not_utf8")]
    physical = text.splitlines()
    if not physical or _csv_cells(physical[0]) != list(STATEMENT_HEADER):
        return [], [(1, "bad_header")]
    lines: list[StatementLine] = []
    errors: list[tuple[int, str]] = []
    seen: set[str] = set()
    # Line by line (a statement line never spans lines): one bad line spoils only itself.
    for line_no, raw in enumerate(physical[1:], start=2):
        if not raw.strip():
            continue
        cells = _csv_cells(raw)
        if cells is None:
            errors.append((line_no, "unreadable"))
            continue
        error, line = _statement_line(line_no, cells)
        if line is not None and line.request_no in seen:
            error, line = "duplicate_request_no", None
        if line is None:
            errors.append((line_no, error))
            continue
        seen.add(line.request_no)
        lines.append(line)
    return lines, errors


def _csv_cells(line: str) -> list[str] | None:
    try:
        cells = next(csv.reader([line], strict=True), [])
    except csv.Error:
        return None
    return [cell.strip() for cell in cells]


def _statement_line(line_no: int, row: list[str]) -> tuple[str, StatementLine | None]:
    if len(row) != len(STATEMENT_HEADER):
        return "field_count", None
    request_no, provider_ref, amount_text, status, finished_text = row
    if not REQUEST_NO_PATTERN.fullmatch(request_no):
        return "request_no", None
    if not provider_ref or len(provider_ref) > MAX_PROVIDER_REF_LENGTH:
        return "provider_ref", None
    try:
        amount = _money(amount_text, "amount")
    except MalformedReply:
        return "amount", None
    if status not in PROVIDER_STATUSES:
        return "status", None
    try:
        finished_at = _aware_or_none(finished_text, "finished_at")
    except MalformedReply:
        return "finished_at", None
    return "", StatementLine(
        line_no=line_no,
        request_no=request_no,
        provider_ref=provider_ref,
        amount=amount,
        status=status,
        finished_at=finished_at,
    )


# --- Transport -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    status: int
    content_type: str
    raw: bytes


class _GatewayTransport(JsonServiceClient):
    """`JsonServiceClient`'s signing, timeouts and failure tokens, for GETs and POSTs alike and
    without interpreting the reply (the gateway reads 404, 409 and CSV itself)."""

    def exchange(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> _Reply:
        """One signed request; raises `ServiceUnavailable` (with the §1.2 token) for transport
        trouble only — every status comes back as a `_Reply`."""
        body = b""
        if payload is not None:
            body = json.dumps(
                payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        target = self._base_path + path
        headers = {
            "Accept": "application/json, text/csv",
            "User-Agent": USER_AGENT,
            **signed_headers(
                client_id=self.client_id,
                secret=self._secret,
                method=method,
                path=target,
                body=body,
                timestamp=int(self._clock()),
            ),
        }
        if payload is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        started = time.monotonic()
        try:
            reply = self._exchange(
                method, target, body if payload is not None else None, headers, max_bytes
            )
        except ServiceError as exc:
            logger.warning(
                "%s %s %s failed: %s (%.0f ms)",
                self.service,
                method,
                path,
                exc.reason,
                (time.monotonic() - started) * 1000,
            )
            raise
        if reply.status in (401, 403):  # refused credentials: a misconfiguration
            level = logging.ERROR
        elif 200 <= reply.status < 300 or reply.status == 404:
            level = logging.DEBUG
        else:
            level = logging.WARNING
        logger.log(
            level,
            "%s %s %s -> %s (%.0f ms)",
            self.service,
            method,
            path,
            reply.status,
            (time.monotonic() - started) * 1000,
        )
        return reply

    def _exchange(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        max_bytes: int,
    ) -> _Reply:
        try:
            response = self._pool.request(
                method,
                self._origin + target,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServiceUnavailable(_transport_reason(exc)) from None
        complete = False
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ServiceUnavailable("malformed_reply", status=response.status)
            raw = response.read(max_bytes + 1)
            if len(raw) > max_bytes:
                raise ServiceUnavailable("malformed_reply", status=response.status)
            complete = True
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServiceUnavailable(_transport_reason(exc), status=response.status) from None
        finally:
            if not complete:
                response.close()  # never hand a half-read connection back to the pool
            response.release_conn()
        content_type = response.headers.get("Content-Type", "")
        return _Reply(status=response.status, content_type=content_type, raw=raw)


@lru_cache(maxsize=8)
def _shared_transport(
    *, base_url: str, client_id: str, secret: str, timeout: float
) -> _GatewayTransport:
    return _GatewayTransport(
        service=HttpPaymentGateway.service_name,
        base_url=base_url,
        client_id=client_id,
        secret=secret,
        timeout=timeout,
    )


def _error_token(raw: bytes) -> str:
    data = parse_json_object(raw)
    token = data.get("error") if data else None
    return token if isinstance(token, str) and _TOKEN.fullmatch(token) else ""


# --- The production client -------------------------------------------------------------------


class HttpPaymentGateway:
    """The provider's transfer API over HTTPS (docs/adapters.md, "Payment gateway").

    Thread-safe; one connection pool per configuration. `notify_url` (optional) is sent with each
    transfer for the provider's callbacks. `cache` remembers callback nonces (the default cache,
    looked up at call time, unless given); `clock` is for tests.
    """

    service_name = "payment-gateway"

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        secret: str,
        callback_secret: str,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        notify_url: str = "",
        cache: BaseCache | None = None,
        clock: Callable[[], float] = time.time,
    ):
        check_credentials(client_id, secret, prefix="PAYMENT_GATEWAY_")
        if not isinstance(callback_secret, str) or len(callback_secret) < MIN_SECRET_LENGTH:
            raise ImproperlyConfigured(
                "PAYMENT_GATEWAY_CALLBACK_SECRET must be set "
                f"(at least {MIN_SECRET_LENGTH} characters)."
            )
        if notify_url:
            check_base_url(notify_url.split("?", 1)[0], setting="PAYMENT_GATEWAY_NOTIFY_URL")
        self.client_id = client_id
        self.notify_url = notify_url
        self._callback_secret = callback_secret
        self._cache = cache
        self._clock = clock
        self._transport = _shared_transport(
            base_url=check_base_url(base_url, setting="PAYMENT_GATEWAY_BASE_URL"),
            client_id=client_id,
            secret=secret,
            timeout=check_timeout(timeout, setting="PAYMENT_GATEWAY_TIMEOUT"),
        )

    def __repr__(self) -> str:  # never the secrets
        return f"HttpPaymentGateway(base_url={self._transport.base_url!r})"

    # --- transfers ---------------------------------------------------------------------------

    def transfer(self, req: TransferRequest) -> TransferResult:
        """Ask for one transfer (or, for a known `request_no`, for the same one again).

        Never raises because of the network (→ UNKNOWN). Raises `GatewayMisuse` on 409 (the
        number was used for another body) and on 400 `invalid_request`.
        """
        try:
            reply = self._transport.exchange("POST", TRANSFERS_PATH, req.payload(self.notify_url))
        except ServiceError as exc:
            return TransferResult.unknown(req.request_no, exc.reason)
        except Exception:  # whatever it was, we cannot say the money did not leave
            logger.exception("%s transfer: unexpected client failure", self.service_name)
            return TransferResult.unknown(req.request_no, "connection_error")
        if reply.status == 409:
            raise GatewayMisuse("request_no_conflict", "request_no reused with a different body")
        if reply.status == 400 and _error_token(reply.raw) in ("invalid_request", "invalid_json"):
            raise GatewayMisuse("invalid_request", "the provider refused the request as malformed")
        if reply.status != 200:
            return TransferResult.unknown(req.request_no, f"http_{reply.status}")
        result = self._read_transfer(reply, request_no=req.request_no)
        if result.status != TransferStatus.UNKNOWN and result.amount != req.amount:
            logger.error(
                "%s transfer %s: the provider reports another amount",
                self.service_name,
                req.request_no,
            )
            return TransferResult.unknown(req.request_no, "amount_mismatch")
        return result

    def query(self, request_no: str) -> TransferResult:
        """The provider's current view of a request number: SUCCESS / FAILED / PROCESSING,
        NOT_FOUND (it never received that number), or UNKNOWN (no readable answer)."""
        if not isinstance(request_no, str) or not REQUEST_NO_PATTERN.fullmatch(request_no):
            raise ValueError("request_no must match ^[A-Z0-9-]{8,40}$")
        try:
            reply = self._transport.exchange("GET", f"{TRANSFERS_PATH}/{request_no}")
        except ServiceError as exc:
            return TransferResult.unknown(request_no, exc.reason)
        except Exception:
            logger.exception("%s query: unexpected client failure", self.service_name)
            return TransferResult.unknown(request_no, "connection_error")
        if reply.status == 404 and _error_token(reply.raw) == "transfer_not_found":
            return TransferResult(request_no=request_no, status=TransferStatus.NOT_FOUND)
        if reply.status != 200:
            # A bare 404 (`not_found`) is a wrong URL, not an absent transfer.
            return TransferResult.unknown(request_no, f"http_{reply.status}")
        return self._read_transfer(reply, request_no=request_no)

    def _read_transfer(self, reply: _Reply, *, request_no: str) -> TransferResult:
        data = parse_json_object(reply.raw)
        try:
            if data is None:
                raise MalformedReply("body")
            return parse_transfer(data, request_no=request_no)
        except MalformedReply as exc:
            logger.warning(
                "%s reply does not follow the protocol (field %s)",
                self.service_name,
                exc.args[0] if exc.args else "?",
            )
            return TransferResult.unknown(request_no, "malformed_reply")

    # --- callbacks ---------------------------------------------------------------------------

    def parse_callback(
        self, *, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> TransferResult:
        """Verify and read one provider callback (docs/adapters.md, "Callbacks").

        `path` is the request target as received (`request.get_full_path()`), `headers` any
        mapping (looked up case-insensitively), `body` the exact bytes. Checks, in this order:
        the four signature headers are there (`missing_signature`); the client id is ours and the
        HMAC under the callback secret holds (`bad_signature`); the timestamp is within 300 s
        (`stale_timestamp`); the nonce is new (`replayed_nonce`, remembered for 600 s); the body
        is a transfer object (`bad_body`). Raises `CallbackRejected(code)`.
        """
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        client_id = lowered.get("x-client-id", "")
        timestamp = lowered.get("x-timestamp", "")
        nonce = lowered.get("x-nonce", "")
        signature = lowered.get("x-signature", "")
        if not (client_id and timestamp and nonce and signature):
            raise CallbackRejected("missing_signature")
        if (
            not hmac.compare_digest(client_id.encode(), self.client_id.encode())
            or not _TIMESTAMP.fullmatch(timestamp)
            or not _NONCE.fullmatch(nonce)
            or not _SIGNATURE.fullmatch(signature)
        ):
            raise CallbackRejected("bad_signature")
        expected = sign(
            self._callback_secret,
            timestamp=timestamp,
            nonce=nonce,
            method=method,
            path=path,
            body=body,
        )
        if not hmac.compare_digest(expected, signature.lower()):
            raise CallbackRejected("bad_signature")
        if abs(self._clock() - int(timestamp)) > CALLBACK_MAX_SKEW_SECONDS:
            raise CallbackRejected("stale_timestamp")
        cache = self._cache if self._cache is not None else default_cache
        if not cache.add(f"paygw:cb-nonce:{client_id}:{nonce}", 1, CALLBACK_NONCE_SECONDS):
            raise CallbackRejected("replayed_nonce")
        data = parse_json_object(body) if method.upper() == "POST" else None
        try:
            if data is None:
                raise MalformedReply("body")
            return parse_transfer(data)
        except MalformedReply:
            raise CallbackRejected("bad_body") from None

    # --- statements --------------------------------------------------------------------------

    def fetch_statement(self, day: date) -> bytes:
        """The provider's CSV statement of `day` (China time), unparsed; see `parse_statement`.

        Raises `GatewayUnavailable` for any trouble, including 404 `statement_not_ready`.
        """
        if not isinstance(day, date) or isinstance(day, datetime):
            raise TypeError("day must be a date")
        try:
            reply = self._transport.exchange(
                "GET", f"{STATEMENTS_PATH}{day.isoformat()}", max_bytes=MAX_STATEMENT_BYTES
            )
        except ServiceError as exc:
            raise GatewayUnavailable(exc.reason) from None
        if reply.status != 200:
            # The provider's own word for a 4xx (`statement_not_ready`), else the status.
            token = _error_token(reply.raw) if 400 <= reply.status < 500 else ""
            raise GatewayUnavailable(token or f"http_{reply.status}")
        if not reply.content_type.split(";")[0].strip().lower() == "text/csv":
            raise GatewayUnavailable("malformed_reply")
        return reply.raw


# --- Factory ---------------------------------------------------------------------------------


def get_payment_gateway() -> PaymentGateway:
    """The configured provider: an `HttpPaymentGateway` built from the settings
    `PAYMENT_GATEWAY_BASE_URL`, `_CLIENT_ID`, `_SECRET`, `_CALLBACK_SECRET` (each secret ≥ 16
    characters), `_TIMEOUT` (seconds, default 5) and `_NOTIFY_URL` (optional). There is no
    embedded fallback that pays nobody: for development run the sandbox
    (`python -m tools.sandbox.payment_gateway`) and point the settings at it. Raises
    `ImproperlyConfigured` when a setting is missing or invalid.
    """
    base_url = getattr(settings, "PAYMENT_GATEWAY_BASE_URL", "")
    if not base_url:
        raise ImproperlyConfigured(
            "PAYMENT_GATEWAY_BASE_URL must be set (for development: run "
            "`python -m tools.sandbox.payment_gateway` and point the PAYMENT_GATEWAY_* "
            "settings at it)."
        )
    return HttpPaymentGateway(
        base_url=base_url,
        client_id=getattr(settings, "PAYMENT_GATEWAY_CLIENT_ID", ""),
        secret=getattr(settings, "PAYMENT_GATEWAY_SECRET", ""),
        callback_secret=getattr(settings, "PAYMENT_GATEWAY_CALLBACK_SECRET", ""),
        timeout=getattr(settings, "PAYMENT_GATEWAY_TIMEOUT", DEFAULT_TIMEOUT_SECONDS),
        notify_url=getattr(settings, "PAYMENT_GATEWAY_NOTIFY_URL", "") or "",
    )
