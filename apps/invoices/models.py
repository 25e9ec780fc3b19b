"""Campaigns and their rules, consumers' invoice submissions, and the tax authority's registry."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils.translation import gettext_lazy as _

from apps.common.fields import EncryptedTextField
from apps.common.indexes import EqualityIndex
from apps.common.masking import mask_name
from apps.common.models import MoneyField, TimeStampedModel
from apps.merchants.models import area_code_validator

from .choices import (
    LIVE_INVOICE_STATUSES,
    CampaignStatus,
    InvoiceStatus,
    InvoiceType,
    IssuerKind,
    RegistryStatus,
    SourceChannel,
)

number_validator = RegexValidator(
    r"^[0-9]{20}$", _("An invoice number is 20 digits."), "invoice_number.invalid_length"
)
industry_prefix_validator = RegexValidator(
    r"^[0-9]{2,4}$", _("An industry code is 2 to 4 digits (GB/T 4754-2017)."), "industry.invalid"
)
area_prefix_validator = RegexValidator(
    r"^[0-9]{2,6}$", _("An area code prefix is 2 to 6 digits."), "area.invalid"
)


def default_invoice_types() -> list[str]:
    return [InvoiceType.ORDINARY.value]


class Campaign(TimeStampedModel):
    """A city's prize-invoice campaign and its eligibility rules, held as data.

    Every figure here is a default staff can change; code never hard-codes the pilot's numbers.
    Industry and area rules live in `CampaignIndustry` and `CampaignArea` (prefix rules; the
    longest matching industry prefix decides, so `90` included with `904` excluded works).
    """

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=200)
    city_name = models.CharField(_("city"), max_length=50, default="郑州市")
    starts_at = models.DateTimeField(_("window starts at"))
    ends_at = models.DateTimeField(_("window ends at"))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=CampaignStatus.choices,
        default=CampaignStatus.DRAFT,
        db_index=True,
    )
    min_total = MoneyField(
        _("minimum total with tax"),
        default=Decimal("100.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
    )
    max_prize_per_invoice = MoneyField(
        _("maximum prize per invoice"),
        default=Decimal("800.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
    )
    allowed_invoice_types = models.JSONField(
        _("allowed invoice types"), default=default_invoice_types
    )
    cap_per_day = models.PositiveIntegerField(_("cap per consumer per day"), null=True, default=3)
    cap_per_week = models.PositiveIntegerField(
        _("cap per consumer per week"), null=True, blank=True, default=None
    )
    cap_per_month = models.PositiveIntegerField(
        _("cap per consumer per month"), null=True, blank=True, default=20
    )
    cap_per_campaign = models.PositiveIntegerField(
        _("cap per consumer per campaign"), null=True, blank=True, default=100
    )
    exclude_enterprise_buyers = models.BooleanField(_("exclude enterprise buyers"), default=True)
    exclude_agent_issued = models.BooleanField(
        _("exclude invoices issued by the tax office on the seller's behalf"), default=True
    )
    instant_winner_enters_periodic = models.BooleanField(
        _("instant winners still enter periodic draws"), default=True
    )

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="campaign_window"),
            models.CheckConstraint(
                condition=Q(status__in=CampaignStatus.values), name="campaign_status_valid"
            ),
            models.CheckConstraint(condition=Q(min_total__gte=0), name="campaign_min_total_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignIndustry(models.Model):
    """An industry-code prefix rule of a campaign: included, or excluded (an exception)."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="industries", verbose_name=_("campaign")
    )
    code = models.CharField(
        _("industry code"), max_length=4, validators=[industry_prefix_validator]
    )
    excluded = models.BooleanField(_("excluded"), default=False)
    label = models.CharField(_("label"), max_length=100, blank=True, default="")

    class Meta:
        verbose_name = _("campaign industry rule")
        verbose_name_plural = _("campaign industry rules")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "code"], name="campaign_industry_unique"),
        ]

    def __str__(self) -> str:
        return f"{'-' if self.excluded else '+'}{self.code} {self.label}".strip()


