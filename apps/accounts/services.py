"""Writes on user accounts."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from apps.audit.models import AuditCategory, AuditOutcome
from apps.audit.services import audit_record
from apps.common.exceptions import DomainError

from .choices import ConsumerStatus, VerificationStatus
from .sessions import revoke_user_sessions


class AccountError(DomainError):
    code = "account.error"


@transaction.atomic
def user_deactivate(*, user, actor, reason: str):
    """Deactivate an account and end all of its sessions at once.

    Invariant: after this returns, no session of the user is usable — their rows are deleted
    from the session store (found through `UserSession`), and any session missed that way is
    refused anyway, because the authentication backend rejects inactive users and
    `SessionSecurityMiddleware` then flushes the session. Audited with the reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise AccountError("account.reason_required", _("A reason is required."))
    User = get_user_model()
    locked = User.objects.select_for_update().get(pk=user.pk)
    was_active = locked.is_active
    if was_active:
        locked.is_active = False
        locked.save(update_fields=["is_active"])
    revoked = revoke_user_sessions(locked)
    audit_record(
        action="user.deactivated",
        category=AuditCategory.SECURITY,
        target=locked,
        actor=actor,
        reason=reason,
        before={"is_active": was_active},
        after={"is_active": False, "sessions_revoked": revoked},
    )
    user.is_active = False
    return locked


REVEALABLE_FIELDS = ("real_name", "id_number", "phone")


def consumer_reveal_personal_data(*, consumer, field: str, actor, reason: str) -> str:
    """Return one full personal-data value to a staff member who may see it.

    Invariant: no plaintext leaves without the `reveal_personal_data` permission, a typed reason
    and an audit record (which holds the field name and reason, never the value).
    """
    if not actor.has_perm("accounts.reveal_personal_data"):
        # Recorded in its own transaction: the refusal must stay on record.
        audit_record(
            action="personal_data.reveal_denied",
            category=AuditCategory.REVEAL,
            outcome=AuditOutcome.DENIED,
            target=consumer,
            actor=actor,
            after={"field": field},
        )
        raise AccountError(
            "auth.permission_denied",
            _("You do not have permission to reveal personal data."),
            status_code=403,
        )
    if field not in REVEALABLE_FIELDS:
        raise AccountError("personal_data.unknown_field", _("This field cannot be revealed."))
    reason = (reason or "").strip()
    if len(reason) < 4:
        raise AccountError(
            "account.reason_required", _("Say why you need the full value (at least 4 characters).")
        )
    with transaction.atomic():
        value = getattr(consumer, field)
        audit_record(
            action="personal_data.revealed",
            category=AuditCategory.REVEAL,
            target=consumer,
            actor=actor,
            reason=reason,
            after={"field": field},
        )
    return value


def _erase_one(consumer, *, actor, now) -> None:
    from apps.invoices.models import Invoice

    consumer.real_name = ""
    consumer.id_number = ""
    consumer.phone = ""
    consumer.verification_status = VerificationStatus.UNVERIFIED
    consumer.status = ConsumerStatus.FROZEN
    consumer.personal_data_erased_at = now
    consumer.save()
    Invoice.objects.filter(consumer=consumer).update(buyer_name="")
    audit_record(
        action="personal_data.erased",
        category=AuditCategory.REVEAL,
        target=consumer,
        actor=actor,
        reason="retention period over",
    )


def consumer_purge_expired_personal_data(*, retention_days: int, actor=None, batch_size=500) -> int:
    """Erase the personal data of consumers inactive for longer than the retention period.

    The consumer row, its public ID, invoices and every money record stay (pseudonymous); names,
    ID numbers and phones — and the buyer names on their invoices — are wiped, ciphertext and
    blind indexes alike. One transaction and one audit record per consumer, so a crash never
    leaves a half-erased person and a rerun continues where it stopped.
    """
    from django.db.models import F, Max
    from django.db.models.functions import Coalesce, Greatest
    from django.utils import timezone

    from .models import Consumer

    now = timezone.now()
    cutoff = now - timezone.timedelta(days=retention_days)
    candidates = (
        Consumer.objects.filter(personal_data_erased_at__isnull=True)
        .annotate(
            last_activity=Greatest(
                Coalesce(Max("invoices__submitted_at"), F("created_at")), F("updated_at")
            )
        )
        .filter(last_activity__lt=cutoff)
        .values_list("pk", flat=True)
    )
    erased = 0
    for pk in list(candidates[: batch_size * 100]):
        with transaction.atomic():
            consumer = Consumer.objects.select_for_update().get(pk=pk)
            if consumer.personal_data_erased_at is None:
                _erase_one(consumer, actor=actor, now=now)
                erased += 1
    return erased
