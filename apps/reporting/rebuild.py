"""From-scratch recomputation of every rollup with set-based SQL (PostgreSQL).

`expected_*` compute the figures straight from invoices, merchants and awards — independently
of the incremental code in `rollups` — for checks (`reporting_rebuild --check`, the property
test). `rebuild()` writes them into the rollup tables: after a bulk load that bypassed the
services (the demo seed, the benchmark), or to repair. Versions of kept rows only grow (a
rebuilt row's version is bumped) and rows that no longer count are deleted, so no stream's
sequence number goes back; a rebuild does not write outbox events.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

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

INVOICE_FACTS_SQL = """
SELECT i.id AS invoice_id,
       (i.submitted_at AT TIME ZONE %(tz)s)::date AS day,
       coalesce(m.area_code, '') AS area_code,
       coalesce(substr(m.industry_code, 1, 2), '') AS industry_code,
       coalesce(i.campaign_id, 0) AS campaign_id,
       i.merchant_id, i.consumer_id, i.status,
       CASE WHEN i.status = 'rejected' THEN i.rejection_code ELSE '' END AS rejection_code,
       i.amount IS NOT NULL AS verified,
       i.total
FROM invoices_invoice i LEFT JOIN merchants_merchant m ON m.id = i.merchant_id
"""

AWARD_FACTS_SQL = """
SELECT a.id AS award_id,
       (a.created_at AT TIME ZONE %(tz)s)::date AS day,
       coalesce(m.area_code, '') AS area_code,
       coalesce(substr(m.industry_code, 1, 2), '') AS industry_code,
       a.campaign_id, a.source, a.kind, a.name AS tier, a.status,
       a.amount, a.net_amount, a.tax_withheld
FROM prizes_award a JOIN invoices_invoice i ON i.id = a.invoice_id
LEFT JOIN merchants_merchant m ON m.id = i.merchant_id
"""

CELL = "day, area_code, industry_code, campaign_id"

CELLS_SQL = f"""
SELECT {CELL},
       count(*) AS submitted,
       count(*) FILTER (WHERE verified) AS verified,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'held') AS held,
       count(*) FILTER (WHERE status = 'accepted') AS accepted,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       count(*) FILTER (WHERE status = 'reversed') AS reversed,
       sum(total) AS submitted_total,
       coalesce(sum(total) FILTER (WHERE status = 'accepted'), 0) AS entered_total,
       count(DISTINCT consumer_id) AS participants
FROM ({{facts}}) f GROUP BY {CELL}
"""  # noqa: S608
DAY_PARTICIPANTS_SQL = """
SELECT day, campaign_id, count(DISTINCT consumer_id) AS participants
FROM ({facts}) f GROUP BY day, campaign_id
"""
REJECTIONS_SQL = f"""
SELECT {CELL}, rejection_code AS reason, count(*) AS count
FROM ({{facts}}) f WHERE status = 'rejected' GROUP BY {CELL}, rejection_code
"""  # noqa: S608
MERCHANTS_SQL = """
SELECT day, merchant_id, campaign_id, count(*) AS submitted,
       count(*) FILTER (WHERE status = 'accepted') AS accepted,
       coalesce(sum(total) FILTER (WHERE status = 'accepted'), 0) AS entered_total
FROM ({facts}) f WHERE merchant_id IS NOT NULL GROUP BY day, merchant_id, campaign_id
"""
MERCHANT_TOTALS_SQL = """
SELECT merchant_id, campaign_id, count(*) AS submitted,
       count(*) FILTER (WHERE status = 'accepted') AS accepted,
       coalesce(sum(total) FILTER (WHERE status = 'accepted'), 0) AS entered_total
FROM ({facts}) f WHERE merchant_id IS NOT NULL GROUP BY merchant_id, campaign_id
"""
AWARDS_SQL = f"""
SELECT {CELL}, source, kind, tier,
       count(*) AS awarded,
       count(*) FILTER (WHERE status IN ('paid', 'to_recover')) AS paid,
       count(*) FILTER (WHERE status IN ('cancelled', 'expired', 'recovered')) AS voided,
       sum(amount) AS awarded_amount,
       coalesce(sum(net_amount) FILTER (WHERE status IN ('paid', 'to_recover')), 0) AS paid_net,
       coalesce(sum(tax_withheld) FILTER (WHERE status IN ('paid', 'to_recover')), 0)
           AS tax_withheld
