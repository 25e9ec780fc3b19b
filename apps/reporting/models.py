"""Rollups (incrementally maintained statistics), the outbox of the government-app exchange,
its delivery log, and partner API keys.

Rollup grain: one row per day (Asia/Shanghai) × seller area code × industry code × campaign.
`""` stands for an unknown area/industry (a pending invoice has no seller yet) and campaign 0
for "no campaign". Each counted fact (an invoice, an award) has a *fact row* holding the key and
the values it contributes; every change replaces its old contribution by the new one in the
same transaction (`apps.reporting.rollups`), or in queued mode in the drain's transaction
soon after (`RollupChange`). So at any commit, once the queue is drained:

    rollup row = Σ contributions of the fact rows with that key
               = the same GROUP BY over invoices / awards computed from scratch

which `reporting_rebuild --check` and the property test verify.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.common.models import MoneyField, TimeStampedModel


class CellKey(models.Model):
    day = models.DateField(_("day"))
    area_code = models.CharField(_("area code"), max_length=6, blank=True, default="")
    industry_code = models.CharField(_("industry code"), max_length=4, blank=True, default="")
    campaign_id = models.IntegerField(_("campaign ID"), default=0)

    class Meta:
        abstract = True


class InvoiceFact(CellKey):
    """What one invoice contributes to the rollups now (the last state counted)."""

    invoice_id = models.BigIntegerField(_("invoice ID"), primary_key=True)
    merchant_id = models.BigIntegerField(_("merchant ID"), null=True, blank=True)
    consumer_id = models.BigIntegerField(_("consumer ID"))
    status = models.CharField(_("status"), max_length=16)
    rejection_code = models.CharField(_("rejection code"), max_length=64, blank=True, default="")
    verified = models.BooleanField(_("verified by the tax authority"), default=False)
    total = MoneyField(_("total with tax"))

    class Meta:
        verbose_name = _("invoice fact")
        verbose_name_plural = _("invoice facts")

    def __str__(self) -> str:
        return f"invoice {self.invoice_id}: {self.status}"


class DailyRollup(CellKey):
    """Invoice statistics of one cell. `version` grows by one with every change: it is the
    sequence number of the cell's push stream."""

    submitted = models.BigIntegerField(_("submitted"), default=0)
    verified = models.BigIntegerField(_("verified"), default=0)
    pending = models.BigIntegerField(_("pending"), default=0)
    held = models.BigIntegerField(_("held for review (risk)"), default=0)
    accepted = models.BigIntegerField(_("entered"), default=0)
    rejected = models.BigIntegerField(_("rejected"), default=0)
    reversed = models.BigIntegerField(_("reversed"), default=0)
    submitted_total = MoneyField(_("submitted total"), default=0)
    entered_total = MoneyField(_("entered total"), default=0)
    participants = models.BigIntegerField(_("participants (distinct)"), default=0)
    version = models.BigIntegerField(_("version"), default=0)

    class Meta:
        verbose_name = _("daily invoice rollup")
        verbose_name_plural = _("daily invoice rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "area_code", "industry_code", "campaign_id"],
                name="dailyrollup_cell_unique",
            ),
        ]
        indexes = [models.Index(fields=["campaign_id", "day"], name="dailyrollup_campaign_day")]
        permissions = [
            ("view_dashboard", _("Can view the statistics dashboard and export its data")),
            ("view_small_cells", _("Can see and export small cells unsuppressed")),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.area_code or '-'} {self.industry_code or '-'} #{self.campaign_id}"


class RejectionRollup(CellKey):
    """Rejected invoices of one cell by rejection reason."""

    reason = models.CharField(_("reason"), max_length=64)
    count = models.BigIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("rejection rollup")
        verbose_name_plural = _("rejection rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "area_code", "industry_code", "campaign_id", "reason"],
                name="rejectionrollup_cell_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reason}: {self.count}"


class MerchantRollup(models.Model):
    """Invoice statistics per merchant per day and campaign."""

    day = models.DateField(_("day"))
    merchant_id = models.BigIntegerField(_("merchant ID"))
    campaign_id = models.IntegerField(_("campaign ID"), default=0)
    submitted = models.BigIntegerField(_("submitted"), default=0)
    accepted = models.BigIntegerField(_("entered"), default=0)
    entered_total = MoneyField(_("entered total"), default=0)

    class Meta:
        verbose_name = _("merchant rollup")
        verbose_name_plural = _("merchant rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "merchant_id", "campaign_id"], name="merchantrollup_unique"
            ),
        ]
        indexes = [models.Index(fields=["merchant_id", "day"], name="merchantrollup_merchant")]

    def __str__(self) -> str:
        return f"{self.day} merchant {self.merchant_id}"


