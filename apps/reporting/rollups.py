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

In queued mode (`REPORTING_ROLLUPS_QUEUED`, production's default) a hook only queues the
subject's id in the caller's transaction and a Celery drain applies the same steps a second
later, for many subjects at once (the "Queued mode" section at the end of this module).

Bulk writers that bypass the services (the demo seed) call `rebuild()` afterwards, which
recomputes everything from scratch with set-based SQL (`expected_*` give the same figures for
checks).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from apps.common.queries import write_later
from apps.common.queueing import queue_soon

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
    RollupChange,
)

DRAIN_CACHE_KEY = "reporting:rollups:drain-queued"

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


def _merchant_dims_many(merchant_ids) -> dict[int, tuple[str, str]]:
    """(area, industry major class) of each merchant, in one query."""
    ids = sorted({m for m in merchant_ids if m})
    if not ids:
        return {}
    from apps.merchants.models import Merchant

    rows = Merchant.objects.filter(pk__in=ids).values_list("pk", "area_code", "industry_code")
    # Statistics are by GB/T 4754 major class (2 digits, 大类): finer classes would multiply
    # the cells (and every dashboard query) for a breakdown nobody publishes.
    return {pk: (area, industry[:INDUSTRY_DIGITS]) for pk, area, industry in rows}


def _merchant_dims(merchant_id: int | None) -> tuple[str, str]:
    return _merchant_dims_many([merchant_id]).get(merchant_id, ("", ""))


def _known_merchant_dims(invoice) -> tuple[str, str] | None:
    """The dims of the invoice's merchant if the object is already at hand (no query)."""
    if not invoice.merchant_id:
        return "", ""
    merchant = invoice._state.fields_cache.get("merchant")
    if merchant is None or merchant.pk != invoice.merchant_id:
        return None
    return merchant.area_code, merchant.industry_code[:INDUSTRY_DIGITS]


def _invoice_fact_from(invoice, dims: tuple[str, str]) -> InvoiceFactRow:
    area, industry = dims
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


def invoice_fact(invoice) -> InvoiceFactRow:
    """The figures one invoice contributes, from its current state. The cell's area and
    industry are its seller's (known once the tax authority has answered)."""
    dims = _known_merchant_dims(invoice)
    if dims is None:
        dims = _merchant_dims(invoice.merchant_id)
    return _invoice_fact_from(invoice, dims)


def _award_fact_from(award, dims: tuple[str, str]) -> AwardFactRow:
    area, industry = dims
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


def award_fact(award) -> AwardFactRow:
    from apps.invoices.models import Invoice

    merchant_id = Invoice.objects.filter(pk=award.invoice_id).values_list("merchant_id").first()
    return _award_fact_from(award, _merchant_dims(merchant_id[0] if merchant_id else None))


# --- SQL helpers ---------------------------------------------------------------------------------


def _for_update() -> str:
    return " FOR UPDATE" if connection.vendor == "postgresql" else ""


@dataclass
class _Upsert:
    """One multi-row `INSERT … ON CONFLICT (key) DO UPDATE SET col = col + EXCLUDED.col`
    (rows: (key values, increments), keys distinct, in lock order, same columns each)."""

    table: str
    key_names: tuple
    rows: list
    versioned: bool
    returning: tuple = ()

    def sql(self) -> tuple[str, list]:
        table, increment_names = self.table, list(self.rows[0][1])
        columns = [*self.key_names, *increment_names]
        sets = [f"{c} = {table}.{c} + EXCLUDED.{c}" for c in increment_names]
        if self.versioned:
            columns.append("version")
            sets.append(f"version = {table}.version + 1")
        one = f"({', '.join(['%s'] * len(columns))})"
        params: list = []
        for key, increments in self.rows:
            params.extend(key)
            params.extend(increments[c] for c in increment_names)
            if self.versioned:
                params.append(1)
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (identifiers are ours)
            f"VALUES {', '.join([one] * len(self.rows))} "
            f"ON CONFLICT ({', '.join(self.key_names)}) DO UPDATE SET {', '.join(sets)}"
        )
        if self.returning:
            sql += f" RETURNING {', '.join((*self.key_names, *self.returning))}"
        return sql, params

    def result(self, fetched) -> dict[tuple, dict]:
        width = len(self.key_names)
        result = {}
        for row in fetched:
            key = tuple(
                date.fromisoformat(str(v)) if n == "day" and not isinstance(v, date) else v
                for n, v in zip(self.key_names, row[:width], strict=True)
            )
            result[key] = dict(zip(self.returning, row[width:], strict=True))
        return result


