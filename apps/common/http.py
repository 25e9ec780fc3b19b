"""JSON over HTTP to external services: signed requests, explicit timeouts, clean failures.

Every adapter to an outside service (tax verification, identity verification, SMS gateway …)
sends its requests through `JsonServiceClient`, which follows the common protocol written down
in `docs/adapters.md`:

- The body is one UTF-8 JSON object; the reply of a success (2xx) is one JSON object too.
- Each request is signed: `X-Client-Id`, `X-Timestamp` (unix seconds), `X-Nonce` (random hex)
  and `X-Signature`, the hex HMAC-SHA256 under the shared secret of
  `"{timestamp}\\n{nonce}\\n{METHOD}\\n{path}\\n{sha256(body) hex}"` (`signing_string`).
- Every request has an explicit connect and read timeout; nothing is retried here (a retry of a
  verification burns quota, a retry of an SMS may send it twice: callers decide).

Invariant: `post()` either returns a `JsonReply` holding a 2xx status and a JSON object, or
raises a `ServiceError` whose `reason` is a short stable token (`timeout`, `connection_error`,
`malformed_reply`, `http_<status>`, or the service's own error token on a 429) — never an
exception of the HTTP library, and never with personal data in its text. Logs name the service,
the path, the status or reason and the time taken; never a body, a header value or a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# A reply larger than this is refused unread (no service of ours answers with more than a few KB).
MAX_REPLY_BYTES = 1024 * 1024
# Plain http is accepted only to this machine (the sandboxes); anything else needs TLS, because
# request bodies carry names, ID numbers and phone numbers.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_TIMEOUT_SECONDS = 120.0
MIN_SECRET_LENGTH = 16
USER_AGENT = "lotteryinvoice-adapter/1"
# The service's own error token (e.g. `{"error": "quota_exceeded"}`) is passed on only if it
# looks like one: it ends up in logs and in stored details.
_ERROR_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,39}")


# --- Signing --------------------------------------------------------------------------------


def body_digest(body: bytes) -> str:
    """Lower-case hex SHA-256 of the exact body bytes (of `b""` when there is no body)."""
    return hashlib.sha256(body).hexdigest()


def signing_string(*, timestamp: int | str, nonce: str, method: str, path: str, body: bytes) -> str:
    """The canonical text that is signed; `path` is the request target exactly as sent."""
    return f"{timestamp}\n{nonce}\n{method.upper()}\n{path}\n{body_digest(body)}"


def sign(
    secret: str, *, timestamp: int | str, nonce: str, method: str, path: str, body: bytes
) -> str:
    """Lower-case hex HMAC-SHA256 of `signing_string(...)` under the UTF-8 bytes of `secret`."""
    message = signing_string(timestamp=timestamp, nonce=nonce, method=method, path=path, body=body)
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_headers(
    *,
    client_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four signature headers for one request (fresh timestamp and 128-bit nonce by default)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {
        "X-Client-Id": client_id,
        "X-Timestamp": str(timestamp),
        "X-Nonce": nonce,
        "X-Signature": sign(
            secret, timestamp=timestamp, nonce=nonce, method=method, path=path, body=body
        ),
    }


# --- Errors and replies ----------------------------------------------------------------------


class ServiceError(Exception):
    """No usable answer from an external service.

    `reason` is a stable token for logs, stored details and tests; `status` is the HTTP status
    when there was one; `error` is the service's own error token from the reply body, if any.
    """

    def __init__(self, reason: str, *, status: int | None = None, error: str = ""):
        self.reason = reason
        self.status = status
        self.error = error
        super().__init__(reason)


class ServiceUnavailable(ServiceError):
    """Transport trouble, an outage, a refused credential, a rate limit or a garbled reply:
    asking again later may well succeed."""


class ServiceRejected(ServiceError):
    """The service understood the request and refused it (a 4xx other than 401, 403 and 429),
    e.g. `{"error": "invalid_phone"}`: asking again with the same input will not help."""


@dataclass(frozen=True)
class JsonReply:
    """A successful reply: its 2xx status and its JSON object (amounts as `str` or `Decimal`)."""

    status: int
    data: dict[str, Any]


def _error_token(data: object) -> str:
    if isinstance(data, dict):
        token = data.get("error")
        if isinstance(token, str) and _ERROR_TOKEN.fullmatch(token):
            return token
    return ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} in reply")


def parse_json_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object in `raw`, or None if it is not exactly one well-formed JSON object.

    Floats are read as `Decimal` (money is never a float here); NaN and Infinity are refused.
    """
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


# --- Configuration checks --------------------------------------------------------------------


