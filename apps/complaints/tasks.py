"""Thin Celery tasks around the case services (idempotent: safe to run late or twice)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="apps.complaints.tasks.cases_check_sla")
def cases_check_sla_task() -> dict:
    """Warn before SLA breaches, escalate breaches, close resolved cases past the window."""
    return services.cases_check_sla()