def _upsert_many(
    table: str, key_names: tuple, rows: list[tuple[tuple, dict]], *, versioned: bool, returning=()
) -> dict[tuple, dict]:
    """One multi-row upsert (`_Upsert`); the new rows by key when `returning` names columns."""
    return _upsert_together([_Upsert(table, key_names, rows, versioned, tuple(returning))])[0]


def _upsert_together(upserts: list[_Upsert]) -> list[dict[tuple, dict]]:
    """Several upserts; on PostgreSQL in one statement (data-modifying `WITH` parts, each read
    by one branch of the final `UNION ALL`, so they run in list order — the lock order). The
    contended rollup rows are then held for one round trip less per table."""
    results: list[dict[tuple, dict]] = [{} for _ in upserts]
    todo = [(i, u) for i, u in enumerate(upserts) if u.rows]
    if not todo:
        return results
    if connection.vendor != "postgresql" or len(todo) == 1:
        for i, upsert in todo:
            sql, params = upsert.sql()
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                if upsert.returning:
                    results[i] = upsert.result(cursor.fetchall())
        return results
    parts, selects, params = [], [], []
    for i, upsert in todo:
        sql, part_params = upsert.sql()
        if not upsert.returning:
            sql += f" RETURNING {', '.join(upsert.key_names)}"
        parts.append(f"u{i} AS ({sql})")
        selects.append(f"SELECT {i} AS part, row_to_json(u{i})::text AS row FROM u{i}")  # noqa: S608
        params.extend(part_params)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} {' UNION ALL '.join(selects)}", params)
        fetched = cursor.fetchall()
    rows: dict[int, list] = defaultdict(list)
    for part, text in fetched:
        upsert = upserts[part]
        values = json.loads(text, parse_float=Decimal)
        rows[part].append([values[c] for c in (*upsert.key_names, *upsert.returning)])
    for i, upsert in todo:
        if upsert.returning:
            results[i] = upsert.result(rows[i])
    return results


def _upsert(table: str, key: dict, increments: dict, *, versioned: bool, returning=()) -> tuple:
    """`INSERT … ON CONFLICT (key) DO UPDATE SET col = col + EXCLUDED.col` and the new row."""
    rows = _upsert_many(
        table,
        tuple(key),
        [(tuple(key.values()), increments)],
        versioned=versioned,
        returning=returning,
    )
    if not returning:
        return ()
    (row,) = rows.values()
    return tuple(row[c] for c in returning)


def _participation(changes: dict[tuple, int]) -> tuple[dict, dict]:
    """Apply +1/−1 to participation keys (one statement); return participant deltas per cell
    and per day."""
    table = ParticipationKey._meta.db_table
    cell_delta: dict[tuple, int] = defaultdict(int)
    day_delta: dict[tuple, int] = defaultdict(int)
    keys = sorted(k for k, delta in changes.items() if delta)
    names = ("scope", "day", "area_code", "industry_code", "campaign_id", "consumer_id")
    counts = _upsert_many(
        table,
        names,
        [(key, {"n": changes[key]}) for key in keys],
        versioned=False,
        returning=("n",),
    )
    for key in keys:
        delta, n = changes[key], counts[key]["n"]
        scope, day, area, industry, campaign_id, _consumer_id = key
        appeared = delta > 0 and n == delta
        vanished = n == 0
        if vanished:
            ParticipationKey.objects.filter(**dict(zip(names, key, strict=True)), n=0).delete()
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


