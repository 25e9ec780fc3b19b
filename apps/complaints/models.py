"""Consultation and complaint cases, the queues handlers work in, and their SLA calendar.

A case is opened by a consumer (app), by staff taking a 12345 hotline call (or importing the
hotline's tickets), or by staff on their own. It lands in its category's queue, is assigned
round-robin among the queue's available handlers, and moves through
new → assigned → in progress → awaiting consumer → resolved → closed, with reopen inside a
window. Every move is a history row and an audit record, written by `services`.

Its SLA clocks (first response in working hours, resolution in working days) are fixed when it
is opened, from the category and the working calendar (`calendar.py`).
"""

from __future__ import annotations

import os
import uuid
from datetime import time
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.common.fields import BlindIndexField, EncryptedTextField
from apps.common.masking import mask_name, mask_phone
from apps.common.models import TimeStampedModel

from .choices import (
    OPEN_STATUSES,
    CaseChannel,
    CaseEvent,
    CaseKind,
    CaseOutcome,
    CasePriority,
    CaseStatus,
    MessageKind,
)

OPEN = Q(status__in=sorted(OPEN_STATUSES))


class CaseSettings(models.Model):
    """The one row of settings of the case desk: working hours for SLA clocks, the reopen
    window, how early SLA warnings go out and the attachment limits.

    A singleton (pk = 1, CHECK): `CaseSettings.load()` creates it with the defaults.
    """

    workday_start = models.TimeField(_("working day starts"), default=time(9, 0))
    workday_end = models.TimeField(_("working day ends"), default=time(17, 0))
    break_start = models.TimeField(_("lunch break starts"), null=True, blank=True)
    break_end = models.TimeField(_("lunch break ends"), null=True, blank=True)
    timezone = models.CharField(_("time zone"), max_length=40, default="Asia/Shanghai")
    reopen_window_days = models.PositiveSmallIntegerField(
        _("reopen window (days)"),
        default=7,
        help_text=_(
            "A resolved case can be reopened for this many days; after that it is closed "
            "automatically."
        ),
    )
    warning_hours = models.DecimalField(
        _("warn this many working hours before a breach"),
        max_digits=5,
        decimal_places=2,
        default=2,
        validators=[MinValueValidator(0)],
    )
    attachment_max_bytes = models.PositiveIntegerField(
        _("largest attachment (bytes)"),
        default=5 * 1024 * 1024,
        validators=[MinValueValidator(1024), MaxValueValidator(50 * 1024 * 1024)],
    )
    attachments_per_case = models.PositiveSmallIntegerField(
        _("attachments per case"), default=10, validators=[MinValueValidator(1)]
    )
    reference_prefix = models.CharField(
        _("reference prefix"),
        max_length=8,
        default="ZX",
        help_text=_("Case references look like ZX2026-000123."),
    )

    class Meta:
        verbose_name = _("case desk settings")
        verbose_name_plural = _("case desk settings")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="casesettings_singleton"),
            models.CheckConstraint(
                condition=Q(workday_start__lt=models.F("workday_end")),
                name="casesettings_hours_order",
            ),
            models.CheckConstraint(
                condition=(Q(break_start__isnull=True) & Q(break_end__isnull=True))
                | (
                    Q(break_start__gte=models.F("workday_start"))
                    & Q(break_start__lt=models.F("break_end"))
                    & Q(break_end__lte=models.F("workday_end"))
                ),
                name="casesettings_break_inside_hours",
            ),
        ]

    def __str__(self) -> str:
        return str(_("case desk settings"))

    def clean(self):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from django.core.exceptions import ValidationError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": _("Unknown time zone.")}) from None
        if self.workday_start and self.workday_end and self.workday_start >= self.workday_end:
            raise ValidationError(_("The working day must start before it ends."))
        if (self.break_start is None) != (self.break_end is None):
            raise ValidationError(_("A lunch break needs both a start and an end."))
        if self.break_start is not None and not (
            self.workday_start <= self.break_start < self.break_end <= self.workday_end
        ):
            raise ValidationError(_("The lunch break must lie inside the working day."))

    @classmethod
    def load(cls) -> CaseSettings:
        obj = cls.objects.filter(pk=1).first()
        if obj is None:
            cls.objects.bulk_create([cls(pk=1)], ignore_conflicts=True)
            obj = cls.objects.get(pk=1)
        return obj


