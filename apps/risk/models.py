"""Risk control: rule configuration with history, watch lists, assessments, nightly alerts."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .choices import AlertStatus, ListKind, RiskAction, RuleCode, SubjectKind


class RiskSettings(models.Model):
    """The one row of decision thresholds: a score at or above `hold_score` holds the invoice
    for review, at or above `block_score` rejects it. Changed only through
    `services.risk_settings_update`, which writes a `RiskConfigChange` row and the audit trail."""

    hold_score = models.PositiveIntegerField(_("hold at score"), default=50)
    block_score = models.PositiveIntegerField(_("block at score"), default=150)
    alert_z = models.DecimalField(
        _("nightly alert at robust z"), max_digits=5, decimal_places=2, default=6
    )
    alert_min_features = models.PositiveSmallIntegerField(
        _("features at 'feature z' needed for a nightly alert"), default=2
    )
    feature_z = models.DecimalField(
        _("feature z counted towards an alert"), max_digits=5, decimal_places=2, default=3.5
    )
    reversal_fdr = models.DecimalField(
        _("false-discovery rate of the reversal test"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.010"),
        help_text=_(
            "Sellers and consumers whose reversals after entry pass the Benjamini–Hochberg "
            "procedure at this rate become alerts (between 0.001 and 0.2)."
        ),
    )
    reversal_link_min = models.PositiveSmallIntegerField(
        _("shared returns that link two consumers"),
        default=2,
        help_text=_(
            "Two consumers are linked as returners when their entries red-flushed after entry "
            "at the same sellers add up to this many (counted at each seller as the smaller of "
            "the two); a linked group whose pooled reversals pass the reversal test is an "
            "alert. 0 switches the link off."
        ),
    )
    reversal_large_share = models.DecimalField(
        _("dearest share of entries counted as large"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.050"),
        help_text=_(
            "Entries among this dearest share of the campaign's entries are large; consumers "
            "with more large entries red-flushed after entry than ordinary consumers' spread "
            "explains become alerts (between 0 and 0.5; 0 switches the test off)."
        ),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("risk settings")
        verbose_name_plural = _("risk settings")
        constraints = [
            models.CheckConstraint(
                condition=Q(block_score__gt=models.F("hold_score")),
                name="risksettings_block_above_hold",
            ),
        ]

    def __str__(self) -> str:
        return str(_("Risk decision thresholds"))


class RiskRule(models.Model):
    """One real-time rule: whether it runs, the points it adds and its thresholds (`params`,
    validated against the rule's declared parameters). Edited through `risk_rule_update`."""

    code = models.CharField(_("rule"), max_length=32, choices=RuleCode.choices, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    weight = models.PositiveIntegerField(_("points when triggered"))
    params = models.JSONField(_("thresholds"), default=dict, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("risk rule")
        verbose_name_plural = _("risk rules")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.get_code_display()


class RiskConfigChange(models.Model):
    """Who changed which rule or threshold, when, from what to what, and why."""

    target = models.CharField(_("changed"), max_length=40)
    before = models.JSONField(_("before"), default=dict)
    after = models.JSONField(_("after"), default=dict)
    reason = models.CharField(_("reason"), max_length=300)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("changed by"),
    )
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("risk configuration change")
        verbose_name_plural = _("risk configuration changes")
        ordering = ["-at", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.target} @ {self.at:%Y-%m-%d %H:%M}"


class WatchEntry(models.Model):
    """A blacklisted merchant, consumer, payout account or device, or a consumer known to work
    for a seller (`seller_staff`: `value` is the consumer's public ID, `merchant_uscc` the
    seller). Values are identifiers or blind indexes, never plaintext personal data.
    Invariant: at most one active entry per (kind, value, merchant_uscc)."""

    kind = models.CharField(_("kind"), max_length=16, choices=ListKind.choices)
    value = models.CharField(_("value"), max_length=64)
    merchant_uscc = models.CharField(_("seller"), max_length=18, blank=True, default="")
    label = models.CharField(_("shown as"), max_length=100, blank=True, default="")
    reason = models.CharField(_("reason"), max_length=300)
    active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("added by"),
    )
    created_at = models.DateTimeField(_("added at"), auto_now_add=True)
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("watch-list entry")
        verbose_name_plural = _("watch-list entries")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value", "merchant_uscc"],
                condition=Q(active=True),
                name="watchentry_active_unique",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ListKind.values), name="watchentry_kind_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["value"], condition=Q(active=True), name="watchentry_active")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.label or self.value[:12]}"