def _atomic_unless_in_one():
    """A transaction when there is none; inside one, no savepoint (the caller's rolls back)."""
    return nullcontext() if connection.in_atomic_block else transaction.atomic()


# --- Deferred application ------------------------------------------------------------------------


class _Marker:
    """A no-op on-commit callback marking one collected change. Django drops the callbacks
    registered inside a savepoint that rolls back, so a change whose savepoint was undone
    (e.g. an instant win whose prize fund could not cover it) is recognised and skipped."""

    __slots__ = ()

    def __call__(self) -> None:
        return None


class _Batch:
    """Changes collected in one transaction, applied once at the end of `deferred()`."""

    def __init__(self) -> None:
        # id → [(snapshot, extra, marker)] in call order; the last change that survived counts.
        self.invoices: dict[int, list[tuple]] = defaultdict(list)
        self.awards: dict[int, list[tuple]] = defaultdict(list)

    @staticmethod
    def mark() -> _Marker:
        marker = _Marker()
        transaction.on_commit(marker)
        return marker

    @staticmethod
    def survivors(entries: dict[int, list[tuple]]) -> dict[int, tuple]:
        alive = {id(func) for _sids, func, _robust in connection.run_on_commit}
        result = {}
        for key, changes in entries.items():
            kept = [change for change in changes if id(change[-1]) in alive]
            if kept:
                result[key] = kept[-1][:-1]
        return result


_local = threading.local()


def _current_batch() -> _Batch | None:
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextmanager
def deferred():
    """Collect `invoice_changed` / `award_changed` calls and apply them together on leaving the
    block — which must be inside the transaction that made the changes (`with
    transaction.atomic(), rollups.deferred():`). The contended rollup rows (one cell per day
    and campaign takes every submission) are then locked only for the last statements of the
    transaction, and written with one statement per table instead of one per row. An invoice
    changed twice counts once, from its last counted state to its final one."""
    if not connection.in_atomic_block:  # nothing to defer to: every change applies at once
        yield None
        return
    stack = _local.__dict__.setdefault("stack", [])
    batch = _Batch()
    stack.append(batch)
    try:
        yield batch
    finally:
        stack.pop()
    # Reached only without an exception: an exception leaves the transaction to roll back.
    if batch.invoices or batch.awards:
        _flush(batch)


def _invoice_snapshot(invoice):
    """The fields a fact is made of, as they are now (later unsaved edits must not count)."""
    from types import SimpleNamespace

    campaign = invoice._state.fields_cache.get("campaign")
    return SimpleNamespace(
        pk=invoice.pk,
        campaign_code=(
            campaign.code if campaign is not None and campaign.pk == invoice.campaign_id else None
        ),
        submitted_at=invoice.submitted_at,
        campaign_id=invoice.campaign_id,
        merchant_id=invoice.merchant_id,
        consumer_id=invoice.consumer_id,
        status=invoice.status,
        rejection_code=invoice.rejection_code,
        amount=invoice.amount,
        total=invoice.total,
    )


def _award_snapshot(award):
    from types import SimpleNamespace

    return SimpleNamespace(
        pk=award.pk,
        invoice_id=award.invoice_id,
        created_at=award.created_at,
        campaign_id=award.campaign_id,
        source=award.source,
        kind=award.kind,
        name=award.name,
        status=award.status,
        amount=award.amount,
        net_amount=award.net_amount,
        tax_withheld=award.tax_withheld,
    )


def _flush(batch: _Batch) -> None:
    invoices, awards = batch.survivors(batch.invoices), batch.survivors(batch.awards)
    if not invoices and not awards:
        return
    if queued():
        enqueue(invoice_ids=sorted(invoices), award_ids=sorted(awards))
        return
    _apply_snapshots(invoices, awards)


