"""Thin Celery tasks around the publicity services (idempotent: safe to run late or twice)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="apps.content.tasks.articles_publish_due")
def articles_publish_due_task() -> int:
    """Publish scheduled articles whose time has come."""
    return services.articles_publish_due()
