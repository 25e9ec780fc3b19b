"""Writes on user accounts."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import AuditCategory, AuditOutcome
from apps.audit.services import audit_record
from apps.common.exceptions import DomainError
from apps.common.pii import normalize_name

from .choices import ConsumerStatus, VerificationStatus
from .selectors import consumer_get_by_id_number, consumer_get_by_phone
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


# --- Consumer accounts (sign-in through the app: SMS code or the city app) -------------------

CONSUMER_USERNAME_PREFIX = "c_"
_REGISTER_ATTEMPTS = 3


def new_consumer_username() -> str:
    """A consumer's login name: `c_` and 12 random hex digits (it never shows a phone)."""
    return f"{CONSUMER_USERNAME_PREFIX}{secrets.token_hex(6)}"


def _new_consumer_user():
    """A consumer's login: a random name, no usable password, never staff."""
    User = get_user_model()
    user = User(username=new_consumer_username())
    user.set_unusable_password()
    user.save()
    return user


def consumer_register_by_phone(*, phone: str):
    """The user account behind `phone`, which has just proved possession (a correct sign-in
    code): the existing consumer's, or a new consumer created now (unverified, no password).

    Invariant: one phone, one consumer. Two first sign-ins of the same phone at once are settled
    by the unique blind index: the loser's insert fails and it takes the winner's account.
    `phone` must already be normalised (`apps.accounts.phone.validate_mainland_mobile`).
    """
    from .models import Consumer

    for _attempt in range(_REGISTER_ATTEMPTS):
        existing = consumer_get_by_phone(phone=phone)
        if existing is not None:
            return existing.user
        try:
            with transaction.atomic():
                user = _new_consumer_user()
                consumer = Consumer.objects.create(user=user, phone=phone)
                audit_record(
                    action="consumer.registered",
                    category=AuditCategory.AUTH,
                    target=consumer,
                    actor=user,
                    after={"channel": "sms_code"},
                )
            return user
        except IntegrityError:
            continue  # a concurrent first sign-in of this phone won: take its account
    raise AccountError("account.conflict", _("Please try signing in again."), status_code=409)


def consumer_register_for_user(*, user, channel: str):
    """A consumer profile for a new consumer user created by a third-party sign-in (the city
    app). The identity is filled in afterwards by `consumer_apply_city_identity`."""
    from .models import Consumer

    consumer = Consumer.objects.create(user=user)
    audit_record(
        action="consumer.registered",
        category=AuditCategory.AUTH,
        target=consumer,
        actor=user,
        after={"channel": channel},
    )
    return consumer


@transaction.atomic
def consumer_change_phone(*, consumer, phone: str):
    """Set a consumer's phone to `phone` (normalised), which has just proved possession.

    Invariant: one phone, one consumer — a phone held by another consumer raises
    `account.phone_taken` (the unique blind index decides under concurrency).
    """
    from .models import Consumer

    locked = Consumer.objects.select_for_update().get(pk=consumer.pk)
    if locked.phone == phone:
        return locked
    had_phone = bool(locked.phone)
    locked.phone = phone
    try:
        with transaction.atomic():
            locked.save(update_fields=["phone", "phone_index", "updated_at"])
    except IntegrityError:
        raise AccountError(
            "account.phone_taken",
            _("This phone number belongs to another account."),
            status_code=409,
        ) from None
    audit_record(
        action="consumer.phone_changed",
        category=AuditCategory.STATE,
        target=locked,
        actor=locked.user,
        before={"had_phone": had_phone},
    )
    consumer.phone = phone
    return locked


@transaction.atomic
def consumer_apply_city_identity(*, consumer, real_name: str, id_number: str, phone: str):
    """Copy what the city app vouches for onto a consumer; a verified identity and an existing
    phone are never overwritten.

    - `real_name` + `id_number` (verified by the city app) make an unverified consumer verified,
      unless another consumer already holds that identity (one identity, one consumer).
    - `phone` (verified by the city app) is set only on a consumer that has no phone yet and
      only if no other consumer has it.
    Values must already be validated and normalised. Audited with the fields set, never their
    values.
    """
    from .models import Consumer

    locked = Consumer.objects.select_for_update().get(pk=consumer.pk)
    changed: list[str] = []
    if real_name and id_number and not locked.is_verified:
        holder = consumer_get_by_id_number(id_number=id_number)
        if holder is None or holder.pk == locked.pk:
            locked.real_name = real_name
            locked.id_number = id_number
            locked.verification_status = VerificationStatus.VERIFIED
            locked.verified_at = timezone.now()
            changed += ["real_name", "id_number", "verification_status"]
    if phone and not locked.phone:
        holder = consumer_get_by_phone(phone=phone)
        if holder is None:
            locked.phone = phone
            changed.append("phone")
    if not changed:
        return locked
    locked.save()
    audit_record(
        action="consumer.identity_from_city_app",
        category=AuditCategory.STATE,
        target=locked,
        actor=locked.user,
        after={"fields": changed},
    )
    return locked


def consumer_verify_identity(*, consumer, real_name: str, id_number: str):
    """Real-name verification through the identity service; one real identity = one consumer.

    Invariants: only a `match` from the identity service verifies; the ID number's blind
    index is unique, so a second account for the same person fails with
    `identity.already_registered` even under concurrency; a verified identity never changes
    through this path. The outcome is audited without any personal data.
    """
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError
    from django.utils import timezone

    from .identity import IdentityOutcome, get_identity_verifier
    from .models import Consumer
    from .validators import validate_resident_id

    consumer = Consumer.objects.get(pk=consumer.pk)  # the stored state, not a caller's copy
    if consumer.verification_status == VerificationStatus.VERIFIED:
        raise AccountError(
            "identity.already_verified", _("Your real name is already verified."), status_code=409
        )
    try:
        id_number = validate_resident_id(id_number)
    except ValidationError as exc:
        raise AccountError(exc.code, " ".join(exc.messages)) from exc
    real_name = normalize_name(real_name or "")
    if not 2 <= len(real_name) <= 30:
        raise AccountError("identity.invalid_name", _("Enter your full name as on your ID card."))
    check = get_identity_verifier().verify(
        name=real_name, id_number=id_number, phone=consumer.phone or None
    )
    if check.outcome == IdentityOutcome.UNAVAILABLE:
        raise AccountError(
            "identity.unavailable",
            _("Real-name verification is unavailable right now. Please try again later."),
            status_code=503,
        )
    if check.outcome != IdentityOutcome.MATCH:
        audit_record(
            action="consumer.identity_mismatch",
            category=AuditCategory.AUTH,
            outcome=AuditOutcome.FAILURE,
            target=consumer,
        )
        raise AccountError(
            "identity.mismatch",
            _("The name and ID number do not match the identity records."),
            status_code=422,
        )
    try:
        with transaction.atomic():
            locked = Consumer.objects.select_for_update().get(pk=consumer.pk)
            if locked.verification_status == VerificationStatus.VERIFIED:
                raise AccountError(
                    "identity.already_verified",
                    _("Your real name is already verified."),
                    status_code=409,
                )
            locked.real_name = real_name
            locked.id_number = id_number
            locked.verification_status = VerificationStatus.VERIFIED
            locked.verified_at = timezone.now()
            locked.save()
            audit_record(
                action="consumer.identity_verified", category=AuditCategory.AUTH, target=locked
            )
    except IntegrityError:
        raise AccountError(
            "identity.already_registered",
            _("This identity is already registered to another account."),
            status_code=409,
        ) from None
    return locked
