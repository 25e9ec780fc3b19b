"""Sandbox of the real-name identity service (docs/adapters.md, "Identity verification").

`POST /v1/identity/verify` with `{"name", "id_number", "phone"?}` answers
`{"result": "match" | "mismatch" | "not_found", "phone_match": true | false | null}`:
`not_found` when the ID number is not on the register, `mismatch` when it is with another name,
`match` otherwise; `phone_match` is null unless the result is `match` and a phone was sent
(and the register knows the person's phone).

Seed it with `IdentitySandbox(people={id_number: (name, phone or None)})` or `add_person(...)`.
Run alone::

    python -m tools.sandbox.identity_service --port 8702 \\
        --person 410102199003074474,张三,13800000000
"""

from __future__ import annotations

import argparse
import unicodedata
from typing import Any

from .base import JsonSandbox, Route, run_cli

VERIFY_PATH = "/v1/identity/verify"
MAX_FIELD_LENGTH = 64


def _canonical(value: str) -> str:
    """How the register compares: NFKC, no whitespace, upper case (for the X check digit)."""
    text = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in text if not ch.isspace()).upper()


class IdentitySandbox(JsonSandbox):
    """In-memory identity register speaking the identity protocol."""

    service_name = "identity-service"
    default_port = 8702

    def __init__(self, *, people: dict[str, tuple[str, str | None]] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.people: dict[str, tuple[str, str | None]] = {}
        for id_number, (name, phone) in (people or {}).items():
            self.add_person(id_number, name, phone)

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("POST", VERIFY_PATH): self.verify}

    def add_person(self, id_number: str, name: str, phone: str | None = None) -> None:
        with self.lock:
            self.people[_canonical(id_number)] = (name, phone)

    def verify(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name, id_number, phone = (
            payload.get("name"),
            payload.get("id_number"),
            payload.get("phone"),
        )
        bad = [
            field
            for field, value, optional in (
                ("name", name, False),
                ("id_number", id_number, False),
                ("phone", phone, True),
            )
            if not (
                (optional and value is None)
                or (isinstance(value, str) and 0 < len(value) <= MAX_FIELD_LENGTH)
            )
        ]
        if bad:
            return 400, {"error": "invalid_request", "fields": bad}
        person = self.people.get(_canonical(str(id_number)))
        if person is None:
            return 200, {"result": "not_found", "phone_match": None}
        known_name, known_phone = person
        if _canonical(known_name) != _canonical(str(name)):
            return 200, {"result": "mismatch", "phone_match": None}
        phone_match = None
        if phone is not None and known_phone is not None:
            phone_match = _canonical(str(phone)) == _canonical(known_phone)
        return 200, {"result": "match", "phone_match": phone_match}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--person",
        action="append",
        default=[],
        metavar="ID,NAME[,PHONE]",
        help="a person on the register (repeatable)",
    )


def _configure(sandbox: JsonSandbox, args: argparse.Namespace) -> None:
    if not isinstance(sandbox, IdentitySandbox):
        raise TypeError("an IdentitySandbox is expected")
    for item in args.person:
        id_number, name, *rest = item.split(",")
        sandbox.add_person(id_number, name, rest[0] if rest else None)
    print(f"  {len(sandbox.people)} people on the register")


def main(argv: list[str] | None = None) -> None:
    run_cli(
        IdentitySandbox,
        description="Identity verification sandbox",
        default_port=IdentitySandbox.default_port,
        argv=argv,
        add_arguments=_add_arguments,
        configure=_configure,
    )


if __name__ == "__main__":
    main()
