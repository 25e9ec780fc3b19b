"""Domain errors: every rejection carries a stable machine code and a translated message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    """Base of every app's error type. `code` is stable (e.g. `invoice.duplicate`); `message`
    is a translatable text for people; `detail` holds machine-readable context."""

    code: str = "error"
    status_code: int = 400
    #: An app's translated message per code, used when an error is raised without a message.
    messages: Mapping[str, Any] = {}

    def __init__(
        self,
        code: str | None = None,
        message: Any = None,
        *,
        detail: dict[str, Any] | None = None,
        status_code: int | None = None,
    ):
        self.code = code or self.code
        self.message = message if message is not None else self.messages.get(self.code, self.code)
        self.detail = detail or {}
        if status_code is not None:
            self.status_code = status_code
        super().__init__(f"{self.code}: {self.message}")


class InvalidTransition(DomainError):
    """A state change that the transition table does not allow."""

    code = "state.invalid_transition"
    status_code = 409
