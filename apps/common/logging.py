"""Logging that never carries personal data or secrets.

Services log ids, not people; this filter is the second line: whatever reaches a handler
(request lines with query strings, exception messages, third-party logs) is scrubbed of
resident ID numbers, mobile numbers and bank-card-like digit runs before it is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

# 18-character resident ID (17 digits + digit/X), mainland mobile numbers, 16-19 digit cards
# (not the fraction of a decimal number such as a duration "0.0131830000000628s").
_PATTERNS = (
    (re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])"), r"\1********\2"),
    (re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)"), r"\1****\2"),
    (re.compile(r"(?<![\d.])(\d{4})\d{8,11}(\d{4})(?!\d)"), r"\1********\2"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactPersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# --- Request ids ------------------------------------------------------------------------------
# One id per HTTP request (taken from a trusted X-Request-ID, e.g. nginx's $request_id, or made
# here), carried into the Celery tasks the request queues (a task header) and into every log
# record written while serving either. `task_id` names the Celery task being run, if any.

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)
task_name_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "task_name", default=None
)

REQUEST_ID_HEADER = "X-Request-ID"
# What an incoming id may look like: a uuid, nginx's 32 hex digits, or similar. Anything else
# (too long, spaces, control characters) is replaced by a fresh id rather than logged.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    """The incoming id if it is well formed, else a new one."""
    if value and _REQUEST_ID_RE.fullmatch(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestContextFilter(logging.Filter):
    """Puts the current request id and Celery task on every record (None outside of both)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "task_id", None) is None:
            record.task_id = task_id_var.get()
        if getattr(record, "task_name", None) is None:
            record.task_name = task_name_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (journald → Loki/ELK) parse without rules.

    Keys: ts (UTC ISO 8601), level, logger, message, request_id, task_id, task_name, process,
    and exc (the traceback, already scrubbed by RedactPersonalDataFilter) when there is one.
    """

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
            "task_id": getattr(record, "task_id", None) or task_id_var.get(),
            "task_name": getattr(record, "task_name", None) or task_name_var.get(),
            "process": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """The development format, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(rid)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.rid = getattr(record, "request_id", None) or request_id_var.get() or "-"
        return super().format(record)
