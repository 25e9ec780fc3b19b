"""Abnormal-behaviour monitoring: rules with editable thresholds, alerts with a workflow and
evidence in the audit trail, automatic responses that a security administrator can reverse.

Invariants:
- A rule's thresholds change only through `services.rule_update`, which writes a
  `MonitoringRuleChange` row and an audit record in the same transaction.
- At most one live (open or acknowledged) alert per `dedup_key` (partial unique constraint):
  a repeat of the same finding adds evidence and an occurrence to the live alert.
- Every alert status change has a history row; every automatic response and its reversal has
  an audit record.
- The audit-stream consumer's position (`MonitorCursor.last_seq`) only moves forward, under a
  row lock, so two consumers never evaluate the same event twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .choices import (
    LIVE_ALERT_STATUSES,
    AlertStatus,
    ResponseKind,
    ResponseStatus,
    RuleCode,
    Severity,
)


class MonitoringRule(models.Model):
    """The live settings of one rule (its logic is in `apps.monitoring.rules`)."""

    code = models.CharField(_("rule"), max_length=32, choices=RuleCode.choices, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices)
    threshold = models.PositiveIntegerField(_("threshold"))
    window_minutes = models.PositiveIntegerField(_("window (minutes)"))
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    response = models.CharField(
        _("automatic response"),
        max_length=16,
        choices=ResponseKind.choices,
        default=ResponseKind.NONE,
    )
    notify = models.BooleanField(_("notify by e-mail and webhook"), default=True)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("updated by"),
    )

    class Meta:
        verbose_name = _("monitoring rule")
        verbose_name_plural = _("monitoring rules")
        ordering = ["code"]
        default_permissions = ("view", "change")
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__in=Severity.values), name="monitoring_rule_severity_valid"
            ),
            models.CheckConstraint(
                condition=Q(response__in=ResponseKind.values),
                name="monitoring_rule_response_valid",
            ),
            models.CheckConstraint(condition=Q(threshold__gte=1), name="monitoring_threshold_pos"),
        ]

    def __str__(self) -> str:
        return str(self.get_code_display())

    def param(self, name: str):
        from .definitions import DEFINITIONS

        value = (self.params or {}).get(name)
        return DEFINITIONS[self.code].params.get(name) if value is None else value


class MonitoringRuleChange(models.Model):
    """One edit of a rule: the values before and after, who, when and why."""

    rule = models.ForeignKey(
        MonitoringRule, on_delete=models.CASCADE, related_name="changes", verbose_name=_("rule")
    )
    at = models.DateTimeField(_("time"), default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("changed by"),
    )
    before = models.JSONField(_("before"))
    after = models.JSONField(_("after"))
    reason = models.CharField(_("reason"), max_length=300, blank=True, default="")

    class Meta:
        verbose_name = _("rule change")
        verbose_name_plural = _("rule changes")
        ordering = ["-at", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.rule_id} @ {self.at:%Y-%m-%d %H:%M}"


class Alert(models.Model):
    """One finding of a rule about one subject (a user, a key, an address, a pair, a draw)."""

    rule = models.ForeignKey(
        MonitoringRule, on_delete=models.PROTECT, related_name="alerts", verbose_name=_("rule")
    )
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=AlertStatus.choices,
        default=AlertStatus.OPEN,
        db_index=True,
    )
    title = models.CharField(_("title"), max_length=200)
    subject_type = models.CharField(_("subject type"), max_length=16)
    subject_id = models.CharField(_("subject"), max_length=64, blank=True, default="")
    subject_repr = models.CharField(_("subject name"), max_length=200, blank=True, default="")
    source_ip = models.GenericIPAddressField(_("source address"), null=True, blank=True)
    dedup_key = models.CharField(_("deduplication key"), max_length=200)
    evidence = models.JSONField(_("evidence (audit event IDs)"), default=list, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    occurrences = models.PositiveIntegerField(_("occurrences"), default=1)
    created_at = models.DateTimeField(_("raised at"), default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(_("last seen at"), default=timezone.now)
    notified_at = models.DateTimeField(_("notified at"), null=True, blank=True)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )

    class Meta:
        verbose_name = _("monitoring alert")
        verbose_name_plural = _("monitoring alerts")
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        permissions = [
            ("manage_alert", _("Can acknowledge and resolve monitoring alerts")),
            ("reverse_response", _("Can reverse automatic responses")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AlertStatus.values), name="monitoring_alert_status_valid"
            ),
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(status__in=LIVE_ALERT_STATUSES),
                name="monitoring_alert_one_live_per_key",
            ),
        ]
        indexes = [models.Index(fields=["rule", "-created_at"], name="monitoring_alert_rule")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class AlertStatusChange(models.Model):
    """The history of an alert: each transition, or a note (from and to the same status)."""

    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, related_name="history", verbose_name=_("alert")
    )
    from_status = models.CharField(_("from"), max_length=16, choices=AlertStatus.choices)
    to_status = models.CharField(_("to"), max_length=16, choices=AlertStatus.choices)
    note = models.TextField(_("note"), blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("by"),
    )
    at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("alert history entry")
        verbose_name_plural = _("alert history")
        ordering = ["at", "id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.alert_id}: {self.from_status} → {self.to_status}"


class AutomaticResponse(models.Model):
    """What the system did about an alert on its own, and whether it was reversed."""

    alert = models.ForeignKey(
        Alert, on_delete=models.PROTECT, related_name="responses", verbose_name=_("alert")
    )
    kind = models.CharField(_("response"), max_length=16, choices=ResponseKind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=ResponseStatus.choices, db_index=True
    )
    target_type = models.CharField(_("target type"), max_length=16)
    target_id = models.CharField(_("target"), max_length=64)
    target_repr = models.CharField(_("target name"), max_length=200, blank=True, default="")
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    taken_at = models.DateTimeField(_("taken at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    reversed_at = models.DateTimeField(_("reversed at"), null=True, blank=True)
    reversed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reversed by"),
    )
    reversal_note = models.CharField(_("reversal note"), max_length=300, blank=True, default="")

    class Meta:
        verbose_name = _("automatic response")
        verbose_name_plural = _("automatic responses")
        ordering = ["-taken_at", "-id"]
        default_permissions = ("view",)
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ResponseStatus.values),
                name="monitoring_response_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status=ResponseStatus.REVERSED) | Q(reversed_at__isnull=False),
                name="monitoring_response_reversed_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.target_repr or self.target_id}"


class KnownNetwork(models.Model):
    """A network (address prefix) a staff account signed in from or a merchant key was used
    from: the memory behind the "new network" rules."""

    kind = models.CharField(_("kind"), max_length=16)  # "user" or "merchant_key"
    subject_id = models.CharField(_("subject"), max_length=64)
    network = models.CharField(_("network"), max_length=64)
    first_seen_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)

    class Meta:
        verbose_name = _("known network")
        verbose_name_plural = _("known networks")
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_id", "network"], name="monitoring_known_network_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.subject_id} {self.network}"


class KeyUsageBaseline(models.Model):
    """A merchant key's usual requests per busy minute (exponentially weighted), updated once
    a minute per key from the cache counters."""

    key_id = models.CharField(_("key ID"), max_length=32, unique=True)
    per_minute = models.DecimalField(
        _("usual requests per minute"), max_digits=12, decimal_places=2
    )
    samples = models.PositiveIntegerField(_("minutes observed"), default=0)
    last_minute = models.BigIntegerField(_("last minute folded in"), default=0)

    class Meta:
        verbose_name = _("merchant key usage baseline")
        verbose_name_plural = _("merchant key usage baselines")
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.key_id}: {self.per_minute}/min"


class MonitorCursor(models.Model):
    """The single row holding how far the audit-stream consumer has read."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("monitoring cursor")
        verbose_name_plural = _("monitoring cursor")
        default_permissions = ("view",)
        constraints = [models.CheckConstraint(condition=Q(id=1), name="monitoring_cursor_single")]

    def __str__(self) -> str:
        return f"cursor #{self.last_seq}"