FROM ({{facts}}) f GROUP BY {CELL}, source, kind, tier
"""  # noqa: S608

INVOICE_COLUMNS = (
    "submitted",
    "verified",
    "pending",
    "held",
    "accepted",
    "rejected",
    "reversed",
    "submitted_total",
    "entered_total",
    "participants",
)
AWARD_COLUMNS = ("awarded", "paid", "voided", "awarded_amount", "paid_net", "tax_withheld")


def _params(sql: str = "%(tz)s") -> dict | None:
    return {"tz": settings.TIME_ZONE} if "%(tz)s" in sql else None


def _rows(sql: str) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(sql))
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _keyed(rows: list[dict], key: tuple[str, ...], values: tuple[str, ...]) -> dict:
    return {
        tuple(r[k] for k in key): tuple(
            Decimal(r[v]) if isinstance(r[v], Decimal) else r[v] for v in values
        )
        for r in rows
    }


CELL_KEY = ("day", "area_code", "industry_code", "campaign_id")
AWARD_KEY = (*CELL_KEY, "source", "kind", "tier")


def expected() -> dict[str, dict]:
    """Every rollup as it must be, computed from scratch from the source tables."""
    inv, awd = INVOICE_FACTS_SQL, AWARD_FACTS_SQL
    return {
        "cells": _keyed(_rows(CELLS_SQL.format(facts=inv)), CELL_KEY, INVOICE_COLUMNS),
        "day_participants": _keyed(
            _rows(DAY_PARTICIPANTS_SQL.format(facts=inv)), ("day", "campaign_id"), ("participants",)
        ),
        "rejections": _keyed(
            _rows(REJECTIONS_SQL.format(facts=inv)), (*CELL_KEY, "reason"), ("count",)
        ),
        "merchants": _keyed(
            _rows(MERCHANTS_SQL.format(facts=inv)),
            ("day", "merchant_id", "campaign_id"),
            ("submitted", "accepted", "entered_total"),
        ),
        "merchant_totals": _keyed(
            _rows(MERCHANT_TOTALS_SQL.format(facts=inv)),
            ("merchant_id", "campaign_id"),
            ("submitted", "accepted", "entered_total"),
        ),
        "awards": _keyed(_rows(AWARDS_SQL.format(facts=awd)), AWARD_KEY, AWARD_COLUMNS),
    }


def _nonzero(values: tuple) -> bool:
    return any(v != 0 for v in values)


def _stored(model, key: tuple[str, ...], values: tuple[str, ...]) -> dict:
    out = {}
    for row in model.objects.values(*key, *values).iterator():
        vals = tuple(row[v] for v in values)
        if _nonzero(vals):
            out[tuple(row[k] for k in key)] = vals
    return out


def stored() -> dict[str, dict]:
    """The rollups as the incremental path left them (rows that are all zero left out)."""
    return {
        "cells": _stored(DailyRollup, CELL_KEY, INVOICE_COLUMNS),
        "day_participants": _stored(DayParticipants, ("day", "campaign_id"), ("participants",)),
        "rejections": _stored(RejectionRollup, (*CELL_KEY, "reason"), ("count",)),
        "merchants": _stored(
            MerchantRollup,
            ("day", "merchant_id", "campaign_id"),
            ("submitted", "accepted", "entered_total"),
        ),
        "merchant_totals": _stored(
            MerchantTotal,
            ("merchant_id", "campaign_id"),
            ("submitted", "accepted", "entered_total"),
        ),
        "awards": _stored(AwardRollup, AWARD_KEY, AWARD_COLUMNS),
    }


def differences() -> dict[str, list]:
    """Where the stored rollups differ from a from-scratch recomputation (empty: none)."""
    want, have = expected(), stored()
    out = {}
    for name in want:
        w = {k: v for k, v in want[name].items() if _nonzero(v)}
        h = have[name]
        diff = [(k, w.get(k), h.get(k)) for k in sorted(set(w) | set(h)) if w.get(k) != h.get(k)]
        if diff:
            out[name] = diff
    return out


def _table(model) -> str:
    return model._meta.db_table


def _replace_versioned(model, key: str, columns: tuple[str, ...], select_sql: str) -> None:
    """Upsert the recomputed rows (version + 1 where the row exists); delete the others.

    A deleted row that comes back later is a new row with a new id, so a new push stream
    (streams are named by row id): no stream's sequence number ever goes back.
    """
    table = _table(model)
    cols = ", ".join(columns)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS reporting_rebuild_tmp")
        cursor.execute(
            f"CREATE TEMP TABLE reporting_rebuild_tmp AS {select_sql}",
            _params(select_sql),
        )
        cursor.execute(
            f"DELETE FROM {table} t "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT 1 FROM reporting_rebuild_tmp x WHERE "
            + " AND ".join(f"x.{k} = t.{k}" for k in key.split(", "))
            + ")"
        )
        cursor.execute(
            f"INSERT INTO {table} ({key}, {cols}, version) "  # noqa: S608
            f"SELECT {key}, {cols}, 1 FROM reporting_rebuild_tmp "
            f"ON CONFLICT ({key}) DO UPDATE SET {sets}, version = {table}.version + 1"
        )
        cursor.execute("DROP TABLE reporting_rebuild_tmp")


def rebuild() -> None:
    """Recompute facts, participation keys and every rollup from scratch (PostgreSQL)."""
    if connection.vendor != "postgresql":
        _rebuild_in_python()
        return
    inv_facts = _table(InvoiceFact)
    awd_facts = _table(AwardFact)
    with transaction.atomic(), connection.cursor() as cursor:
        # Nobody changes counted facts meanwhile (the hooks lock fact rows; this locks tables).
        cursor.execute(
            f"LOCK TABLE {inv_facts}, {awd_facts}, {_table(ParticipationKey)} IN EXCLUSIVE MODE"
        )
        cursor.execute(f"TRUNCATE {inv_facts}, {awd_facts}, {_table(ParticipationKey)}")
        cursor.execute(
            f"INSERT INTO {inv_facts} (invoice_id, day, area_code, industry_code, campaign_id, "
            "merchant_id, consumer_id, status, rejection_code, verified, total) "
            f"{INVOICE_FACTS_SQL}",
            _params(),
        )
        cursor.execute(
            f"INSERT INTO {awd_facts} (award_id, day, area_code, industry_code, campaign_id, "
            "source, kind, tier, status, amount, net_amount, tax_withheld) "
            f"{AWARD_FACTS_SQL}",
            _params(),
        )
        cursor.execute(f"ANALYZE {inv_facts}")
        # Loaded first, indexed after (one sort instead of 20 million index insertions).
        keys = _table(ParticipationKey)
        cursor.execute(f"ALTER TABLE {keys} DROP CONSTRAINT participationkey_unique")
        cursor.execute(
            f"INSERT INTO {_table(ParticipationKey)} (scope, {CELL}, consumer_id, n) "  # noqa: S608
            f"SELECT 'cell', {CELL}, consumer_id, count(*) FROM {inv_facts} "
            f"GROUP BY {CELL}, consumer_id "
            f"UNION ALL SELECT 'day', day, '', '', campaign_id, consumer_id, count(*) "
            f"FROM {inv_facts} GROUP BY day, campaign_id, consumer_id"
        )
        cursor.execute(
            f"ALTER TABLE {keys} ADD CONSTRAINT participationkey_unique "
            f"UNIQUE (scope, {CELL}, consumer_id)"
        )
        inv_from = f"SELECT * FROM {inv_facts}"  # noqa: S608
        awd_from = f"SELECT * FROM {awd_facts}"  # noqa: S608
        _replace_versioned(DailyRollup, CELL, INVOICE_COLUMNS, CELLS_SQL.format(facts=inv_from))
        _replace_versioned(
            DayParticipants,
            "day, campaign_id",
            ("participants",),
            DAY_PARTICIPANTS_SQL.format(facts=inv_from),
        )
        _replace_versioned(
            AwardRollup,
            f"{CELL}, source, kind, tier",
            AWARD_COLUMNS,
            AWARDS_SQL.format(facts=awd_from),
        )
        cursor.execute(
            f"TRUNCATE {_table(RejectionRollup)}, {_table(MerchantRollup)}, {_table(MerchantTotal)}"
        )
        cursor.execute(
            f"INSERT INTO {_table(RejectionRollup)} ({CELL}, reason, count) "
            + REJECTIONS_SQL.format(facts=inv_from)
        )
        cursor.execute(
            f"INSERT INTO {_table(MerchantRollup)} (day, merchant_id, campaign_id, submitted, "
            "accepted, entered_total) " + MERCHANTS_SQL.format(facts=inv_from)
        )
        cursor.execute(
            f"INSERT INTO {_table(MerchantTotal)} (merchant_id, campaign_id, submitted, "
            "accepted, entered_total) " + MERCHANT_TOTALS_SQL.format(facts=inv_from)
        )
        for model in (DailyRollup, AwardRollup, DayParticipants, MerchantRollup, MerchantTotal):
            cursor.execute(f"ANALYZE {_table(model)}")


def _rebuild_in_python() -> None:
    """The embedded default (SQLite, demo sizes): replay every fact through the hooks."""
    from apps.invoices.models import Invoice
    from apps.prizes.models import Award

    from . import rollups

    with transaction.atomic(), rollups.inline():
        for model in (
            InvoiceFact,
            AwardFact,
            ParticipationKey,
            RejectionRollup,
            MerchantRollup,
            MerchantTotal,
            DailyRollup,
            DayParticipants,
            AwardRollup,
        ):
            model.objects.all().delete()
        for invoice in Invoice.objects.order_by("pk").iterator():
            rollups._apply_invoice(invoice.pk, None, rollups.invoice_fact(invoice))
        for award in Award.objects.order_by("pk").iterator():
            rollups.award_changed(award)
