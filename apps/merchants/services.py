"""Writes to merchants. Every status change goes through here."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.exceptions import DomainError
from apps.common.states import check_transition

from .choices import MERCHANT_TRANSITIONS
from .models import Merchant

STATUS_REASON_MAX_LENGTH = Merchant._meta.get_field("status_reason").max_length


def merchant_set_status(*, merchant: Merchant, status: str, reason: str, actor) -> Merchant:
    """Move `merchant` to `status` if `MERCHANT_TRANSITIONS` allows it, recording why and when.

    Invariant: a merchant's status only ever follows the transition table, and every change
    carries a non-empty reason, its time and an audit record written in the same transaction.
    The row is locked for the check and the write, so two officials acting at once cannot both
    pass the check against a stale status. Returns the updated merchant (a fresh instance; the
    one passed in is left as it was).

    Raises `InvalidTransition` (`merchant.invalid_transition`) for a change the table forbids
    (including "to the same status"), `DomainError` for a missing or too long reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("merchant.reason_required", _("A reason is required."))
    if len(reason) > STATUS_REASON_MAX_LENGTH:
        raise DomainError(
            "merchant.reason_too_long",
            _("The reason is too long."),
            detail={"max_length": STATUS_REASON_MAX_LENGTH},
        )
    with transaction.atomic():
        locked = Merchant.objects.select_for_update().get(pk=merchant.pk)
        previous = locked.status
        check_transition(MERCHANT_TRANSITIONS, previous, status, entity="merchant")
        locked.status = status
        locked.status_reason = reason
        locked.status_changed_at = timezone.now()
        locked.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
        audit_record(
            action="merchant.status_changed",
            category=AuditCategory.STATE,
            target=locked,
            actor=actor,
            reason=reason,
            before={"status": previous},
            after={"status": status},
        )
    return locked