def check_base_url(base_url: str, *, setting: str = "base_url") -> str:
    """Validate a configured service URL and return it without a trailing slash.

    Only `https://…`, or `http://` to a loopback host (the local sandboxes), with no user info,
    query or fragment. Raises `ImproperlyConfigured` naming `setting` otherwise.
    """
    if not isinstance(base_url, str) or not base_url:
        raise ImproperlyConfigured(f"{setting} must be set to the service's URL.")
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ImproperlyConfigured(f"{setting} is not a valid URL.") from exc
    if parts.scheme not in {"http", "https"} or not host:
        raise ImproperlyConfigured(f"{setting} must be an http(s) URL with a host.")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ImproperlyConfigured(
            f"{setting} must use https (plain http is allowed only to 127.0.0.1/localhost)."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{setting} must not carry credentials, a query or a fragment.")
    return base_url.rstrip("/")


def check_timeout(timeout: object, *, setting: str = "timeout") -> float:
    """A timeout in seconds: a number with 0 < timeout <= 120."""
    try:
        value = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{setting} must be a number of seconds.") from exc
    if not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise ImproperlyConfigured(f"{setting} must be > 0 and <= {MAX_TIMEOUT_SECONDS:g} s.")
    return value


def check_credentials(client_id: object, secret: object, *, prefix: str = "") -> None:
    """A client id and a shared secret of at least 16 characters must be configured."""
    if not isinstance(client_id, str) or not client_id.strip():
        raise ImproperlyConfigured(f"{prefix}CLIENT_ID must be set.")
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
        raise ImproperlyConfigured(
            f"{prefix}SECRET must be set (at least {MIN_SECRET_LENGTH} characters)."
        )


# --- The client ------------------------------------------------------------------------------


class JsonServiceClient:
    """Signed JSON POSTs to one external service, with explicit timeouts and clean failures.

    Thread-safe (one connection pool per client). `timeout` bounds the connection and, separately,
    each wait for reply bytes, so a silent server costs at most `timeout` seconds per phase.
    """

    def __init__(
        self,
        *,
        service: str,
        base_url: str,
        client_id: str,
        secret: str,
        timeout: float,
        clock: Callable[[], float] = time.time,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ):
        self.service = service
        self.base_url = check_base_url(base_url)
        check_credentials(client_id, secret)
        self.client_id = client_id
        self._secret = secret
        self.timeout = check_timeout(timeout)
        self._clock = clock
        self._max_reply_bytes = max_reply_bytes
        parts = urlsplit(self.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=16,
            retries=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
        )

    def __repr__(self) -> str:  # never show the secret
        return f"JsonServiceClient(service={self.service!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._pool.clear()

    def post(self, path: str, payload: Mapping[str, Any]) -> JsonReply:
        """POST `payload` as JSON to `base_url + path`; see the module invariant."""
        body = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        target = self._base_path + path
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **signed_headers(
                client_id=self.client_id,
                secret=self._secret,
                method="POST",
                path=target,
                body=body,
                timestamp=int(self._clock()),
            ),
        }
        started = time.monotonic()
        try:
            status, raw = self._send(target, body, headers)
            reply = self._interpret(status, raw)
        except ServiceError as exc:
            self._log_failure(path, exc, started)
            raise
        logger.debug("%s POST %s -> %s (%.0f ms)", self.service, path, status, _ms_since(started))
        return reply

    def _send(self, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            response = self._pool.request(
                "POST",
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
            if declared.isdigit() and int(declared) > self._max_reply_bytes:
                raise ServiceUnavailable("malformed_reply", status=response.status)
            raw = response.read(self._max_reply_bytes + 1)
            if len(raw) > self._max_reply_bytes:
                raise ServiceUnavailable("malformed_reply", status=response.status)
            complete = True
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServiceUnavailable(_transport_reason(exc), status=response.status) from None
        finally:
            if not complete:
                response.close()  # never hand a half-read connection back to the pool
            response.release_conn()
        return response.status, raw

    @staticmethod
    def _interpret(status: int, raw: bytes) -> JsonReply:
        data = parse_json_object(raw)
        if 200 <= status < 300:
            if data is None:
                raise ServiceUnavailable("malformed_reply", status=status)
            return JsonReply(status=status, data=data)
        error = _error_token(data)
        if status == 429:
            raise ServiceUnavailable(error or "http_429", status=status, error=error)
        if 400 <= status < 500 and status not in (401, 403, 407, 408):
            raise ServiceRejected(f"http_{status}", status=status, error=error)
        # 3xx (never followed), 401/403 (credentials), 408, 5xx and anything odd.
        raise ServiceUnavailable(f"http_{status}", status=status, error=error)

    def _log_failure(self, path: str, exc: ServiceError, started: float) -> None:
        # A refused credential is a misconfiguration: an error. The rest may pass on its own.
        level = logging.ERROR if exc.status in (401, 403) else logging.WARNING
        logger.log(
            level,
            "%s POST %s failed: %s%s (%.0f ms)",
            self.service,
            path,
            exc.reason,
            f" error={exc.error}" if exc.error and exc.error != exc.reason else "",
            _ms_since(started),
        )


def _transport_reason(exc: BaseException) -> str:
    # NewConnectionError (refused, unresolvable) subclasses ConnectTimeoutError in urllib3 2.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection_error"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    return "connection_error"


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


@lru_cache(maxsize=16)
def shared_client(
    *, service: str, base_url: str, client_id: str, secret: str, timeout: float
) -> JsonServiceClient:
    """One client (and so one connection pool) per configuration, shared by the factories."""
    return JsonServiceClient(
        service=service, base_url=base_url, client_id=client_id, secret=secret, timeout=timeout
    )