def _apply_snapshots(invoices: dict[int, tuple], awards: dict[int, tuple]) -> None:
    """Bring the rollups of these invoices ({id: (snapshot, dims or None)}) and awards ({id:
    (snapshot,)}) from their last counted state to the snapshots' (one batch: a statement per
    table, every outbox event in one more)."""
    codes = {
        s.campaign_id: s.campaign_code
        for s, _dims in invoices.values()
        if s.campaign_id and s.campaign_code is not None
    }
    with _atomic_unless_in_one(), outbox.known_campaign_codes(codes):
        invoice_dims: dict[int, tuple[str, str]] = {}
        events: list = []
        if invoices:
            missing = [s.merchant_id for s, dims in invoices.values() if dims is None]
            looked_up = _merchant_dims_many(missing)
            new_facts = {}
            for invoice_id, (snapshot, dims) in invoices.items():
                if dims is None:
                    dims = looked_up.get(snapshot.merchant_id, ("", ""))
                invoice_dims[invoice_id] = dims
                new_facts[invoice_id] = _invoice_fact_from(snapshot, dims)
            old_facts = _swap_facts(InvoiceFact, "invoice_id", new_facts, _invoice_row)
            events += _apply_invoices(
                [
                    (invoice_id, old_facts.get(invoice_id), new)
                    for invoice_id, new in sorted(new_facts.items())
                ],
                facts_saved=True,
                emit=False,
            )
        if awards:
            events += _apply_awards({k: v[0] for k, v in awards.items()}, invoice_dims, emit=False)
        outbox.emit_many(events)  # every event of the batch in one statement


# --- The invoice hook ----------------------------------------------------------------------------


def _load_locked_facts(model, key: str, row_class, make_row, ids: list[int]) -> dict:
    """The fact rows of `model` last counted for these keys (`key`: its key column), locked in
    key order, as `row_class` values built by `make_row`."""
    fields = list(row_class.__dataclass_fields__)
    ids = sorted(ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {key}, {', '.join(fields)} FROM {model._meta.db_table} "  # noqa: S608
            f"WHERE {key} IN ({', '.join(['%s'] * len(ids))}) "
            f"ORDER BY {key}{_for_update()}",
            ids,
        )
        rows = cursor.fetchall()
    return {subject_id: make_row(row) for subject_id, *row in rows}


def _load_invoice_facts(invoice_ids: list[int]) -> dict[int, InvoiceFactRow]:
    """The facts last counted for these invoices, locked (in id order)."""
    return _load_locked_facts(InvoiceFact, "invoice_id", InvoiceFactRow, _invoice_row, invoice_ids)


def _invoice_row(row) -> InvoiceFactRow:
    values = dict(zip(InvoiceFactRow.__dataclass_fields__, row, strict=True))
    if not isinstance(values["day"], date):
        values["day"] = date.fromisoformat(str(values["day"]))
    values["total"] = Decimal(str(values["total"])).quantize(Decimal("0.01"))
    values["verified"] = bool(values["verified"])
    return InvoiceFactRow(**values)


def _load_invoice_fact(invoice_id: int) -> InvoiceFactRow | None:
    return _load_invoice_facts([invoice_id]).get(invoice_id)


def invoice_changed(invoice) -> None:
    """Bring the rollups from the invoice's last counted state to its current one (at the end
    of the enclosing `deferred()` block if there is one, otherwise now)."""
    batch = _current_batch()
    if batch is not None:
        if queued():  # only the id is needed: the drain recounts the current state
            batch.invoices[invoice.pk].append((None, None, batch.mark()))
        else:
            batch.invoices[invoice.pk].append(
                (_invoice_snapshot(invoice), _known_merchant_dims(invoice), batch.mark())
            )
        return
    if queued():
        enqueue(invoice_ids=[invoice.pk])
        return
    with _atomic_unless_in_one():
        old = _load_invoice_fact(invoice.pk)
        new = invoice_fact(invoice)
        if old == new:
            return
        _apply_invoices([(invoice.pk, old, new)])


