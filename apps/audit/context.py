"""Who and where, for the audit trail: set per request by the middleware, per task by tasks."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditContext:
    request_id: str = ""
    ip: str | None = None
    actor_id: int | None = None
    actor_username: str = ""


_EMPTY = AuditContext()
_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "audit_context", default=None
)


def current() -> AuditContext:
    return _current.get() or _EMPTY


def set_context(ctx: AuditContext) -> contextvars.Token:
    return _current.set(ctx)


def reset_context(token: contextvars.Token) -> None:
    _current.reset(token)
