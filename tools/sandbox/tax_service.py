"""Sandbox of the national invoice verification service (docs/adapters.md, "Tax verification").

`POST /v1/invoices/verify` with `{"number", "issue_date", "total"}` answers `found` (with the
invoice), `not_found` (unknown, or issued less than `lag_seconds` ago: the real database lags
issuance by about an hour), or `mismatch` (the number exists, the date and/or total differ).
Each invoice number may be checked `quota_per_day` times per China day (default 5); beyond that
→ 429 `{"error": "quota_exceeded"}`.

Seed it with `add_invoice(...)`; `red_flush(number, amount)` reverses an invoice in place.
Run alone: `python -m tools.sandbox.tax_service --port 8701 --demo`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .base import JsonSandbox, Route, run_cli

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
VERIFY_PATH = "/v1/invoices/verify"
CENT = Decimal("0.01")
_NUMBER = re.compile(r"[0-9]{20}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TOTAL = re.compile(r"[0-9]{1,12}\.[0-9]{2}")


def _money(value: Decimal | str | int) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


class TaxSandbox(JsonSandbox):
    """In-memory tax registry speaking the verification protocol."""

    service_name = "tax-service"
    rate_limit_error = "quota_exceeded"
    default_port = 8701

    def __init__(
        self,
        *,
        records: dict[str, dict[str, Any]] | None = None,
        quota_per_day: int = 5,
        lag_seconds: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.records: dict[str, dict[str, Any]] = {}
        self.quota_per_day = quota_per_day
        self.lag_seconds = lag_seconds
        self._checks: dict[tuple[str, date], int] = {}
        for number, record in (records or {}).items():
            self.records[number] = {**record, "number": number}

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("POST", VERIFY_PATH): self.verify}

    # --- seeding -----------------------------------------------------------------------------

    def add_invoice(
        self,
        number: str,
        *,
        total: Decimal | str = "120.00",
        tax: Decimal | str | None = None,
        issued_at: datetime | None = None,
        seller_uscc: str = "91410105MA00000001",
        seller_name: str = "郑州示例商贸有限公司",
        buyer_name: str = "张三",
        buyer_tax_id: str = "",
        invoice_type: str = "32",
        issuer_kind: str = "self",
        industry_code: str = "5211",
        area_code: str = "410105",
        status: str = "normal",
        red_total: Decimal | str = "0.00",
        is_red: bool = False,
        reverses_number: str = "",
    ) -> dict[str, Any]:
        """Add (or replace) an invoice as the protocol's `invoice` object; returns it.

        `issued_at` defaults to two hours ago (visible despite the lag) and must be aware; `tax`
        defaults to 13 % VAT contained in `total`.
        """
        total_d = _money(total)
        tax_d = _money(tax) if tax is not None else _money(total_d * 13 / 113)
        when = issued_at or datetime.now(UTC) - timedelta(hours=2)
        if when.tzinfo is None:
            raise ValueError("issued_at must be timezone-aware")
        record = {
            "number": number,
            "invoice_type": invoice_type,
            "issued_at": when.astimezone(CHINA).isoformat(timespec="seconds"),
            "seller_uscc": seller_uscc,
            "seller_name": seller_name,
            "buyer_name": buyer_name,
            "buyer_tax_id": buyer_tax_id,
            "amount": f"{total_d - tax_d:.2f}",
            "tax": f"{tax_d:.2f}",
            "total": f"{total_d:.2f}",
            "issuer_kind": issuer_kind,
            "industry_code": industry_code,
            "area_code": area_code,
            "status": status,
            "red_total": f"{_money(red_total):.2f}",
            "is_red": is_red,
            "reverses_number": reverses_number,
        }
        with self.lock:
            self.records[number] = record
        return record

    def red_flush(self, number: str, amount: Decimal | str | None = None) -> dict[str, Any]:
        """Reverse `amount` of an invoice (all of it by default), as a red invoice would."""
        with self.lock:
            record = self.records[number]
            total = Decimal(record["total"])
            red = Decimal(record["red_total"]) + (_money(amount) if amount is not None else total)
            record["red_total"] = f"{min(red, total):.2f}"
            record["status"] = "red_flushed" if red >= total else "partially_red_flushed"
            return record

    # --- the endpoint ------------------------------------------------------------------------

    def verify(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        number, issue_date, total = (
            payload.get("number"),
            payload.get("issue_date"),
            payload.get("total"),
        )
        bad = []
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            bad.append("number")
        asked_date = None
        if isinstance(issue_date, str) and _DATE.fullmatch(issue_date):
            with contextlib.suppress(ValueError):
                asked_date = date.fromisoformat(issue_date)
        if asked_date is None:
            bad.append("issue_date")
        if not isinstance(total, str) or not _TOTAL.fullmatch(total):
            bad.append("total")
        if bad:
            return 400, {"error": "invalid_request", "fields": bad}
        number, total = str(number), str(total)

        now = datetime.fromtimestamp(self.clock(), UTC)
        quota_key = (number, now.astimezone(CHINA).date())
        used = self._checks.get(quota_key, 0)
        if used >= self.quota_per_day:
            return 429, {"error": "quota_exceeded"}
        self._checks[quota_key] = used + 1

        record = self.records.get(number)
        if record is None:
            return 200, {"result": "not_found"}
        issued_at = datetime.fromisoformat(record["issued_at"])
        if now < issued_at + timedelta(seconds=self.lag_seconds):
            return 200, {"result": "not_found"}  # not in the database yet
        fields = []
        if issued_at.astimezone(CHINA).date() != asked_date:
            fields.append("issue_date")
        if Decimal(record["total"]) != Decimal(total):
            fields.append("total")
        if fields:
            return 200, {"result": "mismatch", "fields": fields}
        return 200, {"result": "found", "invoice": dict(record)}


def _demo_numbers() -> list[str]:
    year = datetime.now(CHINA).year % 100
    return [f"{year:02d}411{n:015d}" for n in (1, 2, 3)]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", action="store_true", help="seed three sample invoices")
    parser.add_argument("--lag", type=float, default=0.0, help="seconds before an invoice shows")
    parser.add_argument("--quota", type=int, default=5, help="checks per invoice per day")


def _configure(sandbox: JsonSandbox, args: argparse.Namespace) -> None:
    if not isinstance(sandbox, TaxSandbox):
        raise TypeError("a TaxSandbox is expected")
    sandbox.lag_seconds = args.lag
    sandbox.quota_per_day = args.quota
    if args.demo:
        normal, flushed, partial = _demo_numbers()
        sandbox.add_invoice(normal, total="268.00")
        sandbox.add_invoice(flushed, total="150.00")
        sandbox.red_flush(flushed)
        sandbox.add_invoice(partial, total="500.00")
        sandbox.red_flush(partial, "200.00")
        for number in (normal, flushed, partial):
            rec = sandbox.records[number]
            print(f"  seeded {number} {rec['issued_at'][:10]} {rec['total']} {rec['status']}")


def main(argv: list[str] | None = None) -> None:
    run_cli(
        TaxSandbox,
        description="Tax verification sandbox",
        default_port=TaxSandbox.default_port,
        argv=argv,
        add_arguments=_add_arguments,
        configure=_configure,
    )


if __name__ == "__main__":
    main()
