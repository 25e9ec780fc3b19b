"""Text messages to consumers' phones (log-in codes …), through a configurable backend.

`get_sms_backend().send(phone=..., template="login_code", params={"code": "123456"})` returns
the gateway's message id or raises `SMSError` — `sms.invalid_phone` when the gateway refuses the
number, `sms.unavailable` for everything else (timeout, outage, refused credentials, rate limit,
garbled reply). Nothing is retried here: a retried send may reach the phone twice.

Where the code goes (personal data and secrets never reach the log stream):
- `ConsoleSMSBackend` (the embedded default, development only) logs one line with the MASKED
  phone, the template name and the message id, and prints the message with its parameters (the
  code) to standard output, which is the developer's terminal, never the logging handlers. With
  `DJANGO_ENV=production` it prints nothing, and `get_sms_backend()` refuses it altogether.
- `HttpSMSBackend` sends through the gateway (docs/adapters.md); its logs name the template and
  the masked phone only.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError
from apps.common.http import (
    ServiceError,
    ServiceRejected,
    check_base_url,
    check_credentials,
    check_timeout,
    shared_client,
)
from apps.common.masking import mask_phone

logger = logging.getLogger(__name__)

SEND_PATH = "/v1/sms/send"
DEFAULT_BACKEND = "apps.accounts.sms.ConsoleSMSBackend"
DEFAULT_TIMEOUT_SECONDS = 5.0
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TEMPLATE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class SMSError(DomainError):
    """A message could not be sent. `reason` is the adapter's token (`timeout`, `http_503` …)
    for logs; it is not part of `detail`, which goes to API clients."""

    code = "sms.unavailable"
    status_code = 503

    def __init__(self, code: str | None = None, message: Any = None, *, reason: str = "", **kw):
        super().__init__(code, message, **kw)
        self.reason = reason


def _check_message(phone: object, template: object, params: object) -> dict[str, str]:
    if not isinstance(phone, str) or not phone:
        raise TypeError("phone must be non-empty text")
    if not isinstance(template, str) or not _TEMPLATE.fullmatch(template):
        raise ValueError("template must be a template name such as 'login_code'")
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise TypeError("params must map names to text")
    return dict(params)


class SMSBackend:
    """Base of the SMS backends. `send` returns the message id, or raises `SMSError`."""

    @classmethod
    def from_settings(cls) -> SMSBackend:
        return cls()

    def send(self, *, phone: str, template: str, params: Mapping[str, str]) -> str:
        return self._send(
            phone=phone, template=template, params=_check_message(phone, template, params)
        )

    def _send(self, *, phone: str, template: str, params: dict[str, str]) -> str:
        raise NotImplementedError


class ConsoleSMSBackend(SMSBackend):
    """Development only: the message goes to the developer's terminal, not to a phone.

    Logs `template`, the masked phone and the message id; prints the parameters (the code) to
    `stream` (standard output) only when `settings.PRODUCTION` is false.
    """

    def __init__(self, stream: Any = None):
        self._stream = stream

    def _send(self, *, phone: str, template: str, params: dict[str, str]) -> str:
        message_id = f"console-{uuid.uuid4().hex}"
        masked = mask_phone(phone)
        logger.info("sms (console) template=%s phone=%s id=%s", template, masked, message_id)
        if not getattr(settings, "PRODUCTION", False):
            stream = self._stream or sys.stdout
            shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
            print(f"[SMS to {masked}] {template}: {shown}", file=stream, flush=True)
        return message_id


class HttpSMSBackend(SMSBackend):
    """The SMS gateway over HTTP (docs/adapters.md, "SMS gateway").

    Raises `SMSError("sms.invalid_phone")` (400) when the gateway refuses the number and
    `SMSError("sms.unavailable")` (503) for every other failure.
    """

    service_name = "sms-gateway"

    def __init__(self, base_url: str, client_id: str, secret: str, timeout: float):
        self._client = shared_client(
            service=self.service_name,
            base_url=base_url,
            client_id=client_id,
            secret=secret,
            timeout=check_timeout(timeout, setting="SMS_GATEWAY_TIMEOUT"),
        )

    @classmethod
    def from_settings(cls) -> HttpSMSBackend:
        client_id = getattr(settings, "SMS_GATEWAY_CLIENT_ID", "")
        secret = getattr(settings, "SMS_GATEWAY_SECRET", "")
        check_credentials(client_id, secret, prefix="SMS_GATEWAY_")
        return cls(
            base_url=check_base_url(
                getattr(settings, "SMS_GATEWAY_URL", ""), setting="SMS_GATEWAY_URL"
            ),
            client_id=client_id,
            secret=secret,
            timeout=check_timeout(
                getattr(settings, "SMS_GATEWAY_TIMEOUT", DEFAULT_TIMEOUT_SECONDS),
                setting="SMS_GATEWAY_TIMEOUT",
            ),
        )

    def _send(self, *, phone: str, template: str, params: dict[str, str]) -> str:
        payload = {"phone": phone, "template": template, "params": params}
        try:
            reply = self._client.post(SEND_PATH, payload)
        except ServiceRejected as exc:
            if exc.error == "invalid_phone":
                logger.info("sms refused: invalid phone %s", mask_phone(phone))
                raise SMSError(
                    "sms.invalid_phone",
                    _("This phone number cannot receive text messages."),
                    status_code=400,
                    reason=exc.error,
                ) from None
            raise self._unavailable(exc.error or exc.reason) from None
        except ServiceError as exc:
            raise self._unavailable(exc.reason) from None
        message_id = reply.data.get("message_id")
        if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
            logger.warning("%s reply does not follow the protocol", self.service_name)
            raise self._unavailable("malformed_reply")
        logger.info("sms sent template=%s phone=%s id=%s", template, mask_phone(phone), message_id)
        return message_id

    @staticmethod
    def _unavailable(reason: str) -> SMSError:
        return SMSError(
            "sms.unavailable",
            _("Text messages cannot be sent right now. Please try again later."),
            reason=reason,
        )


def get_sms_backend() -> SMSBackend:
    """The backend named by `SMS_BACKEND` (a dotted path; default the console backend).

    `HttpSMSBackend` reads `SMS_GATEWAY_URL`, `SMS_GATEWAY_CLIENT_ID`, `SMS_GATEWAY_SECRET` and
    `SMS_GATEWAY_TIMEOUT` (seconds, default 5). The console backend is refused in production.
    """
    path = getattr(settings, "SMS_BACKEND", DEFAULT_BACKEND) or DEFAULT_BACKEND
    try:
        backend_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"SMS_BACKEND {path!r} cannot be imported.") from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, SMSBackend)):
        raise ImproperlyConfigured(f"SMS_BACKEND {path!r} is not an SMSBackend.")
    if issubclass(backend_class, ConsoleSMSBackend) and getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured(
            "SMS_BACKEND is the console backend, which is for development only; production "
            "must set SMS_BACKEND=apps.accounts.sms.HttpSMSBackend."
        )
    return backend_class.from_settings()
