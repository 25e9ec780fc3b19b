"""Thin Celery tasks around the invoice services: they take ids, never personal data."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .choices import InvoiceStatus
from .models import Invoice
from .services import invoice_recheck


@shared_task(name="apps.invoices.tasks.recheck_invoice", acks_late=True)
def recheck_invoice(invoice_id: int) -> str:
    return invoice_recheck(invoice_id=invoice_id).status


@shared_task(name="apps.invoices.tasks.recheck_due_invoices")
def recheck_due_invoices(limit: int = 5000) -> int:
    """Queue a re-check for every pending invoice whose next check is due (index-backed)."""
    due = list(
        Invoice.objects.filter(status=InvoiceStatus.PENDING, next_check_at__lte=timezone.now())
        .order_by("next_check_at")
        .values_list("pk", flat=True)[:limit]
    )
    for invoice_id in due:
        recheck_invoice.delay(invoice_id)
    return len(due)


@shared_task(name="apps.invoices.tasks.import_tax_feed_task", acks_late=True)
def import_tax_feed_task(feed_import_id: int) -> str:
    """Import an uploaded tax-authority feed file (apps.invoices.feed).

    Safe to run again (a redelivered task after a lost worker): the import is idempotent, and
    a finished import is left alone.
    """
    from .feed import feed_import_run
    from .models import FeedImport, FeedImportStatus

    feed_import = FeedImport.objects.get(pk=feed_import_id)
    if feed_import.status in (FeedImportStatus.DONE, FeedImportStatus.FAILED):
        return feed_import.status
    return feed_import_run(feed_import=feed_import).status
