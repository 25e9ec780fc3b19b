"""Incremental rollups: every change of a counted fact replaces its old contribution.

Two hooks, each called from the one place its domain's state changes pass through, inside the
caller's transaction:

- `invoice_changed(invoice)` from `apps.invoices.services._history` (submission, decision,
  re-check, review, reversal — the feed importer's reversals go through `invoice_reverse`);
- `award_changed(award)` from `apps.prizes.services._award_history` (creation, every status
  change: payment, coupon redemption, expiry, cancellation, recovery).

A hook reads the fact row (locked), computes the new fact from the object, and — if anything
counted changed — applies old → new as `INSERT … ON CONFLICT DO UPDATE` increments. Distinct
participants stay exact through reference-counted participation keys. Every rollup row that
changes gets `version + 1` and an outbox event carrying its new absolute figures
(`apps.reporting.outbox`). Rows are always locked in key order (tables in a fixed order), so
two transactions never deadlock on rollups.

Bulk writers that bypass the services (the demo seed) call `rebuild()` afterwards, which
recomputes everything from scratch with set-based SQL (`expected_*` give the same figures for
checks).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from . import outbox
from .models import (
    AwardFact,
    AwardRollup,
    DailyRollup,
    DayParticipants,
    InvoiceFact,
    MerchantRollup,
    MerchantTotal,
    ParticipationKey,
    RejectionRollup,
)

ZERO = Decimal("0.00")

# Invoice statuses → the rollup column counting them (kept literal: no import of the invoices
# app here, which imports this module's hook).
STATUS_COLUMNS = {
    "pending": "pending",
    "held": "held",
    "accepted": "accepted",
    "rejected": "rejected",
    "reversed": "reversed",
}
INVOICE_COUNTS = ("submitted", "verified", "pending", "held", "accepted", "rejected", "reversed")
INVOICE_MONEY = ("submitted_total", "entered_total")
INVOICE_COLUMNS = (*INVOICE_COUNTS, *INVOICE_MONEY)
AWARD_COUNTS = ("awarded", "paid", "voided")
AWARD_MONEY = ("awarded_amount", "paid_net", "tax_withheld")
AWARD_COLUMNS = (*AWARD_COUNTS, *AWARD_MONEY)
# Award statuses whose money went out (paid or redeemed; "to recover" was paid too).
AWARD_PAID = ("paid", "to_recover")
AWARD_VOIDED = ("cancelled", "expired", "recovered")
CELL = ("day", "area_code", "industry_code", "campaign_id")
INDUSTRY_DIGITS = 2


def local_day(moment) -> date:
    return timezone.localtime(moment).date()


# --- Facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceFactRow:
    day: date
    area_code: str
    industry_code: str
    campaign_id: int
    merchant_id: int | None
    consumer_id: int
    status: str
    rejection_code: str
    verified: bool
    total: Decimal

    @property
    def cell(self) -> tuple:
        return (self.day, self.area_code, self.industry_code, self.campaign_id)

    def vector(self) -> dict[str, object]:
        v: dict[str, object] = dict.fromkeys(INVOICE_COUNTS, 0)
        v.update(dict.fromkeys(INVOICE_MONEY, ZERO))
        v["submitted"] = 1
        v["submitted_total"] = self.total
        v["verified"] = 1 if self.verified else 0
        column = STATUS_COLUMNS.get(self.status)
        if column:
            v[column] = 1
        if self.status == "accepted":
            v["entered_total"] = self.total
        return v


@dataclass(frozen=True)
class AwardFactRow:
    day: date
    area_code: str
    industry_code: str
    campaign_id: int
    source: str
    kind: str
    tier: str
    status: str
    amount: Decimal
    net_amount: Decimal
    tax_withheld: Decimal

    @property
    def cell(self) -> tuple:
        return (
            self.day,
            self.area_code,
            self.industry_code,
            self.campaign_id,
            self.source,
            self.kind,
            self.tier,
        )

    def vector(self) -> dict[str, object]:
        paid = self.status in AWARD_PAID
        return {
            "awarded": 1,
            "paid": 1 if paid else 0,
            "voided": 1 if self.status in AWARD_VOIDED else 0,
            "awarded_amount": self.amount,
            "paid_net": self.net_amount if paid else ZERO,
            "tax_withheld": self.tax_withheld if paid else ZERO,
        }


def _merchant_dims(merchant_id: int | None) -> tuple[str, str]:
    if not merchant_id:
        return "", ""
    from apps.merchants.models import Merchant

    row = Merchant.objects.filter(pk=merchant_id).values_list("area_code", "industry_code").first()
    if row is None:
        return "", ""
    # Statistics are by GB/T 4754 major class (2 digits, 大类): finer classes would multiply
    # the cells (and every dashboard query) for a breakdown nobody publishes.
    return row[0], row[1][:INDUSTRY_DIGITS]


def invoice_fact(invoice) -> InvoiceFactRow:
    """The figures one invoice contributes, from its current state. The cell's area and
    industry are its seller's (known once the tax authority has answered)."""
    area, industry = _merchant_dims(invoice.merchant_id)
    return InvoiceFactRow(
        day=local_day(invoice.submitted_at),
        area_code=area,
        industry_code=industry,
        campaign_id=invoice.campaign_id or 0,
        merchant_id=invoice.merchant_id,
        consumer_id=invoice.consumer_id,
        status=invoice.status,
        rejection_code=invoice.rejection_code if invoice.status == "rejected" else "",
        verified=invoice.amount is not None,
        total=Decimal(invoice.total).quantize(Decimal("0.01")),
    )


