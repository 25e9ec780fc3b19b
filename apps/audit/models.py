"""The tamper-evident audit trail.

Invariants:
- Append-only. On PostgreSQL a trigger rejects UPDATE, DELETE and TRUNCATE of `audit_event`.
- Gapless: `seq` is 1, 2, 3 … assigned under a row lock on the chain head, so a deleted record
  leaves a gap and the head's `seq` tells where the trail must end.
- Chained: `chain = HMAC(AUDIT_HMAC_KEY, previous chain || canonical record)`, so editing,
  deleting or inserting a record breaks every later chain value, and nobody without the key can
  forge a consistent chain. `manage.py audit_verify` walks it.
- No personal data in plaintext: services put masked values in `before`/`after`.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditCategory(models.TextChoices):
    AUTH = "auth", _("Sign-in")
    MFA = "mfa", _("Two-factor authentication")
    PERMISSION = "permission", _("Permissions and roles")
    STATE = "state", _("State change")
    CONFIG = "config", _("Configuration change")
    REVEAL = "reveal", _("Personal data revealed")
    EXPORT = "export", _("Export")
    DRAW = "draw", _("Draw step")
    PAYOUT = "payout", _("Payout")
    SECURITY = "security", _("Security")


class AuditOutcome(models.TextChoices):
    SUCCESS = "success", _("Success")
    FAILURE = "failure", _("Failure")
    DENIED = "denied", _("Denied")


class AuditEvent(models.Model):
    """One audited action: who, what, when, from where, on what, before and after."""

    seq = models.BigIntegerField(_("sequence"), unique=True)
    at = models.DateTimeField(_("time"), db_index=True)
    category = models.CharField(
        _("category"), max_length=16, choices=AuditCategory.choices, db_index=True
    )
    action = models.CharField(_("action"), max_length=64, db_index=True)
    outcome = models.CharField(
        _("outcome"), max_length=8, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS
    )
    # The actor is a snapshot, not a foreign key: the trail outlives accounts.
    actor_id = models.BigIntegerField(_("actor ID"), null=True, blank=True, db_index=True)
    actor_username = models.CharField(_("actor"), max_length=150, blank=True, default="")
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    request_id = models.CharField(_("request ID"), max_length=64, blank=True, default="")
    target_type = models.CharField(_("target type"), max_length=64, blank=True, default="")
    target_id = models.CharField(_("target ID"), max_length=64, blank=True, default="")
    target_repr = models.CharField(_("target"), max_length=200, blank=True, default="")
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True, default="")
    chain = models.CharField(_("chain value"), max_length=64)

    class Meta:
        db_table = "audit_event"
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_repr}".strip()


class AuditChainHead(models.Model):
    """The single row that serialises appends: the last `seq` and its chain value."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    chain = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        db_table = "audit_chain_head"
        verbose_name = _("audit chain head")
        verbose_name_plural = _("audit chain head")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_head_single")]

    def __str__(self) -> str:
        return f"head #{self.seq}"