class WorkCalendarDay(models.Model):
    """A date whose working status differs from the Monday-to-Friday rule: a public holiday on
    a weekday (not working) or a weekend make-up workday (调休, working)."""

    date = models.DateField(_("date"), unique=True)
    is_workday = models.BooleanField(
        _("working day"),
        help_text=_("Ticked: a working day (e.g. a weekend make-up day). Empty: a holiday."),
    )
    note = models.CharField(_("note"), max_length=100, blank=True, default="")

    class Meta:
        verbose_name = _("calendar day")
        verbose_name_plural = _("working calendar")
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.note}".strip()


class CaseQueue(TimeStampedModel):
    """A team's work queue. Its members (`CaseQueueMembership`) see its cases; new cases are
    dealt round-robin to the members marked available; its supervisors receive escalations."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True, default="")
    auto_assign = models.BooleanField(
        _("assign new cases automatically"),
        default=True,
        help_text=_("Round-robin among the available handlers of the queue."),
    )
    active = models.BooleanField(_("active"), default=True)
    deal_counter = models.PositiveBigIntegerField(_("cases dealt"), default=0, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="CaseQueueMembership",
        related_name="case_queues",
        verbose_name=_("members"),
    )

    class Meta:
        verbose_name = _("case queue")
        verbose_name_plural = _("case queues")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CaseQueueMembership(models.Model):
    """A handler (or supervisor) in a queue. The round-robin pointer: the available member who
    was dealt a case longest ago gets the next one. `deal_seq` is the queue's `deal_counter` at
    that deal (a counter, not a clock, so two deals in the same instant still rotate);
    `last_assigned_at` says when, for people."""

    queue = models.ForeignKey(
        CaseQueue, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("queue")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="case_queue_memberships",
        verbose_name=_("staff member"),
    )
    is_supervisor = models.BooleanField(
        _("supervisor"),
        default=False,
        help_text=_("Sees the whole team's workload, reassigns, receives escalations."),
    )
    available = models.BooleanField(
        _("available for new cases"),
        default=True,
        help_text=_("Only available members are dealt new cases automatically."),
    )
    last_assigned_at = models.DateTimeField(_("last dealt a case"), null=True, blank=True)
    deal_seq = models.PositiveBigIntegerField(_("deal number"), default=0, editable=False)

    class Meta:
        verbose_name = _("queue member")
        verbose_name_plural = _("queue members")
        ordering = ["queue", "user"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "user"], name="casequeuemembership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.queue} / {self.user}"


class CaseCategory(TimeStampedModel):
    """What a case is about: its kind, the queue it lands in, its default priority and its SLA
    (first response within `first_response_hours` working hours, resolution within
    `resolution_days` working days)."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, choices=CaseKind.choices)
    queue = models.ForeignKey(
        CaseQueue, on_delete=models.PROTECT, related_name="categories", verbose_name=_("queue")
    )
    default_priority = models.PositiveSmallIntegerField(
        _("default priority"), choices=CasePriority.choices, default=CasePriority.NORMAL
    )
    first_response_hours = models.DecimalField(
        _("first response within (working hours)"),
        max_digits=6,
        decimal_places=2,
        default=4,
        validators=[MinValueValidator(0)],
    )
    resolution_days = models.DecimalField(
        _("resolution within (working days)"),
        max_digits=6,
        decimal_places=2,
        default=5,
        validators=[MinValueValidator(0)],
    )
    sort_order = models.PositiveSmallIntegerField(_("order"), default=100)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("case category")
        verbose_name_plural = _("case categories")
        ordering = ["kind", "sort_order", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=CaseKind.values), name="casecategory_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(first_response_hours__gte=0) & Q(resolution_days__gte=0),
                name="casecategory_sla_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class FaqArticle(TimeStampedModel):
    """A knowledge-base answer to a common consultation, published to the consumer app; a
    handler can answer a consultation by linking one."""

    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    title = models.CharField(_("question"), max_length=200)
    body = models.TextField(_("answer"))
    category = models.ForeignKey(
        CaseCategory,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="faq_articles",
        verbose_name=_("category"),
    )
    is_published = models.BooleanField(_("published"), default=False, db_index=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    sort_order = models.PositiveSmallIntegerField(_("order"), default=100)

    class Meta:
        verbose_name = _("FAQ article")
        verbose_name_plural = _("FAQ articles")
        ordering = ["sort_order", "title"]

    def __str__(self) -> str:
        return self.title


class CannedReply(TimeStampedModel):
    """A prepared answer handlers insert into a reply (and may edit before sending)."""

    title = models.CharField(_("title"), max_length=100)
    body = models.TextField(_("text"))
    kind = models.CharField(
        _("for cases of kind"),
        max_length=20,
        choices=CaseKind.choices,
        blank=True,
        default="",
        help_text=_("Empty: offered for every kind."),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class CaseSequence(models.Model):
    """The last reference number handed out in a year (row-locked while numbering a case)."""

    year = models.PositiveSmallIntegerField(_("year"), primary_key=True)
    last_value = models.PositiveIntegerField(_("last number"), default=0)

    class Meta:
        verbose_name = _("case numbering")
        verbose_name_plural = _("case numbering")

    def __str__(self) -> str:
        return f"{self.year}: {self.last_value}"


class Case(TimeStampedModel):
    """One consultation or complaint.

    Invariants: `reference` and `public_id` are unique and never reused; a hotline ticket
    number enters at most once (unique when present); status values, priority and rating are
    CHECKed; an open case has no `resolved_at`/`closed_at` of its current round; a hotline
    caller's name and phone exist only as ciphertext bound to this row.
    """

    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    reference = models.CharField(_("reference"), max_length=20, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=CaseKind.choices)
    channel = models.CharField(_("channel"), max_length=10, choices=CaseChannel.choices)
    status = models.CharField(
        _("status"), max_length=20, choices=CaseStatus.choices, default=CaseStatus.NEW
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=CasePriority.choices, default=CasePriority.NORMAL
    )
    category = models.ForeignKey(
        CaseCategory, on_delete=models.PROTECT, related_name="cases", verbose_name=_("category")
    )
    queue = models.ForeignKey(
        CaseQueue, on_delete=models.PROTECT, related_name="cases", verbose_name=_("queue")
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_cases",
        verbose_name=_("assignee"),
    )
    subject = models.CharField(_("subject"), max_length=200)
    description = models.TextField(_("description"))

    # Who raised it: a consumer of the app, or a hotline caller (personal data encrypted).
    consumer = models.ForeignKey(
        "accounts.Consumer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("consumer"),
    )
    caller_name = EncryptedTextField(_("caller name"), blank=True, default="")
    caller_phone = EncryptedTextField(_("caller phone"), blank=True, default="")
    caller_phone_index = BlindIndexField(source="caller_phone", purpose="phone", db_index=True)
    hotline_ticket = models.CharField(
        _("hotline ticket number"), max_length=40, null=True, blank=True, unique=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("entered by"),
    )

    # What it is about.
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("invoice"),
    )
    award = models.ForeignKey(
        "prizes.Award",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("award"),
    )
    payout = models.ForeignKey(
        "prizes.Payout",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("payout"),
    )
    merchant = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("merchant"),
    )
    reported_merchant_name = models.CharField(
        _("merchant as reported"), max_length=200, blank=True, default=""
    )
    draw = models.ForeignKey(
        "draws.PeriodicDraw",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("periodic draw"),
    )

    # Clocks (fixed at opening from the category's SLA and the working calendar).
    opened_at = models.DateTimeField(_("opened at"))
    first_response_due = models.DateTimeField(_("first response due"))
    resolution_due = models.DateTimeField(_("resolution due"))
    first_responded_at = models.DateTimeField(_("first responded at"), null=True, blank=True)
    paused_at = models.DateTimeField(_("clock paused at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    reopened_count = models.PositiveSmallIntegerField(_("times reopened"), default=0)
    first_response_warned_at = models.DateTimeField(
        _("first-response warning sent"), null=True, blank=True
    )
    first_response_breached_at = models.DateTimeField(
        _("first response overdue since"), null=True, blank=True
    )
    resolution_warned_at = models.DateTimeField(_("resolution warning sent"), null=True, blank=True)
    resolution_breached_at = models.DateTimeField(
        _("resolution overdue since"), null=True, blank=True
    )
    escalated = models.BooleanField(_("escalated"), default=False)
    escalated_at = models.DateTimeField(_("escalated at"), null=True, blank=True)
    escalation_reason = models.CharField(
        _("escalation reason"), max_length=300, blank=True, default=""
    )

    # Outcome.
    outcome = models.CharField(
        _("outcome"), max_length=20, choices=CaseOutcome.choices, blank=True, default=""
    )
    resolution_summary = models.TextField(_("resolution summary"), blank=True, default="")
    substantiated = models.BooleanField(
        _("substantiated"),
        null=True,
        blank=True,
        help_text=_("For complaints and merchant refusals: whether the complaint was founded."),
    )
    rating = models.PositiveSmallIntegerField(
        _("satisfaction (1–5)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    rating_comment = models.CharField(_("rating comment"), max_length=500, blank=True, default="")
    rated_at = models.DateTimeField(_("rated at"), null=True, blank=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        ordering = ["-opened_at"]
        permissions = [
            ("handle_case", _("Can work on the cases of own queues")),
            ("supervise_case", _("Can reassign and escalate the cases of supervised queues")),
            ("read_all_cases", _("Can see the cases of every queue")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=CaseStatus.values), name="case_status_valid"
            ),
            models.CheckConstraint(condition=Q(kind__in=CaseKind.values), name="case_kind_valid"),
            models.CheckConstraint(
                condition=Q(channel__in=CaseChannel.values), name="case_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(priority__in=CasePriority.values), name="case_priority_valid"
            ),
            models.CheckConstraint(
                condition=Q(outcome="") | Q(outcome__in=CaseOutcome.values),
                name="case_outcome_valid",
            ),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | (Q(rating__gte=1) & Q(rating__lte=5)),
                name="case_rating_range",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[CaseStatus.ASSIGNED, CaseStatus.IN_PROGRESS])
                | Q(assignee__isnull=False),
                name="case_worked_has_assignee",
            ),
            models.CheckConstraint(
                condition=~Q(status=CaseStatus.RESOLVED) | Q(resolved_at__isnull=False),
                name="case_resolved_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=CaseStatus.CLOSED) | Q(closed_at__isnull=False),
                name="case_closed_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(channel=CaseChannel.API) | Q(consumer__isnull=False),
                name="case_api_has_consumer",
            ),
        ]
        indexes = [
            # The queue page: a queue's open cases, most urgent first, soonest due first.
            models.Index(
                fields=["queue", "-priority", "resolution_due", "id"],
                condition=OPEN,
                name="case_open_queue",
            ),
            # "My cases".
            models.Index(
                fields=["assignee", "-priority", "resolution_due", "id"],
                condition=OPEN,
                name="case_open_assignee",
            ),
            # The queue page over several queues (or all, for oversight roles).
            models.Index(
                fields=["-priority", "resolution_due", "id"],
                condition=OPEN,
                name="case_open_order",
            ),
            # The queue page's totals and the team's workload (index-only GROUP BY).
            models.Index(
                fields=["queue", "assignee", "escalated"],
                condition=OPEN,
                name="case_open_workload",
            ),
            # Overdue / at risk and the SLA sweep.
            models.Index(
                fields=["resolution_due"],
                condition=OPEN,
                name="case_open_resolution_due",
            ),
            models.Index(
                fields=["first_response_due"],
                condition=OPEN & Q(first_responded_at__isnull=True),
                name="case_open_first_response_due",
            ),
            models.Index(fields=["status", "queue"], name="case_status_queue"),
            models.Index(fields=["consumer", "-opened_at"], name="case_consumer_recent"),
            models.Index(
                fields=["resolved_at"],
                condition=Q(status=CaseStatus.RESOLVED),
                name="case_resolved_to_close",
            ),
            # The risk model counts substantiated refusals per merchant.
            models.Index(
                fields=["merchant", "resolved_at"],
                condition=Q(kind=CaseKind.MERCHANT_REFUSAL) & Q(substantiated=True),
                name="case_substantiated_refusal",
            ),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def masked_caller_name(self) -> str:
        return mask_name(self.caller_name)

    @property
    def masked_caller_phone(self) -> str:
        return mask_phone(self.caller_phone)


class CaseStatusChange(models.Model):
    """One event of a case's workflow: a status change (`from_status` → `to_status`), or an
    event that keeps the status (reassignment, escalation, SLA warning, rating)."""

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="history", verbose_name=_("case")
    )
    event = models.CharField(_("event"), max_length=20, choices=CaseEvent.choices)
    from_status = models.CharField(_("from"), max_length=20, blank=True, default="")
    to_status = models.CharField(_("to"), max_length=20)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assignee"),
    )
    reason = models.CharField(_("reason"), max_length=300, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("case history entry")
        verbose_name_plural = _("case history")
        ordering = ["case", "id"]
        indexes = [models.Index(fields=["case", "created_at"], name="casehistory_case_time")]

    def __str__(self) -> str:
        return f"{self.get_event_display()}: {self.from_status} → {self.to_status}"

    @staticmethod
    def _label(value: str) -> str:
        return str(CaseStatus(value).label) if value in CaseStatus.values else value

    @property
    def from_label(self) -> str:
        return self._label(self.from_status)

    @property
    def to_label(self) -> str:
        return self._label(self.to_status)


class CaseMessage(models.Model):
    """A message of a case's thread: a reply to the consumer, an internal note (never shown to
    the consumer) or a message from the consumer."""

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="messages", verbose_name=_("case")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=MessageKind.choices)
    body = models.TextField(_("text"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("author"),
    )
    article = models.ForeignKey(
        FaqArticle,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("linked FAQ article"),
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("case message")
        verbose_name_plural = _("case messages")
        ordering = ["case", "id"]
        indexes = [models.Index(fields=["case", "created_at"], name="casemessage_case_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=MessageKind.values), name="casemessage_kind_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_public(self) -> bool:
        return self.kind != MessageKind.INTERNAL_NOTE


def attachment_root() -> Path:
    """Where attachments live: outside MEDIA_ROOT and STATIC_ROOT, never served by the web
    server (`COMPLAINT_ATTACHMENT_ROOT`, default `var/private/case-attachments`)."""
    default = Path(getattr(settings, "VAR_DIR", settings.BASE_DIR / "var"))
    return Path(
        getattr(settings, "COMPLAINT_ATTACHMENT_ROOT", default / "private" / "case-attachments")
    )


class PrivateStorage(FileSystemStorage):
    """A file system storage without URLs: files leave only through a permission-checked view.
    Its directory is read from the settings at each use (so tests and deployments can move it)."""

    @property
    def base_location(self):
        return str(attachment_root())

    @property
    def location(self):
        return os.path.abspath(self.base_location)

    def url(self, name):
        raise ValueError("case attachments have no public URL")


def attachment_storage() -> PrivateStorage:
    return PrivateStorage()


def attachment_path(instance, filename: str) -> str:
    # A random name: the uploaded name is kept in `original_name` only, never on disk.
    return f"{instance.case_id % 1000:03d}/{uuid.uuid4().hex}{Path(filename).suffix.lower()}"


class CaseAttachment(models.Model):
    """A file attached to a case. Its type is sniffed from the bytes (allow-list), its size is
    limited, it is stored under a random name in private storage and downloaded by staff only
    through a permission-checked view (or by the consumer who owns the case, for public
    files)."""

    uid = models.UUIDField(_("UID"), default=uuid.uuid4, unique=True, editable=False)
    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("case")
    )
    message = models.ForeignKey(
        CaseMessage,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="attachments",
        verbose_name=_("message"),
    )
    file = models.FileField(
        _("file"), storage=attachment_storage, upload_to=attachment_path, max_length=200
    )
    original_name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(_("type"), max_length=100)
    size = models.PositiveIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    is_public = models.BooleanField(
        _("visible to the consumer"),
        default=True,
        help_text=_("Files of internal notes are never shown to the consumer."),
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("case attachment")
        verbose_name_plural = _("case attachments")
        ordering = ["case", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(size__gt=0), name="caseattachment_not_empty")
        ]

    def __str__(self) -> str:
        return self.original_name


class CaseDesk(Case):
    """Not data: the admin index's entry to the staff case desk (a proxy without permissions
    of its own; who may open the desk is decided by the case permissions)."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = _("case desk (my work)")
        verbose_name_plural = _("case desk (my work)")