def _apply_invoice(invoice_id: int, old: InvoiceFactRow | None, new: InvoiceFactRow) -> None:
    _apply_invoices([(invoice_id, old, new)])


def _facts_insert_sql(model, key: str, facts: list[tuple[int, object]]) -> tuple[str, list]:
    table = model._meta.db_table
    fields = list(type(facts[0][1]).__dataclass_fields__)
    columns = [key, *fields]
    one = f"({', '.join(['%s'] * len(columns))})"
    params: list = []
    for pk, fact in sorted(facts, key=lambda item: item[0]):
        values = asdict(fact)
        params.append(pk)
        params.extend(values[f] for f in fields)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in fields)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (identifiers are ours)
        f"VALUES {', '.join([one] * len(facts))} "
        f"ON CONFLICT ({key}) DO UPDATE SET {sets}"
    )
    return sql, params


def _save_facts(model, key: str, facts: list[tuple[int, object]]) -> None:
    """Insert or overwrite fact rows (their own rows: no contention), in one statement."""
    if not facts:
        return
    sql, params = _facts_insert_sql(model, key, facts)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _swap_facts(model, key: str, new_facts: dict[int, object], convert) -> dict[int, object]:
    """Write the new fact rows and return the old ones (locked), in one statement on
    PostgreSQL: both parts of the `WITH` see the rows as they were before it. An unchanged
    fact is rewritten with the same values (harmless); its rollups are left alone."""
    if connection.vendor != "postgresql":
        table = model._meta.db_table
        fields = list(type(next(iter(new_facts.values()))).__dataclass_fields__)
        ids = sorted(new_facts)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {key}, {', '.join(fields)} FROM {table} "  # noqa: S608
                f"WHERE {key} IN ({', '.join(['%s'] * len(ids))})",
                ids,
            )
            old = {pk: convert(row) for pk, *row in cursor.fetchall()}
        _save_facts(model, key, list(new_facts.items()))
        return old
    table = model._meta.db_table
    fields = list(type(next(iter(new_facts.values()))).__dataclass_fields__)
    ids = sorted(new_facts)
    insert_sql, insert_params = _facts_insert_sql(model, key, list(new_facts.items()))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH old AS (SELECT {key}, {', '.join(fields)} FROM {table} "  # noqa: S608
            f"WHERE {key} IN ({', '.join(['%s'] * len(ids))}) ORDER BY {key} FOR UPDATE), "
            f"new AS ({insert_sql}) "
            f"SELECT * FROM old",
            [*ids, *insert_params],
        )
        return {pk: convert(row) for pk, *row in cursor.fetchall()}