def award_fact(award) -> AwardFactRow:
    from apps.invoices.models import Invoice

    merchant_id = Invoice.objects.filter(pk=award.invoice_id).values_list("merchant_id").first()
    area, industry = _merchant_dims(merchant_id[0] if merchant_id else None)
    return AwardFactRow(
        day=local_day(award.created_at),
        area_code=area,
        industry_code=industry,
        campaign_id=award.campaign_id,
        source=award.source,
        kind=award.kind,
        tier=award.name,
        status=award.status,
        amount=Decimal(award.amount),
        net_amount=Decimal(award.net_amount),
        tax_withheld=Decimal(award.tax_withheld),
    )


# --- SQL helpers ---------------------------------------------------------------------------------


def _for_update() -> str:
    return " FOR UPDATE" if connection.vendor == "postgresql" else ""


def _upsert(table: str, key: dict, increments: dict, *, versioned: bool, returning=()) -> tuple:
    """`INSERT … ON CONFLICT (key) DO UPDATE SET col = col + EXCLUDED.col` and the new row."""
    columns = [*key, *increments]
    sets = [f"{c} = {table}.{c} + EXCLUDED.{c}" for c in increments]
    if versioned:
        columns.append("version")
        sets.append(f"version = {table}.version + 1")
    params = [*key.values(), *increments.values()] + ([1] if versioned else [])
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (identifiers are ours)
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}"
    )
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if returning else ()


def _participation(changes: dict[tuple, int]) -> tuple[dict, dict]:
    """Apply +1/−1 to participation keys; return participant deltas per cell and per day."""
    table = ParticipationKey._meta.db_table
    cell_delta: dict[tuple, int] = defaultdict(int)
    day_delta: dict[tuple, int] = defaultdict(int)
    for key in sorted(changes):
        delta = changes[key]
        if delta == 0:
            continue
        scope, day, area, industry, campaign_id, consumer_id = key
        (n,) = _upsert(
            table,
            {
                "scope": scope,
                "day": day,
                "area_code": area,
                "industry_code": industry,
                "campaign_id": campaign_id,
                "consumer_id": consumer_id,
            },
            {"n": delta},
            versioned=False,
            returning=("n",),
        )
        appeared = delta > 0 and n == delta
        vanished = n == 0
        if vanished:
            ParticipationKey.objects.filter(
                scope=scope,
                day=day,
                area_code=area,
                industry_code=industry,
                campaign_id=campaign_id,
                consumer_id=consumer_id,
                n=0,
            ).delete()
        step = 1 if appeared else (-1 if vanished else 0)
        if step:
            if scope == ParticipationKey.SCOPE_CELL:
                cell_delta[(day, area, industry, campaign_id)] += step
            else:
                day_delta[(day, campaign_id)] += step
    return cell_delta, day_delta


def _sub(vector: dict, sign: int) -> dict:
    return {k: v * sign for k, v in vector.items()}


def _add_into(target: dict, vector: dict) -> None:
    for k, v in vector.items():
        target[k] = target.get(k, 0) + v


def _nonzero(vector: dict) -> bool:
    return any(v != 0 for v in vector.values())


# --- The invoice hook ----------------------------------------------------------------------------


