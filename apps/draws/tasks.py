"""Thin Celery tasks around the draw services: they take ids, never personal data."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="apps.draws.tasks.freeze_due_draws")
def freeze_due_draws() -> list[str]:
    """Freeze every committed draw whose cut-off has passed (beat: every minute)."""
    return services.freeze_due_draws()
