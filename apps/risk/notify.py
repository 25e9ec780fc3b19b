"""Telling a consumer that a reviewer released or rejected their held invoice.

A text message through the SMS adapter (`apps.accounts.sms`, template `invoice_review` with
`number_tail` and `outcome`), sent by a Celery task after the review commits: the task takes
the invoice's id only, never personal data, and a failed send never undoes the review. The
outcome is also in the invoice's history, which the consumer's app shows.
"""

from __future__ import annotations

import logging

from django.db import transaction

logger = logging.getLogger(__name__)

REVIEW_TEMPLATE = "invoice_review"


def notify_review_outcome(*, invoice_id: int, accepted: bool) -> None:
    """Schedule the message for after the current transaction commits."""
    from .tasks import send_review_outcome

    # robust: with the broker down the review still stands and the reviewer's page still
    # answers; the message is lost (logged), the outcome stays in the invoice's history.
    transaction.on_commit(lambda: send_review_outcome.delay(invoice_id, accepted), robust=True)


def send_review_outcome_now(*, invoice_id: int, accepted: bool) -> str:
    """Send the message now; returns the gateway's message id, or "" when not sent."""
    from apps.accounts.sms import SMSError, get_sms_backend
    from apps.invoices.models import Invoice

    invoice = Invoice.objects.select_related("consumer").filter(pk=invoice_id).first()
    if invoice is None or not invoice.consumer.phone:
        return ""
    try:
        return get_sms_backend().send(
            phone=invoice.consumer.phone,
            template=REVIEW_TEMPLATE,
            params={
                "number_tail": invoice.number[-6:],
                "outcome": "released" if accepted else "rejected",
            },
        )
    except SMSError as exc:
        logger.warning("review outcome message not sent for invoice %s: %s", invoice_id, exc.code)
        return ""