class CampaignArea(models.Model):
    """An area-code prefix where sellers must be registered for their invoices to count."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="areas", verbose_name=_("campaign")
    )
    code = models.CharField(_("area code"), max_length=6, validators=[area_prefix_validator])
    label = models.CharField(_("label"), max_length=100, blank=True, default="")

    class Meta:
        verbose_name = _("campaign area")
        verbose_name_plural = _("campaign areas")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "code"], name="campaign_area_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.label}".strip()


class Invoice(TimeStampedModel):
    """A consumer's submission of one invoice.

    Invariant: an invoice number has at most one live submission (pending, held, accepted or
    reversed) across the city, forever — a partial unique index, so the loser of a race gets a
    clean conflict. Rejected attempts stay on record and never block the rightful buyer.
    `total = amount + tax` and all amounts are exact decimals.
    """

    # Every index is written by every submission (ten million rows): an index only where a
    # query needs one. The creation time is not searched (`submitted_at` is); the foreign keys
    # lead the composite indexes below, which serve their look-ups.
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    uid = models.UUIDField(_("UID"), default=uuid.uuid4, unique=True, editable=False)
    number = models.CharField(_("invoice number"), max_length=20, validators=[number_validator])
    invoice_type = models.CharField(
        _("invoice type"), max_length=2, choices=InvoiceType.choices, default=InvoiceType.ORDINARY
    )
    issue_date = models.DateField(_("issue date"))
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    seller_uscc = models.CharField(
        _("seller credit code"), max_length=18, blank=True, default="", db_index=True
    )
    seller_name = models.CharField(_("seller name"), max_length=200, blank=True, default="")
    buyer_name = EncryptedTextField(_("buyer name"), blank=True, default="", row_key_field="uid")
    buyer_tax_id = models.CharField(_("buyer tax ID"), max_length=20, blank=True, default="")
    amount = MoneyField(_("amount without tax"), null=True, blank=True)
    tax = MoneyField(_("tax"), null=True, blank=True)
    total = MoneyField(_("total with tax"))
    source_channel = models.CharField(
        _("channel"), max_length=16, choices=SourceChannel.choices, default=SourceChannel.APP
    )
    consumer = models.ForeignKey(
        "accounts.Consumer",
        on_delete=models.PROTECT,
        related_name="invoices",
        verbose_name=_("consumer"),
        db_index=False,  # invoice_consumer_time
    )
    merchant = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        verbose_name=_("merchant"),
        db_index=False,  # invoice_merchant_time
    )
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        verbose_name=_("campaign"),
        db_index=False,  # invoice_campaign_entry
    )
    status = models.CharField(
        _("status"), max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.PENDING
    )
    rejection_code = models.CharField(_("rejection code"), max_length=64, blank=True, default="")
    submitted_at = models.DateTimeField(_("submitted at"), db_index=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    entered_at = models.DateTimeField(_("entered at"), null=True, blank=True)
    next_check_at = models.DateTimeField(_("next verification at"), null=True, blank=True)
    verification_attempts = models.PositiveSmallIntegerField(_("verification attempts"), default=0)
    # Keyed hash of the submitting device's ID (risk control: devices shared by consumers).
    device_hash = models.CharField(
        _("device (hashed)"), max_length=64, blank=True, default="", editable=False
    )

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-submitted_at"]
        permissions = [("review_invoice", _("Can release or reject held invoices"))]
        constraints = [
            models.UniqueConstraint(
                fields=["number"],
                condition=Q(status__in=LIVE_INVOICE_STATUSES),
                name="invoice_number_live_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=InvoiceStatus.values), name="invoice_status_valid"
            ),
            models.CheckConstraint(condition=Q(total__gt=0), name="invoice_total_positive"),
            models.CheckConstraint(
                condition=Q(amount__isnull=True)
                | Q(tax__isnull=True)
                | Q(total=Round(F("amount") + F("tax"), 2)),
                name="invoice_total_is_amount_plus_tax",
            ),
            models.CheckConstraint(
                condition=~Q(status=InvoiceStatus.REJECTED) | ~Q(rejection_code=""),
                name="invoice_rejection_has_code",
            ),
        ]
        indexes = [
            # A consumer's invoices (API lists, caps per day/month).
            models.Index(fields=["consumer", "submitted_at"], name="invoice_consumer_time"),
            # Any submission of a number (duplicate checks, complaint look-ups).
            models.Index(fields=["number"], name="invoice_number"),
            # Campaign entries by state and time (draw freezing, dashboards).
            models.Index(
                fields=["campaign", "status", "entered_at"], name="invoice_campaign_entry"
            ),
            # Re-verification sweeps of pending invoices.
            models.Index(
                fields=["next_check_at"],
                condition=Q(status=InvoiceStatus.PENDING),
                name="invoice_pending_recheck",
            ),
            models.Index(fields=["merchant", "submitted_at"], name="invoice_merchant_time"),
            # Risk control: submissions from one device (most rows have none).
            models.Index(
                fields=["device_hash", "submitted_at"],
                condition=~Q(device_hash=""),
                name="invoice_device_time",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def masked_buyer_name(self) -> str:
        return mask_name(self.buyer_name)


class InvoiceStatusChange(models.Model):
    """One step of an invoice's history: every pipeline outcome with its time and reason."""

    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, related_name="history", verbose_name=_("invoice")
    )
    from_status = models.CharField(_("from"), max_length=16, blank=True, default="")
    to_status = models.CharField(_("to"), max_length=16)
    code = models.CharField(_("code"), max_length=64, blank=True, default="")
    note = models.CharField(_("note"), max_length=500, blank=True, default="")
    # Staff decisions only: consumers' submissions (two rows each) have none, and the index
    # keeps out their NULLs (`invoicestatus_actor`).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
        db_index=False,
    )
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("invoice status change")
        verbose_name_plural = _("invoice status changes")
        ordering = ["at", "id"]
        indexes = [
            models.Index(
                fields=["actor"], name="invoicestatus_actor", condition=Q(actor__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} {self.code}".strip()


class TaxInvoiceRecord(models.Model):
    """The tax authority's registry of issued invoices (filled by the bulk feed).

    Authenticity checks compare a submission against this record. The buyer's name is kept only
    as a blind index (`buyer_name_index`): matching it never needs the plaintext. A red invoice
    (`is_red`) names the blue invoice it reverses; the blue record's `red_total` sums its red
    invoices and `status` says whether it is fully or partially red-flushed.
    """

    # The number is the primary key: the registry's one unique index (no surrogate id and
    # its second index to keep up on every row of a 10-million-row feed; no
    # `varchar_pattern_ops` twin either: nothing here is searched by prefix). See
    # docs/benchmarks.md.
    number = models.CharField(
        _("invoice number"), max_length=20, primary_key=True, validators=[number_validator]
    )
    invoice_type = models.CharField(
        _("invoice type"), max_length=2, choices=InvoiceType.choices, default=InvoiceType.ORDINARY
    )
    issued_at = models.DateTimeField(_("issued at"))
    seller_uscc = models.CharField(_("seller credit code"), max_length=18)
    seller_name = models.CharField(_("seller name"), max_length=200)
    buyer_name_index = models.CharField(
        _("buyer name (blind index)"), max_length=64, blank=True, default=""
    )
    buyer_tax_id = models.CharField(_("buyer tax ID"), max_length=20, blank=True, default="")
    amount = MoneyField(_("amount without tax"))
    tax = MoneyField(_("tax"))
    total = MoneyField(_("total with tax"))
    issuer_kind = models.CharField(
        _("issuer kind"), max_length=8, choices=IssuerKind.choices, default=IssuerKind.SELF
    )
    industry_code = models.CharField(_("industry code"), max_length=4, blank=True, default="")
    area_code = models.CharField(
        _("seller area code"),
        max_length=6,
        blank=True,
        default="",
        validators=[area_code_validator],
    )
    status = models.CharField(
        _("status"), max_length=24, choices=RegistryStatus.choices, default=RegistryStatus.NORMAL
    )
    is_red = models.BooleanField(_("red invoice"), default=False)
    reverses_number = models.CharField(
        _("reverses invoice number"), max_length=20, blank=True, default=""
    )
    red_total = MoneyField(_("red-flushed total"), default=Decimal("0.00"))
    last_synced_at = models.DateTimeField(_("last synced at"))

    class Meta:
        verbose_name = _("tax authority invoice record")
        verbose_name_plural = _("tax authority invoice records")
        indexes = [
            # Searched only for one exact credit code (the registry admin); a hash index on
            # PostgreSQL, far cheaper to keep up while the feed lands in number order.
            EqualityIndex(fields=["seller_uscc"], name="taxrecord_seller_uscc_eq"),
            # Only red invoices name a blue one (about 1 % of the rows); queries on it say
            # `reverses_number <> ''` (or compare it with a non-empty literal).
            models.Index(
                fields=["reverses_number"],
                condition=~Q(reverses_number=""),
                name="taxrecord_reverses_number",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                # Rounded: SQLite (the embedded default) adds decimals in floating point.
                condition=Q(total=Round(F("amount") + F("tax"), 2)),
                name="taxrecord_total_is_amount_plus_tax",
            ),
            models.CheckConstraint(
                condition=Q(status__in=RegistryStatus.values), name="taxrecord_status_valid"
            ),
            models.CheckConstraint(condition=Q(red_total__gte=0), name="taxrecord_red_total_gte_0"),
            models.CheckConstraint(
                condition=Q(is_red=False) | ~Q(reverses_number=""),
                name="taxrecord_red_names_blue",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class FeedImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class FeedImport(TimeStampedModel):
    """One run of the tax-authority feed importer (`apps.invoices.feed`) over one file.

    Invariants: counters are written by the importer only; `inserted + updated + unchanged`
    is the number of rows that landed, `error_rows` the number of data rows reported in
    `errors` (a row with several problems counts once). A file-level problem (not a feed,
    missing columns, not UTF-8) ends the run `failed` with `error_message` and lands nothing.
    """

    file = models.FileField(_("file"), upload_to="feeds/%Y/%m/", blank=True, max_length=300)
    file_name = models.CharField(_("file name"), max_length=300)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=FeedImportStatus.choices,
        default=FeedImportStatus.QUEUED,
        db_index=True,
    )
    # The file's header, in its order: tells which field of a stored raw row is the buyer name.
    columns = models.JSONField(_("columns"), default=list, blank=True)
    phase = models.CharField(_("phase"), max_length=32, blank=True, default="")
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    bytes_total = models.PositiveBigIntegerField(_("file size (bytes)"), default=0)
    total_rows = models.PositiveBigIntegerField(_("data rows"), default=0)
    inserted = models.PositiveBigIntegerField(_("inserted"), default=0)
    updated = models.PositiveBigIntegerField(_("updated"), default=0)
    unchanged = models.PositiveBigIntegerField(_("unchanged"), default=0)
    red_applied = models.PositiveBigIntegerField(_("red invoices applied"), default=0)
    entries_withdrawn = models.PositiveBigIntegerField(_("campaign entries withdrawn"), default=0)
    error_rows = models.PositiveBigIntegerField(_("rows with errors"), default=0)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error_message = models.TextField(_("error message"), blank=True, default="")

    class Meta:
        verbose_name = _("tax feed import")
        verbose_name_plural = _("tax feed imports")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=FeedImportStatus.values), name="feedimport_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(progress__lte=100), name="feedimport_progress_lte_100"
            ),
        ]

    def __str__(self) -> str:
        return self.file_name

    @property
    def landed_rows(self) -> int:
        return self.inserted + self.updated + self.unchanged


