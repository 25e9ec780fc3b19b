"""Red-letter reversals (红冲): the registry's red-flushed state, and entries that lose their place.

Two steps, both idempotent:

1. `registry_apply_reds` — after a feed import, every blue record named by a red record gets
   `red_total` = the sum of its red totals (absolute) and `status` red-flushed
   (`red_total ≥ total`), partially red-flushed, or normal; set-based on PostgreSQL. Blue
   records whose state changed are the ones whose campaign entries are re-examined.
2. `invoice_reverse` — the service that withdraws one submission whose invoice was reversed:

   ============  ============================================  ==============================
   status        fully reversed, or remaining total < minimum  remaining total ≥ minimum
   ============  ============================================  ==============================
   accepted      → reversed (`invoice.red_flushed`)             stays accepted, history note
   held/pending  → rejected (`invoice.red_flushed`)             stays, history note
   rejected,     nothing to do                                  nothing to do
   reversed
   ============  ============================================  ==============================

   "Remaining total" is the invoice's total minus its red total; "minimum" is the campaign's
   `min_total`. Each change writes a status-history row and an audit record in the same
   transaction, and the consumer API shows the reason through `rejection_code` (its message
   is in `apps.invoices.exceptions.REJECTIONS`).

Prizes do not exist yet. When they do, cancelling the entry's unpaid prizes and flagging paid
ones for recovery belongs inside `invoice_reverse`'s transaction (marked below).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.states import check_transition

from .choices import INVOICE_TRANSITIONS, InvoiceStatus, RegistryStatus
from .eligibility import campaign_for_issue_date
from .models import Invoice, TaxInvoiceRecord
from .services import _history

RED_FLUSHED = "invoice.red_flushed"
PARTIALLY_RED_FLUSHED = "invoice.partially_red_flushed"
# Submissions that still hold (or may still win) a place in the campaign.
WITHDRAWABLE = (InvoiceStatus.ACCEPTED, InvoiceStatus.HELD, InvoiceStatus.PENDING)
CHUNK = 500

REGISTRY = TaxInvoiceRecord._meta.db_table
INVOICES = Invoice._meta.db_table


@dataclass
class RedOutcome:
    blues_changed: int = 0
    entries_withdrawn: int = 0
    entries_kept: int = 0


def red_state(total: Decimal, red_total: Decimal) -> str:
    """The registry status of a blue invoice with this much of it red-flushed."""
    if red_total <= 0:
        return RegistryStatus.NORMAL
    if red_total >= total:
        return RegistryStatus.RED_FLUSHED
    return RegistryStatus.PARTIALLY_RED_FLUSHED


# --- Step 1: the registry ---------------------------------------------------------------------

RECOMPUTE_SQL = f"""
WITH blues AS (
    SELECT DISTINCT number FROM {{blues_table}}
), sums AS (
    SELECT b.number, coalesce(sum(abs(r.total)), 0)::numeric(14, 2) AS red_total
    FROM blues b
    -- `<> ''` (implied by is_red) lets the planner use the partial reverses_number index.
    LEFT JOIN {REGISTRY} r ON r.reverses_number = b.number AND r.is_red
        AND r.reverses_number <> ''
    GROUP BY b.number
), states AS (
    SELECT t.number, s.red_total,
           CASE WHEN s.red_total <= 0 THEN '{RegistryStatus.NORMAL.value}'
                WHEN s.red_total >= t.total THEN '{RegistryStatus.RED_FLUSHED.value}'
                ELSE '{RegistryStatus.PARTIALLY_RED_FLUSHED.value}' END AS status
    FROM sums s JOIN {REGISTRY} t ON t.number = s.number AND NOT t.is_red
), changed AS (
    UPDATE {REGISTRY} t
    SET red_total = x.red_total, status = x.status, last_synced_at = %(now)s
    FROM states x
    WHERE t.number = x.number AND (t.red_total, t.status) IS DISTINCT FROM (x.red_total, x.status)
    RETURNING t.number
)
INSERT INTO reversal_changed_blues SELECT number FROM changed
"""  # noqa: S608 - our constants and identifiers; values are bound

ENTRIES_SQL = f"""
SELECT i.id FROM {INVOICES} i JOIN reversal_changed_blues c ON c.number = i.number
WHERE i.status = ANY(%(statuses)s) ORDER BY i.id
"""  # noqa: S608 - our constants and identifiers; values are bound


def registry_apply_reds(
    *,
    now: datetime,
    blues_table: str | None = None,
    blue_numbers: Iterable[str] | None = None,
    actor=None,
) -> RedOutcome:
    """Recompute the red-flushed state of some blue records and withdraw their entries.

    The blue numbers come either as a (temporary) table with a `number` column — set-based,
    PostgreSQL — or as an iterable. Blue records whose state is already right are not touched.
    """
    outcome = RedOutcome()
    if blues_table is not None and connection.vendor == "postgresql":
        invoice_ids = _recompute_in_sql(blues_table, now, outcome)
    else:
        invoice_ids = _recompute_in_python(blue_numbers or (), now, outcome)
    for invoice_id in invoice_ids:
        invoice = Invoice.objects.get(pk=invoice_id)
        before = invoice.status
        invoice = invoice_reverse(invoice=invoice, reason_code=RED_FLUSHED, actor=actor)
        if invoice.status != before:
            outcome.entries_withdrawn += 1
        else:
            outcome.entries_kept += 1
    return outcome


def _recompute_in_sql(blues_table: str, now: datetime, outcome: RedOutcome) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS reversal_changed_blues")
        cursor.execute("CREATE TEMP TABLE reversal_changed_blues (number text NOT NULL)")
        try:
            with transaction.atomic():
                cursor.execute(RECOMPUTE_SQL.format(blues_table=blues_table), {"now": now})
                outcome.blues_changed = cursor.rowcount
            cursor.execute(ENTRIES_SQL, {"statuses": [s.value for s in WITHDRAWABLE]})
            return [invoice_id for (invoice_id,) in cursor.fetchall()]
        finally:
            cursor.execute("DROP TABLE IF EXISTS reversal_changed_blues")


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _recompute_in_python(numbers: Iterable[str], now: datetime, outcome: RedOutcome) -> list[int]:
    invoice_ids: list[int] = []
    for chunk in _chunks(sorted(set(numbers))):
        sums: dict[str, Decimal] = dict.fromkeys(chunk, Decimal("0.00"))
        reds = TaxInvoiceRecord.objects.filter(is_red=True, reverses_number__in=chunk)
        for number, total in reds.values_list("reverses_number", "total"):
            sums[number] += abs(total)
        changed = []
        with transaction.atomic():
            for blue in TaxInvoiceRecord.objects.select_for_update().filter(
                number__in=chunk, is_red=False
            ):
                status = red_state(blue.total, sums[blue.number])
                if (blue.red_total, blue.status) != (sums[blue.number], status):
                    blue.red_total, blue.status, blue.last_synced_at = (
                        sums[blue.number],
                        status,
                        now,
                    )
                    changed.append(blue)
            TaxInvoiceRecord.objects.bulk_update(
                changed, ["red_total", "status", "last_synced_at"], batch_size=CHUNK
            )
        outcome.blues_changed += len(changed)
        if changed:
            invoice_ids += Invoice.objects.filter(
                number__in=[b.number for b in changed], status__in=WITHDRAWABLE
            ).values_list("pk", flat=True)
    return sorted(invoice_ids)


# --- Step 2: the campaign entry ---------------------------------------------------------------


def invoice_reverse(
    *, invoice: Invoice, reason_code: str = RED_FLUSHED, actor=None, note: str = ""
) -> Invoice:
    """Withdraw a submission whose invoice the tax authority reversed (see the module table).

    Invariant: a submission is never left in the campaign with a remaining total below the
    campaign's minimum, and every change is in its history and the audit trail. Without a
    registry record (a reversal decided by staff) the reversal counts as full. Idempotent:
    rejected and reversed submissions are left alone.
    """
    with transaction.atomic():
        invoice = (
            Invoice.objects.select_for_update(of=("self",))
            .select_related("campaign")
            .get(pk=invoice.pk)
        )
        if invoice.status not in WITHDRAWABLE:
            return invoice
        record = TaxInvoiceRecord.objects.filter(number=invoice.number, is_red=False).first()
        if record is None:
            full, remaining = True, Decimal("0.00")
        else:
            full = record.status == RegistryStatus.RED_FLUSHED
            remaining = record.total - record.red_total
            if record.status == RegistryStatus.NORMAL:
                return invoice  # nothing reversed (any more): nothing to withdraw
        campaign = invoice.campaign or campaign_for_issue_date(invoice.issue_date)
        minimum = campaign.min_total if campaign is not None else Decimal("0.00")
        before = invoice.status
        detail = {"remaining_total": str(remaining), "minimum": str(minimum)}
        if not full and remaining >= minimum:
            # Still eligible: the entry stays, and its history says why it was looked at.
            _history(
                invoice,
                before,
                before,
                PARTIALLY_RED_FLUSHED,
                note or f"remaining total {remaining} >= minimum {minimum}",
                actor,
            )
            audit_record(
                action="invoice.partially_reversed",
                category=AuditCategory.STATE,
                target=invoice,
                actor=actor,
                reason=reason_code,
                before={"status": before},
                after={"status": before, **detail},
            )
            return invoice
        target = (
            InvoiceStatus.REVERSED if before == InvoiceStatus.ACCEPTED else InvoiceStatus.REJECTED
        )
        check_transition(INVOICE_TRANSITIONS, before, target, entity="invoice")
        invoice.status = target
        invoice.rejection_code = reason_code
        invoice.next_check_at = None
        if target == InvoiceStatus.REJECTED:
            invoice.decided_at = timezone.now()
        invoice.save(
            update_fields=["status", "rejection_code", "next_check_at", "decided_at", "updated_at"]
        )
        if not note:
            note = "fully red-flushed" if full else f"remaining total {remaining} < {minimum}"
        _history(invoice, before, target, reason_code, note, actor)
        # Its unpaid prizes are cancelled (money back to the fund) and paid ones flagged for
        # recovery, in this transaction; the award history tells the consumer why.
        # A winning ticket in a draw still in its notice period is disqualified and replaced.
        from apps.draws.services import winners_disqualify_for_reversal
        from apps.prizes.services import awards_on_invoice_reversed

        prizes = awards_on_invoice_reversed(invoice=invoice, reason=reason_code, actor=actor)
        detail.update({f"prizes_{k}": v for k, v in prizes.items() if v})
        if before == InvoiceStatus.ACCEPTED:
            disqualified = winners_disqualify_for_reversal(invoice_id=invoice.pk)
            if disqualified:
                detail["draw_winners_disqualified"] = disqualified
        audit_record(
            action="invoice.reversed",
            category=AuditCategory.STATE,
            target=invoice,
            actor=actor,
            reason=reason_code,
            before={"status": before},
            after={"status": target, "rejection_code": reason_code, **detail},
        )
    return invoice
