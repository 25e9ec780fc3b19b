"""Sandbox of the SMS gateway (docs/adapters.md, "SMS gateway").

`POST /v1/sms/send` with `{"phone", "template", "params"}` answers 200 `{"message_id"}`, or 400
`{"error": "invalid_phone" | "unknown_template" | "invalid_params"}`. Sent messages are kept in
`messages`, so a test reads the code it would have received: `sandbox.last_code(phone)`.

Run alone: `python -m tools.sandbox.sms_gateway --port 8703` (prints each message it "sends").
"""

from __future__ import annotations

import argparse
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .base import JsonSandbox, Route, run_cli

SEND_PATH = "/v1/sms/send"
MAINLAND_MOBILE = re.compile(r"1[3-9][0-9]{9}")
# Template name → the parameters it needs (all text).
DEFAULT_TEMPLATES: dict[str, tuple[str, ...]] = {"login_code": ("code",)}
_CODE = re.compile(r"[0-9]{4,8}")


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    phone: str
    template: str
    params: dict[str, str]
    at: float = field(default_factory=time.time)


class SMSSandbox(JsonSandbox):
    """An SMS gateway that delivers nothing and remembers everything."""

    service_name = "sms-gateway"
    default_port = 8703

    def __init__(
        self,
        *,
        templates: dict[str, tuple[str, ...]] | None = None,
        echo: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.templates = dict(templates if templates is not None else DEFAULT_TEMPLATES)
        self.messages: list[SentMessage] = []
        self.echo = echo

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("POST", SEND_PATH): self.send}

    def messages_to(self, phone: str) -> list[SentMessage]:
        with self.lock:
            return [m for m in self.messages if m.phone == phone]

    def last_code(self, phone: str) -> str | None:
        """The `code` parameter of the latest message to `phone`, if any."""
        sent = self.messages_to(phone)
        return sent[-1].params.get("code") if sent else None

    def send(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        phone, template, params = (
            payload.get("phone"),
            payload.get("template"),
            payload.get("params"),
        )
        if not isinstance(phone, str) or not MAINLAND_MOBILE.fullmatch(phone):
            return 400, {"error": "invalid_phone"}
        if not isinstance(template, str) or template not in self.templates:
            return 400, {"error": "unknown_template"}
        needed = self.templates[template]
        if (
            not isinstance(params, dict)
            or set(params) != set(needed)
            or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in params.values())
            or ("code" in params and not _CODE.fullmatch(params["code"]))
        ):
            return 400, {"error": "invalid_params"}
        message = SentMessage(
            message_id=f"sbx-{uuid.uuid4().hex}", phone=phone, template=template, params=params
        )
        self.messages.append(message)
        if self.echo:
            shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
            print(f"[SMS {message.message_id} to {phone}] {template}: {shown}", flush=True)
        return 200, {"message_id": message.message_id}


def _configure(sandbox: JsonSandbox, args: argparse.Namespace) -> None:
    if not isinstance(sandbox, SMSSandbox):
        raise TypeError("an SMSSandbox is expected")
    sandbox.echo = True


def main(argv: list[str] | None = None) -> None:
    run_cli(
        SMSSandbox,
        description="SMS gateway sandbox",
        default_port=SMSSandbox.default_port,
        argv=argv,
        configure=_configure,
    )


if __name__ == "__main__":
    main()