def _apply_invoices(
    changes: list[tuple[int, InvoiceFactRow | None, InvoiceFactRow]],
    *,
    facts_saved=False,
    emit=True,
) -> list:
    """Apply the changes to the rollups; write (or, `emit=False`, return) the outbox events."""
    changes = [(invoice_id, old, new) for invoice_id, old, new in changes if old != new]
    if not changes:
        return []
    cells: dict[tuple, dict] = defaultdict(dict)
    participation: dict[tuple, int] = defaultdict(int)
    rejections: dict[tuple, int] = defaultdict(int)
    merchants: dict[tuple, dict] = defaultdict(dict)
    for _invoice_id, old, new in changes:
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
    # The fact rows first (the invoices' own rows: no contention), then rollups in a fixed
    # order, each table's rows in key order: participation keys, participants per day, cells,
    # rejections, merchants. The participation keys (one consumer's rows) in one statement,
    # every shared rollup row in one more.
    if not facts_saved:
        _save_facts(InvoiceFact, "invoice_id", [(i, new) for i, _old, new in changes])
    cell_participants, day_participants = _participation(participation)
    day_keys = [k for k in sorted(day_participants) if day_participants[k]]
    cell_rows = []
    for cell in sorted(set(cells) | set(cell_participants)):
        increments = {c: cells[cell].get(c, 0) for c in INVOICE_COLUMNS}
        increments["participants"] = cell_participants.get(cell, 0)
        if _nonzero(increments):
            cell_rows.append((cell, increments))
    totals: dict[tuple, dict] = defaultdict(dict)
    merchant_rows = []
    for key in sorted(merchants):
        if _nonzero(merchants[key]):
            merchant_rows.append((key, merchants[key]))
            _add_into(totals[key[1:]], merchants[key])
    cell_returning = ("id", *INVOICE_COLUMNS, "participants", "version")
    # The shared rows, in the fixed order: participants per day, cells, rejections, merchants.
    day_rows, new_cells, _rejections, _merchants, _totals = _upsert_together(
        [
            _Upsert(
                DayParticipants._meta.db_table,
                ("day", "campaign_id"),
                [(key, {"participants": day_participants[key]}) for key in day_keys],
                versioned=True,
                returning=("id", "participants", "version"),
            ),
            _Upsert(DailyRollup._meta.db_table, CELL, cell_rows, True, returning=cell_returning),
            _Upsert(
                RejectionRollup._meta.db_table,
                (*CELL, "reason"),
                [(k, {"count": rejections[k]}) for k in sorted(rejections) if rejections[k]],
                versioned=False,
            ),
            _Upsert(
                MerchantRollup._meta.db_table,
                ("day", "merchant_id", "campaign_id"),
                merchant_rows,
                versioned=False,
            ),
            _Upsert(
                MerchantTotal._meta.db_table,
                ("merchant_id", "campaign_id"),
                [(key, totals[key]) for key in sorted(totals) if _nonzero(totals[key])],
                versioned=False,
            ),
        ]
    )
    events = [
        outbox.participants_event(
            day=key[0],
            campaign_id=key[1],
            row=(day_rows[key]["id"], day_rows[key]["participants"], day_rows[key]["version"]),
        )
        for key in day_keys
    ]
    events += [
        outbox.invoice_cell_event(cell=cell, row=new_cells[cell]) for cell, _inc in cell_rows
    ]
    if emit:
        outbox.emit_many(events)
        return []
    return events


# --- The award hook ------------------------------------------------------------------------------


def _load_award_facts(award_ids: list[int]) -> dict[int, AwardFactRow]:
    """The facts last counted for these awards, locked (in id order)."""
    return _load_locked_facts(AwardFact, "award_id", AwardFactRow, _award_row, award_ids)


def _award_row(row) -> AwardFactRow:
    values = dict(zip(AwardFactRow.__dataclass_fields__, row, strict=True))
    if not isinstance(values["day"], date):
        values["day"] = date.fromisoformat(str(values["day"]))
    for name in ("amount", "net_amount", "tax_withheld"):
        values[name] = Decimal(str(values[name]))
    return AwardFactRow(**values)


def _load_award_fact(award_id: int) -> AwardFactRow | None:
    return _load_award_facts([award_id]).get(award_id)


def award_changed(award) -> None:
    """Bring the award rollups from the award's last counted state to its current one (at the
    end of the enclosing `deferred()` block if there is one, otherwise now)."""
    batch = _current_batch()
    if batch is not None:
        snapshot = None if queued() else _award_snapshot(award)
        batch.awards[award.pk].append((snapshot, batch.mark()))
        return
    if queued():
        enqueue(award_ids=[award.pk])
        return
    _apply_awards({award.pk: award}, {})