class MerchantTotal(models.Model):
    """Invoice statistics per merchant and campaign over the whole campaign (the dashboard's
    top-merchants panel reads this, not thousands of daily rows)."""

    merchant_id = models.BigIntegerField(_("merchant ID"))
    campaign_id = models.IntegerField(_("campaign ID"), default=0)
    submitted = models.BigIntegerField(_("submitted"), default=0)
    accepted = models.BigIntegerField(_("entered"), default=0)
    entered_total = MoneyField(_("entered total"), default=0)

    class Meta:
        verbose_name = _("merchant total")
        verbose_name_plural = _("merchant totals")
        constraints = [
            models.UniqueConstraint(
                fields=["merchant_id", "campaign_id"], name="merchanttotal_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["campaign_id", "-accepted"], name="merchanttotal_top"),
        ]

    def __str__(self) -> str:
        return f"merchant {self.merchant_id} #{self.campaign_id}"


class ParticipationKey(CellKey):
    """How many of a consumer's invoices count in one cell (`scope` "cell") or one day of one
    campaign (`scope` "day", area and industry empty). A row appearing (n 0 → 1) adds one
    participant to its cell, disappearing removes one: distinct participants stay exact."""

    SCOPE_CELL, SCOPE_DAY = "cell", "day"
    scope = models.CharField(_("scope"), max_length=4)
    consumer_id = models.BigIntegerField(_("consumer ID"))
    n = models.IntegerField(_("invoices"), default=0)

    class Meta:
        verbose_name = _("participation key")
        verbose_name_plural = _("participation keys")
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "day", "area_code", "industry_code", "campaign_id", "consumer_id"],
                name="participationkey_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.day} consumer {self.consumer_id}: {self.n}"


class DayParticipants(models.Model):
    """Distinct participants of one day of one campaign, across every area and industry."""

    day = models.DateField(_("day"))
    campaign_id = models.IntegerField(_("campaign ID"), default=0)
    participants = models.BigIntegerField(_("participants (distinct)"), default=0)
    version = models.BigIntegerField(_("version"), default=0)

    class Meta:
        verbose_name = _("daily participants")
        verbose_name_plural = _("daily participants")
        constraints = [
            models.UniqueConstraint(fields=["day", "campaign_id"], name="dayparticipants_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} #{self.campaign_id}: {self.participants}"


class RollupChange(models.Model):
    """An invoice or award whose counted facts changed while rollups are queued
    (`REPORTING_ROLLUPS_QUEUED`): written in the transaction of the change, consumed by
    `apps.reporting.rollups.drain()`, which recounts the subject from its current state."""

    KIND_INVOICE = 1
    KIND_AWARD = 2

    id = models.BigAutoField(primary_key=True)
    kind = models.PositiveSmallIntegerField(_("kind"))
    subject_id = models.BigIntegerField(_("subject ID"))

    class Meta:
        verbose_name = _("queued rollup change")
        verbose_name_plural = _("queued rollup changes")
        default_permissions = ()  # internal: written by the hooks, consumed by the drain

    def __str__(self) -> str:
        return f"{self.kind}:{self.subject_id}"


class AwardFact(CellKey):
    """What one award contributes to the award rollups now."""

    award_id = models.BigIntegerField(_("award ID"), primary_key=True)
    source = models.CharField(_("source"), max_length=16)
    kind = models.CharField(_("kind"), max_length=16)
    tier = models.CharField(_("prize"), max_length=100)
    status = models.CharField(_("status"), max_length=16)
    amount = MoneyField(_("amount"))
    net_amount = MoneyField(_("net amount"))
    tax_withheld = MoneyField(_("tax withheld"))

    class Meta:
        verbose_name = _("award fact")
        verbose_name_plural = _("award facts")

    def __str__(self) -> str:
        return f"award {self.award_id}: {self.status}"


class AwardRollup(CellKey):
    """Awards of one cell by source (instant/periodic), kind (cash/coupon/voucher) and tier.

    `paid` counts awards paid or redeemed (status paid or to be recovered), with the net money
    paid and the tax withheld on them; `voided` those cancelled, expired or recovered.
    """

    source = models.CharField(_("source"), max_length=16)
    kind = models.CharField(_("kind"), max_length=16)
    tier = models.CharField(_("prize"), max_length=100)
    awarded = models.BigIntegerField(_("awarded"), default=0)
    awarded_amount = MoneyField(_("awarded amount"), default=0)
    paid = models.BigIntegerField(_("paid / redeemed"), default=0)
    paid_net = MoneyField(_("net paid"), default=0)
    tax_withheld = MoneyField(_("tax withheld"), default=0)
    voided = models.BigIntegerField(_("cancelled, expired or recovered"), default=0)
    version = models.BigIntegerField(_("version"), default=0)

    class Meta:
        verbose_name = _("award rollup")
        verbose_name_plural = _("award rollups")
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "day",
                    "area_code",
                    "industry_code",
                    "campaign_id",
                    "source",
                    "kind",
                    "tier",
                ],
                name="awardrollup_cell_unique",
            ),
        ]
        indexes = [models.Index(fields=["campaign_id", "day"], name="awardrollup_campaign_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.source} {self.kind} {self.tier}"


# --- The government-app exchange ----------------------------------------------------------------


class OutboxStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    DELIVERED = "delivered", _("Delivered")
    DEAD = "dead", _("Dead letter")


class OutboxEvent(models.Model):
    """One event for the government app, written in the transaction of the change it reports.

    Invariant: within a stream (one rollup cell) `seq` grows by one per change and is taken
    under the cell's row lock, so a later event of a stream always has a larger `id` too;
    delivery in `id` order is therefore in order per stream.
    """

    event_id = models.UUIDField(_("event ID"), unique=True)
    stream = models.CharField(_("stream"), max_length=120)
    seq = models.BigIntegerField(_("sequence in stream"))
    event_type = models.CharField(_("type"), max_length=40)
    payload = models.JSONField(_("payload"))
    occurred_at = models.DateTimeField(_("occurred at"))
    status = models.CharField(
        _("status"), max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True, default="")
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "seq"], name="outboxevent_stream_seq"),
            models.CheckConstraint(
                condition=Q(status__in=OutboxStatus.values), name="outboxevent_status_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["id"],
                condition=Q(status="pending"),
                name="outboxevent_pending",
            ),
        ]
        permissions = [("replay_outboxevent", _("Can replay dead-letter events"))]

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq}"


