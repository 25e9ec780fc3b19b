"""Thin Celery tasks around the prize services: they take ids, never personal data or money.

All are idempotent (a redelivered task finds the payout's state and carries on from there),
which is what makes `acks_late` with reject-on-worker-lost safe for payouts.
"""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="apps.prizes.tasks.payout_send", acks_late=True)
def payout_send_task(payout_id: int) -> str:
    """Send one approved payout (or carry on with one interrupted while sending)."""
    return services.payout_send(payout_id=payout_id).status


@shared_task(name="apps.prizes.tasks.payouts_poll")
def payouts_poll() -> int:
    """Send approved payouts not yet sent and ask about those whose outcome is unknown."""
    return services.payouts_poll()


@shared_task(name="apps.prizes.tasks.awards_release_due")
def awards_release_due() -> dict:
    """Held prizes past their delay: re-verify the invoice, then make them payable."""
    return services.awards_release_due()


@shared_task(name="apps.prizes.tasks.awards_expire_due")
def awards_expire_due() -> dict:
    """Unclaimed prizes and unused coupons past their deadline expire; money returns."""
    return services.awards_expire_due()