class RiskAssessment(models.Model):
    """The real-time score of one submission that scored above zero: its points per rule and
    the decision taken. Written in the submission's transaction; the evidence reviewers see."""

    invoice = models.OneToOneField(
        "invoices.Invoice",
        on_delete=models.CASCADE,
        related_name="risk_assessment",
        verbose_name=_("invoice"),
    )
    score = models.PositiveIntegerField(_("score"))
    action = models.CharField(_("decision"), max_length=8, choices=RiskAction.choices)
    hits = models.JSONField(_("rules triggered"), default=list)
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("risk assessment")
        verbose_name_plural = _("risk assessments")
        ordering = ["-at"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.score} {self.action}"


class BatchRun(models.Model):
    """One run of the nightly model over a campaign: what it read, how long it took."""

    campaign = models.ForeignKey(
        "invoices.Campaign", on_delete=models.PROTECT, related_name="+", verbose_name=_("campaign")
    )
    as_of = models.DateTimeField(_("data up to"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    invoices = models.PositiveBigIntegerField(_("invoices read"), default=0)
    merchants = models.PositiveIntegerField(_("merchants scored"), default=0)
    consumers = models.PositiveIntegerField(_("consumers scored"), default=0)
    alerts = models.PositiveIntegerField(_("alerts raised"), default=0)
    seconds = models.FloatField(_("run time (s)"), default=0)

    class Meta:
        verbose_name = _("nightly risk run")
        verbose_name_plural = _("nightly risk runs")
        ordering = ["-started_at"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.campaign_id} @ {self.as_of:%Y-%m-%d}"


class RiskAlert(models.Model):
    """An anomaly the nightly model found: a merchant, a consumer or a linked cluster of
    consumers, its score and the features that explain it. Worked through `risk_alert_*`
    services; one open alert per subject (a new run refreshes the open one)."""

    run = models.ForeignKey(
        BatchRun, on_delete=models.PROTECT, related_name="alert_set", verbose_name=_("run")
    )
    campaign = models.ForeignKey(
        "invoices.Campaign", on_delete=models.PROTECT, related_name="+", verbose_name=_("campaign")
    )
    subject_kind = models.CharField(_("subject"), max_length=16, choices=SubjectKind.choices)
    subject_key = models.CharField(_("subject key"), max_length=64)
    merchant = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
    )
    consumer = models.ForeignKey(
        "accounts.Consumer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("consumer"),
    )
    score = models.DecimalField(_("score"), max_digits=8, decimal_places=2)
    features = models.JSONField(_("features"), default=list)
    members = models.JSONField(_("linked consumers"), default=list, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN
    )
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("handled by"),
    )
    handled_at = models.DateTimeField(_("handled at"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=500, blank=True, default="")
    created_at = models.DateTimeField(_("raised at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("risk alert")
        verbose_name_plural = _("risk alerts")
        ordering = ["-score", "-id"]
        default_permissions = ("view",)
        permissions = [("handle_riskalert", _("Can work risk alerts and the watch list"))]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "subject_kind", "subject_key"],
                condition=Q(status="open"),
                name="riskalert_one_open_per_subject",
            ),
            models.CheckConstraint(
                condition=Q(status__in=AlertStatus.values), name="riskalert_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_subject_kind_display()} {self.subject_key[:12]} ({self.score})"


class MerchantBaseline(models.Model):
    """What the nightly model learned about a seller, read by the real-time `seller_surge` rule
    (one indexed row per submission): its usual daily volume and its latest anomaly score."""

    merchant = models.OneToOneField(
        "merchants.Merchant",
        on_delete=models.CASCADE,
        related_name="risk_baseline",
        verbose_name=_("merchant"),
    )
    daily_mean = models.DecimalField(_("usual invoices per day"), max_digits=10, decimal_places=2)
    score = models.DecimalField(_("latest score"), max_digits=8, decimal_places=2, default=0)
    features = models.JSONField(_("latest features"), default=dict)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("merchant risk baseline")
        verbose_name_plural = _("merchant risk baselines")
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.merchant_id}: {self.daily_mean}/day"


class Reverification(models.Model):
    """The latest re-check of an entered invoice at the tax authority by the sweep."""

    invoice = models.OneToOneField(
        "invoices.Invoice",
        on_delete=models.CASCADE,
        related_name="risk_reverification",
        verbose_name=_("invoice"),
    )
    checked_at = models.DateTimeField(_("checked at"), db_index=True)
    outcome = models.CharField(_("outcome"), max_length=32)

    class Meta:
        verbose_name = _("re-verification")
        verbose_name_plural = _("re-verifications")
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.outcome}"