class DeliveryAttempt(models.Model):
    """The delivery log: one POST of a batch of events, and what came back."""

    started_at = models.DateTimeField(_("started at"))
    event_count = models.PositiveIntegerField(_("events"))
    first_event = models.BigIntegerField(_("first event"))
    last_event = models.BigIntegerField(_("last event"))
    nonce = models.CharField(_("nonce"), max_length=64)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    ok = models.BooleanField(_("delivered"), default=False)
    error = models.CharField(_("error"), max_length=300, blank=True, default="")
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery log")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.http_status or self.error}"


class PartnerScope(models.TextChoices):
    INVOICES = "stats.invoices", _("Invoice statistics")
    AWARDS = "stats.awards", _("Award and payout statistics")


class PartnerAPIKey(TimeStampedModel):
    """Client credentials of a partner system for the read-only statistics API.

    Only a keyed hash of the secret is stored (like merchant keys); a key works only before
    `expires_at`, while not revoked, and only for its scopes.
    """

    key_id = models.CharField(_("key ID"), max_length=40, unique=True)
    partner = models.CharField(_("partner"), max_length=200)
    secret_hash = models.CharField(_("secret (hash)"), max_length=128)
    scopes = models.JSONField(_("scopes"), default=list)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_reason = models.CharField(_("revocation reason"), max_length=300, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("issued by"),
    )

    class Meta:
        verbose_name = _("partner API key")
        verbose_name_plural = _("partner API keys")
        ordering = ["-created_at"]
        permissions = [
            ("issue_partnerapikey", _("Can issue partner API keys")),
            ("revoke_partnerapikey", _("Can revoke partner API keys")),
        ]

    def __str__(self) -> str:
        return f"{self.partner} ({self.key_id})"


class Dashboard(DailyRollup):
    """The admin's entry to the statistics dashboard (a view over the rollups, no rows of its
    own; permissions are `reporting.view_dashboard` and `reporting.view_small_cells`)."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = _("statistics dashboard")
        verbose_name_plural = _("statistics dashboard")
