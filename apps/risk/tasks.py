"""Thin Celery tasks of risk control: they take ids and call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="apps.risk.tasks.send_review_outcome")
def send_review_outcome(invoice_id: int, accepted: bool) -> str:
    from .notify import send_review_outcome_now

    return send_review_outcome_now(invoice_id=invoice_id, accepted=accepted)


@shared_task(name="apps.risk.tasks.nightly_model")
def nightly_model() -> list[int]:
    """Run the nightly model over every active campaign (beat: every night)."""
    from .batch import batch_run_active_campaigns

    return [run.pk for run in batch_run_active_campaigns()]


@shared_task(name="apps.risk.tasks.reverify_sweep")
def reverify_sweep() -> dict:
    """Re-check entered invoices at the tax authority before their prizes are paid."""
    from .sweeps import reverify_sweep as sweep

    return sweep()
