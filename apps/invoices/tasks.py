"""Thin Celery tasks around the invoice services: they take ids, never personal data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .choices import InvoiceStatus
from .models import Invoice
from .services import invoice_recheck

logger = logging.getLogger(__name__)
# An upload still queued (never started) this long after it was made is queued again.
FEED_REQUEUE_AFTER = timedelta(minutes=15)


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
    a finished import is left alone. Two copies never run at once (a redelivery, or the sweep
    re-queueing an upload that waited behind a backlog): the run holds a PostgreSQL advisory
    lock for the import, released when it ends or when its worker's connection dies; a copy
    that finds it taken stops.
    """
    from .feed import feed_import_run
    from .models import FeedImport, FeedImportStatus

    finished = (FeedImportStatus.DONE, FeedImportStatus.FAILED)
    feed_import = FeedImport.objects.get(pk=feed_import_id)
    if feed_import.status in finished:
        return feed_import.status
    with _feed_import_lock(feed_import_id) as mine:
        if not mine:
            logger.info(
                "feed import %s is running in another worker; this copy stops", feed_import_id
            )
            return FeedImportStatus.RUNNING
        feed_import.refresh_from_db()
        if feed_import.status in finished:
            return feed_import.status
        return feed_import_run(feed_import=feed_import).status


# pg_advisory_lock key space of feed imports: this constant plus the import's id.
_FEED_LOCK_BASE = 0x4645_4544_0000_0000


@contextmanager
def _feed_import_lock(feed_import_id: int) -> Iterator[bool]:
    """A session-level advisory lock for one import (always granted off PostgreSQL)."""
    from django.db import DatabaseError, connection

    if connection.vendor != "postgresql":
        yield True
        return
    key = _FEED_LOCK_BASE + int(feed_import_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:  # the connection is gone, and its session's lock with it
                logger.warning("feed import %s: lock not released explicitly", feed_import_id)


def feed_import_enqueue(feed_import_id: int) -> bool:
    """Queue an uploaded feed's import after the upload committed.

    With the broker down the upload is still kept (status "queued") and the page still answers;
    `requeue_stalled_feed_imports` (beat, every 10 minutes) queues it once the broker is back.
    """
    try:
        import_tax_feed_task.delay(feed_import_id)
    except Exception:
        logger.exception(
            "feed import %s could not be queued now; the sweep retries", feed_import_id
        )
        return False
    return True


@shared_task(name="apps.invoices.tasks.requeue_stalled_feed_imports")
def requeue_stalled_feed_imports(limit: int = 100) -> int:
    """Queue again the uploads that never started (their first dispatch was lost)."""
    from .models import FeedImport, FeedImportStatus

    stalled = list(
        FeedImport.objects.filter(
            status=FeedImportStatus.QUEUED,
            started_at__isnull=True,
            created_at__lte=timezone.now() - FEED_REQUEUE_AFTER,
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for feed_import_id in stalled:
        import_tax_feed_task.delay(feed_import_id)
    return len(stalled)
