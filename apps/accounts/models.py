"""Users (staff and consumers) and consumers' real-name identity."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.common.fields import BlindIndexField, EncryptedTextField
from apps.common.masking import mask_id_number, mask_name, mask_phone
from apps.common.models import TimeStampedModel

from .choices import ConsumerStatus, VerificationStatus


class User(AbstractUser):
    """Every login: task-force staff (`is_staff`) and consumers (with a `Consumer` profile).

    Custom from day one so that identity fields can grow without a painful swap later.
    """

    password_changed_at = models.DateTimeField(_("password changed at"), null=True, blank=True)

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        swappable = "AUTH_USER_MODEL"


class Consumer(TimeStampedModel):
    """A participating consumer and their real-name identity.

    Invariants: `public_id` is random and never reused (it is the draws' `holder_public_id`);
    name, ID number and phone exist only as ciphertext bound to this row; one real identity
    (ID number) and one phone belong to at most one consumer, enforced by unique blind indexes.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="consumer",
        verbose_name=_("user account"),
    )
    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    real_name = EncryptedTextField(_("real name"), blank=True, default="")
    real_name_index = BlindIndexField(source="real_name", purpose="name", db_index=True)
    id_number = EncryptedTextField(_("resident ID number"), blank=True, default="")
    id_number_index = BlindIndexField(source="id_number", purpose="resident_id", unique=True)
    phone = EncryptedTextField(_("mobile phone"), blank=True, default="")
    phone_index = BlindIndexField(source="phone", purpose="phone", unique=True)
    verification_status = models.CharField(
        _("real-name verification"),
        max_length=16,
        choices=VerificationStatus.choices,
        default=VerificationStatus.UNVERIFIED,
        db_index=True,
    )
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=ConsumerStatus.choices,
        default=ConsumerStatus.ACTIVE,
        db_index=True,
    )
    personal_data_erased_at = models.DateTimeField(
        _("personal data erased at"), null=True, blank=True
    )

    class Meta:
        verbose_name = _("consumer")
        verbose_name_plural = _("consumers")
        permissions = [("reveal_personal_data", _("Can reveal full personal data"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(verification_status__in=VerificationStatus.values),
                name="consumer_verification_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ConsumerStatus.values),
                name="consumer_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(verification_status=VerificationStatus.VERIFIED)
                | (models.Q(id_number_index__isnull=False) & models.Q(verified_at__isnull=False)),
                name="consumer_verified_has_identity",
            ),
        ]

    def __str__(self) -> str:
        # Never decrypts: a string form ends up in logs, audit records and error pages.
        return f"{_('consumer')} {str(self.public_id)[:8]}"

    @property
    def masked_name(self) -> str:
        return mask_name(self.real_name)

    @property
    def masked_id_number(self) -> str:
        return mask_id_number(self.id_number)

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)

    @property
    def is_verified(self) -> bool:
        return self.verification_status == VerificationStatus.VERIFIED


class PasswordHistory(models.Model):
    """One earlier password of a user, as its hash (never the password itself).

    Written when a password is saved (`PasswordHistoryValidator.password_changed`); the newest
    rows are what "no reuse of the last N passwords" compares a new password with. Older rows
    than the configured count are pruned at each change.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="password_history",
        verbose_name=_("user"),
    )
    password = models.CharField(_("password hash"), max_length=128)
    created_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("earlier password")
        verbose_name_plural = _("earlier passwords")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="password_history_recent")]

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.created_at:%Y-%m-%d %H:%M}"


class UserSession(models.Model):
    """Which session keys belong to which user, so all of a user's sessions can be revoked at
    once (deactivation) without scanning and decoding every session.

    Written at sign-in and whenever the session key changes; rows of sessions that have since
    ended are harmless (revoking a missing session is a no-op) and are pruned after the
    absolute session limit.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="tracked_sessions",
        verbose_name=_("user"),
    )
    session_key = models.CharField(_("session key"), max_length=40, unique=True)
    created_at = models.DateTimeField(_("signed in at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("user session")
        verbose_name_plural = _("user sessions")

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.created_at:%Y-%m-%d %H:%M}"
