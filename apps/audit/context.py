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


_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "audit_context", default=AuditContext()
)


def current() -> AuditContext:
    return _current.get()


def set_context(ctx: AuditContext) -> contextvars.Token:
    return _current.set(ctx)


def reset_context(token: contextvars.Token) -> None:
    _current.reset(token)