def _apply_awards(
    awards: dict[int, object], invoice_dims: dict[int, tuple[str, str]], *, emit=True
) -> list:
    """Apply the awards' changes to the rollups; write (or return) the outbox events."""
    with _atomic_unless_in_one():
        # The seller's cell: from the invoices changed in the same batch, else one query.
        unknown = sorted({a.invoice_id for a in awards.values()} - set(invoice_dims))
        dims = dict(invoice_dims)
        if unknown:
            from apps.invoices.models import Invoice

            merchant_of = dict(
                Invoice.objects.filter(pk__in=unknown).values_list("pk", "merchant_id")
            )
            by_merchant = _merchant_dims_many(merchant_of.values())
            for invoice_id in unknown:
                dims[invoice_id] = by_merchant.get(merchant_of.get(invoice_id), ("", ""))
        new_facts = {
            award_id: _award_fact_from(award, dims.get(award.invoice_id, ("", "")))
            for award_id, award in awards.items()
        }
        old_facts = _swap_facts(AwardFact, "award_id", new_facts, _award_row)
        changes = [
            (award_id, old_facts.get(award_id), new)
            for award_id, new in sorted(new_facts.items())
            if old_facts.get(award_id) != new
        ]
        if not changes:
            return []
        cells: dict[tuple, dict] = defaultdict(dict)
        for _award_id, old, new in changes:
            for fact, sign in ((old, -1), (new, 1)):
                if fact is not None:
                    _add_into(cells[fact.cell], _sub(fact.vector(), sign))
        keys = (*CELL, "source", "kind", "tier")
        returning = ("id", *AWARD_COLUMNS, "version")
        rows = [
            (cell, {c: cells[cell].get(c, 0) for c in AWARD_COLUMNS})
            for cell in sorted(cells)
            if _nonzero(cells[cell])
        ]
        new_rows = _upsert_many(
            AwardRollup._meta.db_table, keys, rows, versioned=True, returning=returning
        )
        events = [outbox.award_cell_event(cell=cell, row=new_rows[cell]) for cell, _inc in rows]
        if emit:
            outbox.emit_many(events)
            return []
        return events


# --- Queued mode ---------------------------------------------------------------------------------
#
# With `REPORTING_ROLLUPS_QUEUED` (the production default) a change does not touch the rollups in
# its own transaction: it writes the changed invoice's or award's id to `RollupChange` (one
# small INSERT, in the same transaction, so no change can be lost), and `drain()` (a Celery task
# queued a second after the commit, and a beat entry every minute) recounts the queued subjects
# from their current state in batches: the same fact-swap and upserts, one statement per table
# for a whole batch, and the outbox events of the rollup rows written in the drain's transaction
# with the rollup change they carry. Submissions then never lock the shared rollup rows (one
# cell per day and campaign takes every submission), and the figures trail the invoices by
# about the drain delay. Recounting is idempotent (a fact already counted in its current state
# changes nothing), so a subject queued twice, or drained by a later batch, counts once.

DRAIN_LOCK = 0x526F6C6C  # PostgreSQL advisory lock: one drain at a time
_last_kick = [0.0]  # per process: when a drain was last asked for


def queued() -> bool:
    """Whether changes are queued for `drain()` (else applied in their own transaction)."""
    return getattr(settings, "REPORTING_ROLLUPS_QUEUED", False) and not getattr(
        _local, "inline", False
    )


@contextmanager
def inline():
    """Apply rollups in this thread's own transactions whatever the setting (the SQLite
    rebuild, which must count as it goes)."""
    previous = getattr(_local, "inline", False)
    _local.inline = True
    try:
        yield
    finally:
        _local.inline = previous


def enqueue(*, invoice_ids=(), award_ids=()) -> None:
    """Queue these subjects for a recount (one INSERT, in the caller's transaction) and ask for
    a drain after the commit."""
    rows = [(RollupChange.KIND_INVOICE, pk) for pk in invoice_ids]
    rows += [(RollupChange.KIND_AWARD, pk) for pk in award_ids]
    if not rows:
        return
    write_later(  # with the transaction's batched writes, if it has them
        f"INSERT INTO {RollupChange._meta.db_table} (kind, subject_id) "  # noqa: S608 - names only
        f"VALUES {', '.join(['(%s, %s)'] * len(rows))}",
        [value for row in rows for value in row],
    )
    transaction.on_commit(_kick_drain)


