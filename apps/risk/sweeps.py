"""Re-verification sweeps: entered invoices are asked again at the tax authority before their
prizes are paid, so a "claim, then return the goods" red flush is caught.

Each sweep takes the accepted invoices entered `min_age_days` or more ago (default 1) and not
re-checked in the last `interval_days` (default 3), oldest check first, up to `limit`; asks the
verifier uncached; a red-flushed invoice is withdrawn through the invoices app's
`invoice_reverse` (which cancels unpaid prizes and disqualifies draw winners, audited).
"Not found" or an unreachable service is recorded and retried by the next sweep, never taken
as a reversal. The verifier's daily quota per invoice (about 5) is respected by the interval.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from apps.invoices.choices import InvoiceStatus, RegistryStatus
from apps.invoices.models import Invoice
from apps.invoices.reversals import invoice_reverse
from apps.invoices.verification import TaxOutcome, get_tax_verifier

from .models import Reverification


def reverify_sweep(
    *, limit: int = 500, min_age_days: int = 1, interval_days: int = 3, now=None
) -> dict[str, int]:
    now = now or timezone.now()
    due = (
        Invoice.objects.filter(
            status=InvoiceStatus.ACCEPTED, entered_at__lte=now - timedelta(days=min_age_days)
        )
        .filter(
            Q(risk_reverification__isnull=True)
            | Q(risk_reverification__checked_at__lte=now - timedelta(days=interval_days))
        )
        .order_by("risk_reverification__checked_at", "entered_at")[:limit]
    )
    verifier = get_tax_verifier(cached=False)
    counts = {"checked": 0, "reversed": 0, "unavailable": 0}
    for invoice in due:
        check = verifier.verify(
            number=invoice.number, issue_date=invoice.issue_date, total=invoice.total
        )
        counts["checked"] += 1
        outcome = str(check.outcome)
        if check.outcome == TaxOutcome.FOUND and check.record.status != RegistryStatus.NORMAL:
            outcome = str(check.record.status)
            after = invoice_reverse(invoice=invoice, note="re-verification sweep")
            if after.status != InvoiceStatus.ACCEPTED:
                counts["reversed"] += 1
        elif check.outcome != TaxOutcome.FOUND:
            counts["unavailable"] += 1
        Reverification.objects.update_or_create(
            invoice=invoice, defaults={"checked_at": now, "outcome": outcome[:32]}
        )
    return counts