def _load_invoice_fact(invoice_id: int) -> InvoiceFactRow | None:
    fields = list(InvoiceFactRow.__dataclass_fields__)
    table = InvoiceFact._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(fields)} FROM {table} WHERE invoice_id = %s{_for_update()}",  # noqa: S608
            [invoice_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = dict(zip(fields, row, strict=True))
    if not isinstance(values["day"], date):
        values["day"] = date.fromisoformat(str(values["day"]))
    values["total"] = Decimal(str(values["total"])).quantize(Decimal("0.01"))
    values["verified"] = bool(values["verified"])
    return InvoiceFactRow(**values)


def invoice_changed(invoice) -> None:
    """Bring the rollups from the invoice's last counted state to its current one."""
    with transaction.atomic():
        old = _load_invoice_fact(invoice.pk)
        new = invoice_fact(invoice)
        if old == new:
            return
        _apply_invoice(invoice.pk, old, new)


def _apply_invoice(invoice_id: int, old: InvoiceFactRow | None, new: InvoiceFactRow) -> None:
    cells: dict[tuple, dict] = defaultdict(dict)
    participation: dict[tuple, int] = defaultdict(int)
    rejections: dict[tuple, int] = defaultdict(int)
    merchants: dict[tuple, dict] = defaultdict(dict)
    for fact, sign in ((old, -1), (new, 1)):
        if fact is None:
            continue
        _add_into(cells[fact.cell], _sub(fact.vector(), sign))
        participation[("cell", *fact.cell, fact.consumer_id)] += sign
        participation[("day", fact.day, "", "", fact.campaign_id, fact.consumer_id)] += sign
        if fact.status == "rejected":
            rejections[(*fact.cell, fact.rejection_code)] += sign
        if fact.merchant_id:
            v = fact.vector()
            _add_into(
                merchants[(fact.day, fact.merchant_id, fact.campaign_id)],
                {
                    "submitted": sign,
                    "accepted": v["accepted"] * sign,
                    "entered_total": v["entered_total"] * sign,
                },
            )
    # The fact row first (it is the invoice's own row: no contention), then rollups in a fixed
    # order: participation keys, participants per day, cells, rejections, merchants.
    fact_values = asdict(new)
    InvoiceFact.objects.update_or_create(invoice_id=invoice_id, defaults=fact_values)
    cell_participants, day_participants = _participation(participation)
    for key in sorted(day_participants):
        delta = day_participants[key]
        if not delta:
            continue
        row = _upsert(
            DayParticipants._meta.db_table,
            {"day": key[0], "campaign_id": key[1]},
            {"participants": delta},
            versioned=True,
            returning=("id", "participants", "version"),
        )
        outbox.emit_participants(day=key[0], campaign_id=key[1], row=row)
    for cell in sorted(set(cells) | set(cell_participants)):
        increments = {c: cells[cell].get(c, 0) for c in INVOICE_COLUMNS}
        increments["participants"] = cell_participants.get(cell, 0)
        if not _nonzero(increments):
            continue
        returning = ("id", *INVOICE_COLUMNS, "participants", "version")
        row = _upsert(
            DailyRollup._meta.db_table,
            dict(zip(CELL, cell, strict=True)),
            increments,
            versioned=True,
            returning=returning,
        )
        outbox.emit_invoice_cell(cell=cell, row=dict(zip(returning, row, strict=True)))
    for key in sorted(rejections):
        if rejections[key]:
            _upsert(
                RejectionRollup._meta.db_table,
                dict(zip((*CELL, "reason"), key, strict=True)),
                {"count": rejections[key]},
                versioned=False,
            )
    totals: dict[tuple, dict] = defaultdict(dict)
    for key in sorted(merchants):
        if _nonzero(merchants[key]):
            _upsert(
                MerchantRollup._meta.db_table,
                dict(zip(("day", "merchant_id", "campaign_id"), key, strict=True)),
                merchants[key],
                versioned=False,
            )
            _add_into(totals[key[1:]], merchants[key])
    for key in sorted(totals):
        if _nonzero(totals[key]):
            _upsert(
                MerchantTotal._meta.db_table,
                dict(zip(("merchant_id", "campaign_id"), key, strict=True)),
                totals[key],
                versioned=False,
            )


# --- The award hook ------------------------------------------------------------------------------


def _load_award_fact(award_id: int) -> AwardFactRow | None:
    fields = list(AwardFactRow.__dataclass_fields__)
    table = AwardFact._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(fields)} FROM {table} WHERE award_id = %s{_for_update()}",  # noqa: S608
            [award_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = dict(zip(fields, row, strict=True))
    if not isinstance(values["day"], date):
        values["day"] = date.fromisoformat(str(values["day"]))
    for name in ("amount", "net_amount", "tax_withheld"):
        values[name] = Decimal(str(values[name]))
    return AwardFactRow(**values)


def award_changed(award) -> None:
    """Bring the award rollups from the award's last counted state to its current one."""
    with transaction.atomic():
        old = _load_award_fact(award.pk)
        new = award_fact(award)
        if old == new:
            return
        cells: dict[tuple, dict] = defaultdict(dict)
        for fact, sign in ((old, -1), (new, 1)):
            if fact is not None:
                _add_into(cells[fact.cell], _sub(fact.vector(), sign))
        AwardFact.objects.update_or_create(award_id=award.pk, defaults=asdict(new))
        keys = (*CELL, "source", "kind", "tier")
        returning = ("id", *AWARD_COLUMNS, "version")
        for cell in sorted(cells):
            if not _nonzero(cells[cell]):
                continue
            row = _upsert(
                AwardRollup._meta.db_table,
                dict(zip(keys, cell, strict=True)),
                {c: cells[cell].get(c, 0) for c in AWARD_COLUMNS},
                versioned=True,
                returning=returning,
            )
            outbox.emit_award_cell(cell=cell, row=dict(zip(returning, row, strict=True)))
