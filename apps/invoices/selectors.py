"""Reads of invoices, always scoped: a consumer sees only their own submissions."""

from __future__ import annotations

from django.db.models import QuerySet

from .choices import InvoiceStatus
from .models import Invoice


def invoice_list_for_consumer(*, consumer) -> QuerySet[Invoice]:
    return (
        Invoice.objects.filter(consumer=consumer)
        .select_related("campaign")
        .order_by("-submitted_at", "-pk")
    )


def entry_list_for_consumer(*, consumer) -> QuerySet[Invoice]:
    """A consumer's entries: invoices accepted into a campaign."""
    return invoice_list_for_consumer(consumer=consumer).filter(status=InvoiceStatus.ACCEPTED)