class FeedImportError(models.Model):
    """One problem with one row (or the header) of a feed file, kept so no row is ever lost.

    `raw_row` is the row as it was in the file (undecodable bytes shown as `\\xNN`). It may
    hold a buyer's name, so it is encrypted at rest, bound to this row's `uid`, and shown
    only with the buyer-name column masked. `line` 0 is a file-level problem.
    """

    uid = models.UUIDField(_("UID"), default=uuid.uuid4, unique=True, editable=False)
    feed_import = models.ForeignKey(
        FeedImport, on_delete=models.CASCADE, related_name="errors", verbose_name=_("import")
    )
    line = models.PositiveBigIntegerField(_("line"))
    column = models.CharField(_("column"), max_length=40, blank=True, default="")
    code = models.CharField(_("code"), max_length=64)
    message = models.CharField(_("message"), max_length=500)
    raw_row = EncryptedTextField(_("raw row"), blank=True, default="", row_key_field="uid")

    class Meta:
        verbose_name = _("tax feed import error")
        verbose_name_plural = _("tax feed import errors")
        ordering = ["feed_import", "line", "id"]
        indexes = [models.Index(fields=["feed_import", "line"], name="feedimporterror_import_line")]

    def __str__(self) -> str:
        return f"{self.line}: {self.code}"
