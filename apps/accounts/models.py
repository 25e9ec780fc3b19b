"""Users (staff and consumers) and consumers' real-name identity."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.common import crypto
from apps.common.fields import BlindIndexField, EncryptedTextField
from apps.common.masking import mask_id_number, mask_name, mask_phone
from apps.common.models import TimeStampedModel
from apps.common.pii import normalize_for_index

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


# The first nine digits of a mobile number: the 100-number block that SIMs sold together
# (bulk-registered identity farms) share. Risk control links consumers through it.
PHONE_BLOCK_DIGITS = 9


class PhoneBlockIndexField(BlindIndexField):
    """Keyed blind index (the blind-index HMAC, purpose `phone_block`) of the phone's 100-number
    block: equal for numbers that differ only in their last two digits; the number itself is
    not recoverable from it."""

    def digest(self, plaintext: str) -> str:
        return crypto.blind_index(self.purpose, phone_block(plaintext))

    def candidates(self, plaintext: str) -> list[str]:
        return crypto.blind_index_candidates(self.purpose, phone_block(plaintext))


def phone_block(phone: str) -> str:
    """The block prefix of the normalised number (country prefix and separators dropped)."""
    from .phone import normalize_phone

    return normalize_for_index("phone", normalize_phone(phone))[:PHONE_BLOCK_DIGITS]


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
    phone_block_index = PhoneBlockIndexField(source="phone", purpose="phone_block", db_index=True)
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


class MerchantKeyScope(models.TextChoices):
    """What a merchant API key may do. A request needs every scope its view requires."""

    COUPONS_REDEEM = "coupons:redeem", _("Redeem coupons")
    COUPONS_READ = "coupons:read", _("Look up coupons")
    REPORTS_READ = "reports:read", _("Read redemption reports")


class MerchantAPIKey(models.Model):
    """One credential of a merchant for the merchant API.

    Invariants: neither the bearer token nor the Ed25519 private key is ever stored — the token
    only as a keyed hash (`token_hash`, HMAC-SHA256 under the blind-index key, bound to
    `key_id`), the key pair only by its public half. Both secrets are shown once, at issue
    (`apps.accounts.merchant_keys.merchant_key_issue`). A revoked key has its time, revoker and
    reason (database constraint) and is refused from the next request on; nothing un-revokes a
    key. Rows are written only by the services in `merchant_keys.py` and, for `last_used_*`,
    by the authentication (at most once a minute per key).
    """

    merchant = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        related_name="api_keys",
        verbose_name=_("merchant"),
    )
    key_id = models.CharField(_("key ID"), max_length=32, unique=True, editable=False)
    token_hash = models.CharField(_("token hash"), max_length=64, editable=False)
    public_key = models.CharField(
        _("Ed25519 public key"),
        max_length=64,
        editable=False,
        help_text=_("Base64 of the 32-byte raw public key; requests are signed with its pair."),
    )
    label = models.CharField(_("label"), max_length=100)
    scopes = models.JSONField(_("scopes"), default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("issued by"),
    )
    created_at = models.DateTimeField(_("issued at"), default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revoked by"),
    )
    revoked_reason = models.CharField(
        _("revocation reason"), max_length=300, blank=True, default=""
    )
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(_("last used from"), null=True, blank=True)

    class Meta:
        verbose_name = _("merchant API key")
        verbose_name_plural = _("merchant API keys")
        ordering = ["-created_at", "-id"]
        # Keys are issued and revoked through their own permissions, never added, edited or
        # deleted as plain rows.
        default_permissions = ("view",)
        permissions = [
            ("issue_merchantapikey", _("Can issue merchant API keys")),
            ("revoke_merchantapikey", _("Can revoke merchant API keys")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(key_id__startswith="mk_"), name="merchant_api_key_id_prefix"
            ),
            models.CheckConstraint(
                condition=models.Q(revoked_at__isnull=True) | ~models.Q(revoked_reason=""),
                name="merchant_api_key_revoked_has_reason",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True)
                | models.Q(expires_at__gt=models.F("created_at")),
                name="merchant_api_key_expires_after_issue",
            ),
        ]
        indexes = [models.Index(fields=["merchant", "-created_at"], name="merchant_api_key_recent")]

    def __str__(self) -> str:
        return f"{self.masked_key_id} ({self.label})"

    @property
    def masked_key_id(self) -> str:
        """`mk_abcdefghijklmnop` → `mk_ab…mnop`: enough to tell keys apart on a screen."""
        key_id = self.key_id or ""
        if len(key_id) <= 9:
            return key_id
        return f"{key_id[:5]}…{key_id[-4:]}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def status(self) -> str:
        """ "revoked", "expired" or "active" (revocation wins over expiry)."""
        if self.is_revoked:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"
