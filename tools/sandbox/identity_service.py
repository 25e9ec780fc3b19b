"""Sandbox of the real-name identity service (docs/adapters.md, "Identity verification").

`POST /v1/identity/verify` with `{"name", "id_number", "phone"?}` answers
`{"result": "match" | "mismatch" | "not_found", "phone_match": true | false | null}`:
`not_found` when the ID number is not on the register, `mismatch` when it is with another name,
`match` otherwise; `phone_match` is null unless the result is `match` and a phone was sent
(and the register knows the person's phone).

`POST /v1/identity/account-verify` with `{"name", "id_number", "account_type", "account_no"}`
answers `{"result": "match" | "mismatch" | "not_found"}`: `not_found` when no such account is
known, `mismatch` when it is held by another ID number or the name does not fit its holder,
`match` otherwise.

Seed it with `IdentitySandbox(people={id_number: (name, phone or None)},
accounts={(account_type, account_no): id_number})`, `add_person(...)` or `add_account(...)`.
Run alone::

    python -m tools.sandbox.identity_service --port 8702 \\
        --person 410102199003074474,张三,13800000000 \\
        --account bank_card,6222020000000000001,410102199003074474
"""

from __future__ import annotations

import argparse
import unicodedata
from typing import Any

from .base import JsonSandbox, Route, run_cli

VERIFY_PATH = "/v1/identity/verify"
ACCOUNT_VERIFY_PATH = "/v1/identity/account-verify"
ACCOUNT_TYPES = ("bank_card", "wallet")
MAX_FIELD_LENGTH = 64


def _canonical_account(account_type: str, value: str) -> str:
    """How the register compares account numbers: NFKC, no whitespace; cards also no dashes.
    Wallet ids keep their case."""
    text = "".join(ch for ch in unicodedata.normalize("NFKC", value) if not ch.isspace())
    return text.replace("-", "") if account_type == "bank_card" else text


def _canonical(value: str) -> str:
    """How the register compares: NFKC, no whitespace, upper case (for the X check digit)."""
    text = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in text if not ch.isspace()).upper()


class IdentitySandbox(JsonSandbox):
    """In-memory identity register speaking the identity protocol."""

    service_name = "identity-service"
    default_port = 8702

    def __init__(
        self,
        *,
        people: dict[str, tuple[str, str | None]] | None = None,
        accounts: dict[tuple[str, str], str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.people: dict[str, tuple[str, str | None]] = {}
        self.accounts: dict[tuple[str, str], str] = {}
        for id_number, (name, phone) in (people or {}).items():
            self.add_person(id_number, name, phone)
        for (account_type, account_no), holder in (accounts or {}).items():
            self.add_account(account_type, account_no, holder)

    def routes(self) -> dict[tuple[str, str], Route]:
        return {
            ("POST", VERIFY_PATH): self.verify,
            ("POST", ACCOUNT_VERIFY_PATH): self.verify_account,
        }

    def add_person(self, id_number: str, name: str, phone: str | None = None) -> None:
        with self.lock:
            self.people[_canonical(id_number)] = (name, phone)

    def add_account(self, account_type: str, account_no: str, id_number: str) -> None:
        """A payout account held by the person with `id_number` (bank card or wallet)."""
        if account_type not in ACCOUNT_TYPES:
            raise ValueError(f"account_type must be one of {ACCOUNT_TYPES}")
        with self.lock:
            key = (account_type, _canonical_account(account_type, account_no))
            self.accounts[key] = _canonical(id_number)

    def verify_account(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        values = {
            name: payload.get(name) for name in ("name", "id_number", "account_type", "account_no")
        }
        bad = [
            name
            for name, value in values.items()
            if not (isinstance(value, str) and 0 < len(value) <= MAX_FIELD_LENGTH)
        ]
        if "account_type" not in bad and values["account_type"] not in ACCOUNT_TYPES:
            bad.append("account_type")
        if bad:
            return 400, {"error": "invalid_request", "fields": bad}
        account_type = str(values["account_type"])
        key = (account_type, _canonical_account(account_type, str(values["account_no"])))
        holder = self.accounts.get(key)
        if holder is None:
            return 200, {"result": "not_found"}
        person = self.people.get(holder)
        if holder != _canonical(str(values["id_number"])) or person is None:
            return 200, {"result": "mismatch"}
        if _canonical(person[0]) != _canonical(str(values["name"])):
            return 200, {"result": "mismatch"}
        return 200, {"result": "match"}

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
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="TYPE,ACCOUNT_NO,ID",
        help="a payout account (bank_card or wallet) held by that ID number (repeatable)",
    )


def _configure(sandbox: JsonSandbox, args: argparse.Namespace) -> None:
    if not isinstance(sandbox, IdentitySandbox):
        raise TypeError("an IdentitySandbox is expected")
    for item in args.person:
        id_number, name, *rest = item.split(",")
        sandbox.add_person(id_number, name, rest[0] if rest else None)
    for item in args.account:
        account_type, account_no, id_number = item.split(",")
        sandbox.add_account(account_type, account_no, id_number)
    print(f"  {len(sandbox.people)} people, {len(sandbox.accounts)} accounts on the register")


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