def _kick_drain() -> None:
    """Queue a drain `REPORTING_ROLLUPS_DRAIN_DELAY` seconds from now, at most one per delay
    (per process without asking Redis; across processes by `cache.add`). The beat entry
    drains anyway if this cannot be queued."""
    delay = getattr(settings, "REPORTING_ROLLUPS_DRAIN_DELAY", 1)
    now = time.monotonic()
    if now - _last_kick[0] < delay:
        return
    _last_kick[0] = now
    from .tasks import rollups_drain_task

    queue_soon(rollups_drain_task, countdown=delay, once_key=DRAIN_CACHE_KEY, what="a rollup drain")


def drain(*, batch_size: int = 2000, budget_seconds: float = 50.0) -> int:
    """Recount the queued subjects, a batch per transaction, until the queue is empty or the
    budget is spent; returns how many queued changes were consumed. One drain runs at a time
    (an advisory lock on PostgreSQL; SQLite has one writer anyway): another returns 0 at once
    and asks for a drain a delay later, so what the running one misses is not left for the
    minute beat. A batch that fails rolls back whole, its changes still queued."""
    # From now on a commit in any process asks for a new drain (`_kick_drain`): what commits
    # after this drain's last batch is not left waiting.
    cache.delete(DRAIN_CACHE_KEY)
    started = time.monotonic()
    consumed = 0
    while True:
        taken = _drain_batch(batch_size)
        if taken is None:  # another drain is running: ask again a delay later
            from .tasks import rollups_drain_task

            queue_soon(
                rollups_drain_task,
                countdown=getattr(settings, "REPORTING_ROLLUPS_DRAIN_DELAY", 1),
                what="a rollup drain",
            )
            return consumed
        consumed += taken
        if taken < batch_size or time.monotonic() - started > budget_seconds:
            return consumed


def _drain_batch(limit: int) -> int | None:
    """One batch in one transaction: how many queued changes it consumed, None when another
    drain holds the lock."""
    from apps.invoices.models import Invoice
    from apps.prizes.models import Award

    table = RollupChange._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [DRAIN_LOCK])
                if not cursor.fetchone()[0]:
                    return None
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN "  # noqa: S608 - names only
                f"(SELECT id FROM {table} ORDER BY id LIMIT %s) RETURNING kind, subject_id",
                [limit],
            )
            rows = cursor.fetchall()
        if not rows:
            return 0
        invoice_ids = sorted({pk for kind, pk in rows if kind == RollupChange.KIND_INVOICE})
        award_ids = sorted({pk for kind, pk in rows if kind == RollupChange.KIND_AWARD})
        invoices = {
            invoice.pk: (_invoice_snapshot(invoice), _known_merchant_dims(invoice))
            for invoice in Invoice.objects.filter(pk__in=invoice_ids)
            .select_related("campaign", "merchant")
            .only(*INVOICE_SNAPSHOT_FIELDS)
        }
        awards = {
            award.pk: (_award_snapshot(award),)
            for award in Award.objects.filter(pk__in=award_ids).only(*AWARD_SNAPSHOT_FIELDS)
        }
        if invoices or awards:
            _apply_snapshots(invoices, awards)
    return len(rows)


INVOICE_SNAPSHOT_FIELDS = (
    "submitted_at",
    "campaign_id",
    "merchant_id",
    "consumer_id",
    "status",
    "rejection_code",
    "amount",
    "total",
    "campaign__code",
    "merchant__area_code",
    "merchant__industry_code",
)
AWARD_SNAPSHOT_FIELDS = (
    "invoice_id",
    "created_at",
    "campaign_id",
    "source",
    "kind",
    "name",
    "status",
    "amount",
    "net_amount",
    "tax_withheld",
)
