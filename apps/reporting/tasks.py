"""Thin Celery tasks of the reporting app."""

from __future__ import annotations

from celery import shared_task

from . import outbox


@shared_task(name="apps.reporting.tasks.outbox_deliver")
def outbox_deliver_task() -> dict:
    """Send pending government-app events in order (every minute, and soon after a change)."""
    return outbox.outbox_deliver()


@shared_task(name="apps.reporting.tasks.rollups_drain")
def rollups_drain_task() -> int:
    """Recount the invoices and awards queued for the rollups (queued mode: a second after a
    change, and every minute)."""
    from . import rollups

    return rollups.drain()
