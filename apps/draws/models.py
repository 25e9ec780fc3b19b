"""Periodic draws (DRAW_SPEC.md, `lotteryinvoice-draw/1`) and instant prize pools.

Periodic draw: `PeriodicDraw` (lifecycle, commitment, frozen facts) with its `DrawTier`s, the
frozen `DrawTicket` list, the `DrawWinner`s (winners and substitutes) and a `DrawStatusChange`
per step. Every write goes through `apps.draws.services`; the database is the last line:
check constraints on status values and amounts, unique constraints that make a second run
impossible, and (migration 0002) triggers that refuse any change to the tickets or tiers of a
draw from freezing on, and to its published commitment and frozen facts.

Instant draw: `InstantPool` → `InstantTier` (with `InstantDailyQuota` per local day), one
`InstantDrawResult` per entry drawn and an `InstantAward` per prize. Counters are decremented
only by conditional UPDATEs, and CHECK constraints keep them in range.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from apps.common.fields import EncryptedTextField
from apps.common.models import MoneyField, TimeStampedModel

from .choices import (
    COMMITTED_STATUSES,
    FROZEN_STATUSES,
    PUBLISHED_STATUSES,
    DisqualificationReason,
    DrawStatus,
    InstantPrizeKind,
    OddsMode,
)

# The spec's draw_id: printable ASCII without "|" (it is hashed as "draw_id|..."). Narrower
# here: letters, digits, ".", "_" and "-", so it is also safe in URLs and file names.
draw_code_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
    _("A draw code is 1 to 40 letters, digits, dots, underscores or hyphens, e.g. ZZ-2026-03-B."),
    "draw_code.invalid",
)
hex64_validator = RegexValidator(r"^[0-9a-f]{64}$", _("64 lowercase hexadecimal characters."))


class PeriodicDraw(TimeStampedModel):
    """One periodic (定期) draw: its configuration, lifecycle and the facts it commits to.

    Invariants:
    - `code` is the spec's `draw_id`, unique forever; at most one live (not cancelled) draw
      per campaign and window.
    - `status` only follows `ALLOWED_TRANSITIONS`, one `DrawStatusChange` per step.
    - `server_seed` (32 bytes, hex) is ciphertext at rest, bound to this row's `uid`; its
      sha256 `seed_commitment` and the `randomness_source` are set at commitment and never
      change afterwards; `revealed_seed` is empty until publication.
    - From freezing on, `ticket_count`, `tickets_digest`, `per_holder_limit`, the window, the
      tiers and the tickets never change (database triggers).
    - `confirmed_by` (who executed the draw) is never `started_by` (two-person rule).
    """

    uid = models.UUIDField(_("UID"), default=uuid.uuid4, unique=True, editable=False)
    code = models.CharField(
        _("draw code"), max_length=40, unique=True, validators=[draw_code_validator]
    )
    name = models.CharField(_("name"), max_length=200)
    campaign = models.ForeignKey(
        "invoices.Campaign",
        on_delete=models.PROTECT,
        related_name="periodic_draws",
        verbose_name=_("campaign"),
    )
    window_starts_at = models.DateTimeField(_("entries from"))
    window_ends_at = models.DateTimeField(_("entries until"))
    cutoff_at = models.DateTimeField(
        _("cut-off"),
        help_text=_("The ticket list is frozen at this time (at or after the window)."),
    )
    per_holder_limit = models.PositiveSmallIntegerField(
        _("prizes per person"), default=1, validators=[MinValueValidator(1)]
    )
    notice_days = models.PositiveSmallIntegerField(
        _("public notice days"), default=7, validators=[MaxValueValidator(90)]
    )
    status = models.CharField(
        _("status"),
        max_length=24,
        choices=DrawStatus.choices,
        default=DrawStatus.SCHEDULED,
        db_index=True,
    )
    server_seed = EncryptedTextField(
        _("server seed"), blank=True, default="", row_key_field="uid", editable=False
    )
    seed_commitment = models.CharField(
        _("seed commitment"), max_length=64, blank=True, default="", editable=False
    )
    randomness_source = models.TextField(
        _("public randomness source"),
        blank=True,
        default="",
        help_text=_(
            "A public value that will only exist after the cut-off, e.g. the official lottery "
            "numbers of a named future date. Announced at commitment; cannot change afterwards."
        ),
    )
    public_randomness = models.TextField(
        _("public randomness"), blank=True, default="", editable=False
    )
    revealed_seed = models.CharField(
        _("server seed (published)"), max_length=64, blank=True, default="", editable=False
    )
    ticket_count = models.PositiveBigIntegerField(
        _("ticket count"), null=True, blank=True, editable=False
    )
    tickets_digest = models.CharField(
        _("tickets digest"), max_length=64, blank=True, default="", editable=False
    )
    # One past the stream counter of the last ticket that took a slot (spec §6).
    next_counter = models.PositiveBigIntegerField(_("next counter"), default=0, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
        editable=False,
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
        editable=False,
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("confirmed and executed by"),
        editable=False,
    )
    committed_at = models.DateTimeField(_("committed at"), null=True, blank=True, editable=False)
    frozen_at = models.DateTimeField(_("frozen at"), null=True, blank=True, editable=False)
    randomness_recorded_at = models.DateTimeField(
        _("randomness recorded at"), null=True, blank=True, editable=False
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True, editable=False)
    drawn_at = models.DateTimeField(_("drawn at"), null=True, blank=True, editable=False)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, editable=False)
    notice_ends_at = models.DateTimeField(
        _("public notice ends at"), null=True, blank=True, editable=False
    )
    finalised_at = models.DateTimeField(_("finalised at"), null=True, blank=True, editable=False)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True, editable=False)
    cancel_reason = models.CharField(
        _("reason for cancelling"), max_length=300, blank=True, default="", editable=False
    )

    class Meta:
        verbose_name = _("periodic draw")
        verbose_name_plural = _("periodic draws")
        ordering = ["-cutoff_at", "-id"]
        permissions = [
            (
                "manage_draw",
                _(
                    "Can create, commit, freeze, record randomness for, publish, finalise "
                    "and cancel periodic draws"
                ),
            ),
            ("execute_draw", _("Can start or confirm (execute) a periodic draw")),
            ("disqualify_winner", _("Can disqualify periodic-draw winners")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DrawStatus.values), name="draw_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(window_ends_at__gt=F("window_starts_at")), name="draw_window"
            ),
            models.CheckConstraint(
                condition=Q(cutoff_at__gte=F("window_ends_at")), name="draw_cutoff_after_window"
            ),
            models.CheckConstraint(
                condition=Q(per_holder_limit__gte=1), name="draw_per_holder_limit_gte_1"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=COMMITTED_STATUSES)
                | (~Q(seed_commitment="") & ~Q(randomness_source="")),
                name="draw_committed_has_commitment",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=FROZEN_STATUSES)
                | (Q(ticket_count__isnull=False) & ~Q(tickets_digest="")),
                name="draw_frozen_has_tickets",
            ),
            models.CheckConstraint(
                condition=~Q(
                    status__in=[DrawStatus.DRAWN, DrawStatus.PUBLISHED, DrawStatus.FINALISED]
                )
                | (Q(confirmed_by__isnull=False) & ~Q(public_randomness="")),
                name="draw_drawn_is_confirmed",
            ),
            models.CheckConstraint(
                condition=Q(confirmed_by__isnull=True) | ~Q(confirmed_by=F("started_by")),
                name="draw_two_person_rule",
            ),
            models.CheckConstraint(
                condition=Q(revealed_seed="") | Q(status__in=PUBLISHED_STATUSES),
                name="draw_seed_revealed_only_when_published",
            ),
            models.UniqueConstraint(
                fields=["campaign", "window_starts_at", "window_ends_at"],
                condition=~Q(status=DrawStatus.CANCELLED),
                name="draw_one_live_draw_per_window",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def is_published(self) -> bool:
        return self.status in PUBLISHED_STATUSES


class DrawTier(models.Model):
    """A prize tier of a periodic draw: `count` slots of `amount` CNY; rank 1 is the top prize.

    Immutable from the draw's freezing on (database trigger).
    """

    draw = models.ForeignKey(
        PeriodicDraw, on_delete=models.CASCADE, related_name="tiers", verbose_name=_("draw")
    )
    rank = models.PositiveSmallIntegerField(_("rank"), validators=[MinValueValidator(1)])
    name = models.CharField(_("name"), max_length=50)
    amount = MoneyField(_("amount"), validators=[MinValueValidator(Decimal("0.01"))])
    count = models.PositiveIntegerField(_("number of prizes"))

    class Meta:
        verbose_name = _("prize tier")
        verbose_name_plural = _("prize tiers")
        ordering = ["draw", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["draw", "rank"], name="drawtier_rank_unique"),
            models.CheckConstraint(condition=Q(rank__gte=1), name="drawtier_rank_gte_1"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="drawtier_amount_positive"),
            models.CheckConstraint(condition=Q(count__gte=0), name="drawtier_count_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.amount} × {self.count})"


class DrawTicket(models.Model):
    """One ticket of a frozen draw: ticket `ticket_no` is entry `invoice` (spec §2).

    Numbered 1..N in (eligible_at, invoice id) order by one set-based statement at freezing;
    `entry_ref` and `holder_ref` are the spec's public references. Never changed afterwards
    (trigger). An invoice has at most one ticket per draw; ticket numbers are unique per draw.

    Built for ten million rows per draw, so every per-row cost counts (docs/benchmarks.md):
    - no database foreign keys: a check per row would lock every referenced invoice row
      (FOR KEY SHARE) at the freeze, about 4 s per million tickets. Tickets are written only
      by the freeze, from rows read in the same statement; invoices and draws are never
      deleted (PROTECT here, and a trigger refuses deleting a draw past scheduling);
    - partitioned by draw on PostgreSQL (migration 0003): the freeze writes a draw's tickets
      into a table without indexes and attaches it as the draw's partition, so the indexes
      are built once, sorted, instead of maintained for each of ten million rows;
    - no index on (draw, holder_ref): maintaining it during the freeze costs about 3 s per
      million tickets. The draw needs a holder's ticket count only when that holder holds the
      per-holder limit and a search skipped many tickets in a row (never, in practice, in a
      large draw); `services.ticket_lookups` answers it from the draw's tickets then.
    """

    draw = models.ForeignKey(
        PeriodicDraw,
        on_delete=models.PROTECT,
        related_name="tickets",
        verbose_name=_("draw"),
        db_index=False,  # (draw, ticket_no) serves it
        db_constraint=False,
    )
    ticket_no = models.PositiveIntegerField(_("ticket number"))
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        related_name="draw_tickets",
        verbose_name=_("invoice"),
        db_index=False,  # (invoice, draw) serves it
        db_constraint=False,
    )
    entry_ref = models.CharField(_("entry reference"), max_length=16)
    holder_ref = models.CharField(_("holder reference"), max_length=16)
    eligible_at = models.DateTimeField(_("eligible at"))

    class Meta:
        verbose_name = _("draw ticket")
        verbose_name_plural = _("draw tickets")
        ordering = ["draw", "ticket_no"]
        constraints = [
            # Also the index for look-ups by ticket number (the random stream's tickets).
            models.UniqueConstraint(fields=["draw", "ticket_no"], name="drawticket_number_unique"),
            # Invoice first: also serves "which draws hold this invoice".
            models.UniqueConstraint(fields=["invoice", "draw"], name="drawticket_invoice_unique"),
            models.CheckConstraint(condition=Q(ticket_no__gte=1), name="drawticket_number_gte_1"),
        ]

    def __str__(self) -> str:
        return f"{self.draw_id}#{self.ticket_no}"


class DrawWinner(models.Model):
    """A ticket that took slot {rank, slot}: a winner of §5 or a substitute of §6.

    Invariants (unique constraints): a ticket takes at most one slot per draw; a stream counter
    produces at most one slot holder; each slot has exactly one original winner (so a draw can
    never be run twice) and at most one current, not disqualified, holder. Disqualifications
    are numbered in the order they were processed (`disqualification_seq`).
    """

    draw = models.ForeignKey(
        PeriodicDraw, on_delete=models.PROTECT, related_name="winners", verbose_name=_("draw")
    )
    tier = models.ForeignKey(
        DrawTier, on_delete=models.PROTECT, related_name="winners", verbose_name=_("prize tier")
    )
    rank = models.PositiveSmallIntegerField(_("rank"))
    slot = models.PositiveIntegerField(_("slot"))
    # No foreign key to the ticket's id: on PostgreSQL tickets are partitioned by draw and
    # `id` is unique only with `draw_id`. Migration 0003 checks (draw_id, ticket_no) against
    # the draw's tickets instead, which also proves the ticket number is that ticket's.
    ticket = models.ForeignKey(
        DrawTicket,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("ticket"),
        db_constraint=False,
    )
    ticket_no = models.PositiveIntegerField(_("ticket number"))
    counter = models.PositiveBigIntegerField(_("stream counter"))
    substitute_for = models.PositiveIntegerField(_("substitute for ticket"), null=True, blank=True)
    disqualified = models.BooleanField(_("disqualified"), default=False)
    disqualification_reason = models.CharField(
        _("disqualification reason"),
        max_length=32,
        choices=DisqualificationReason.choices,
        blank=True,
        default="",
    )
    disqualification_note = models.CharField(
        _("disqualification note"), max_length=300, blank=True, default=""
    )
    disqualification_seq = models.PositiveIntegerField(
        _("disqualification order"), null=True, blank=True
    )
    disqualified_at = models.DateTimeField(_("disqualified at"), null=True, blank=True)
    disqualified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("disqualified by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("draw winner")
        verbose_name_plural = _("draw winners")
        ordering = ["draw", "counter"]
        constraints = [
            models.UniqueConstraint(fields=["draw", "ticket_no"], name="drawwinner_ticket_once"),
            models.UniqueConstraint(fields=["draw", "counter"], name="drawwinner_counter_once"),
            models.UniqueConstraint(
                fields=["draw", "rank", "slot"],
                condition=Q(substitute_for__isnull=True),
                name="drawwinner_one_original_per_slot",
            ),
            models.UniqueConstraint(
                fields=["draw", "rank", "slot"],
                condition=Q(disqualified=False),
                name="drawwinner_one_holder_per_slot",
            ),
            models.UniqueConstraint(
                fields=["draw", "disqualification_seq"],
                condition=Q(disqualification_seq__isnull=False),
                name="drawwinner_disqualification_seq_unique",
            ),
            models.CheckConstraint(
                condition=(
                    Q(disqualified=False)
                    & Q(disqualification_seq__isnull=True)
                    & Q(disqualification_reason="")
                )
                | (
                    Q(disqualified=True)
                    & Q(disqualification_seq__isnull=False)
                    & ~Q(disqualification_reason="")
                ),
                name="drawwinner_disqualification_complete",
            ),
            models.CheckConstraint(
                condition=Q(rank__gte=1) & Q(slot__gte=1), name="drawwinner_slot_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.draw_id} {self.rank}/{self.slot}: #{self.ticket_no}"


class DrawStatusChange(models.Model):
    """One step of a draw's lifecycle: from, to, who, when, and a note."""

    draw = models.ForeignKey(
        PeriodicDraw, on_delete=models.CASCADE, related_name="history", verbose_name=_("draw")
    )
    from_status = models.CharField(_("from"), max_length=24, blank=True, default="")
    to_status = models.CharField(_("to"), max_length=24)
    action = models.CharField(_("action"), max_length=40)
    note = models.CharField(_("note"), max_length=500, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("draw status change")
        verbose_name_plural = _("draw status changes")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} ({self.action})"


# --- Instant draw ------------------------------------------------------------------------------


class InstantPool(TimeStampedModel):
    """A campaign's (or a sponsoring merchant's, 联动商家投入) instant prize pool.

    Every new entry of the campaign draws once, while the pool is enabled and inside its active
    window. `max_wins_per_consumer` caps one consumer's prizes from this pool; cash prizes above
    `delay_cash_above` become payable only `delay_days` after the draw, once the invoice has been
    re-verified (即时开奖，延迟发奖).
    """

    campaign = models.ForeignKey(
        "invoices.Campaign",
        on_delete=models.PROTECT,
        related_name="instant_pools",
        verbose_name=_("campaign"),
    )
    name = models.CharField(_("name"), max_length=200)
    sponsor = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sponsored_pools",
        verbose_name=_("sponsoring merchant"),
    )
    odds_mode = models.CharField(
        _("odds mode"), max_length=16, choices=OddsMode.choices, default=OddsMode.FIXED
    )
    expected_daily_entries = models.PositiveIntegerField(
        _("expected entries per day"),
        default=10_000,
        validators=[MinValueValidator(1)],
        help_text=_("Dynamic odds: the day's remaining quota is spread over this many entries."),
    )
    active_from = models.DateTimeField(_("active from"))
    active_until = models.DateTimeField(_("active until"))
    enabled = models.BooleanField(_("enabled"), default=True)
    max_wins_per_consumer = models.PositiveIntegerField(
        _("maximum prizes per consumer"),
        null=True,
        blank=True,
        default=1,
        help_text=_("Empty: no limit."),
    )
    delay_cash_above = MoneyField(
        _("delay cash prizes above"),
        default=Decimal("50.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
    )
    delay_days = models.PositiveSmallIntegerField(_("payout delay (days)"), default=7)

    class Meta:
        verbose_name = _("instant prize pool")
        verbose_name_plural = _("instant prize pools")
        ordering = ["-active_from", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(active_until__gt=F("active_from")), name="instantpool_window"
            ),
            models.CheckConstraint(
                condition=Q(odds_mode__in=OddsMode.values), name="instantpool_odds_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(delay_cash_above__gte=0), name="instantpool_delay_threshold_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(expected_daily_entries__gte=1), name="instantpool_expected_gte_1"
            ),
        ]
        indexes = [
            models.Index(
                fields=["campaign", "active_from", "active_until"], name="instantpool_active"
            )
        ]

    def __str__(self) -> str:
        return self.name


class InstantTier(models.Model):
    """A prize of an instant pool: `total_quantity` pieces of `face_value`, `remaining` left.

    Invariant: 0 <= remaining <= total_quantity (CHECK); `remaining` only ever decreases through
    `UPDATE … SET remaining = remaining - 1 WHERE id = … AND remaining > 0`.
    `probability` is the chance per entry in fixed-odds mode (0 to 1).
    """

    pool = models.ForeignKey(
        InstantPool, on_delete=models.CASCADE, related_name="tiers", verbose_name=_("pool")
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=InstantPrizeKind.choices)
    face_value = MoneyField(_("face value"), validators=[MinValueValidator(Decimal("0.01"))])
    total_quantity = models.PositiveIntegerField(_("total quantity"))
    remaining = models.PositiveIntegerField(_("remaining"), default=0)
    probability = models.DecimalField(
        _("probability per entry"),
        max_digits=7,
        decimal_places=6,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Fixed-odds mode only: 0.010000 = one entry in a hundred."),
    )
    min_spend = MoneyField(
        _("minimum spend"),
        null=True,
        blank=True,
        help_text=_("Coupons and vouchers: the purchase needed to use it."),
    )
    valid_industries = models.CharField(
        _("valid industries"),
        max_length=200,
        blank=True,
        default="",
        help_text=_("Coupons and vouchers: industry code prefixes, comma separated; empty: all."),
    )
    valid_days = models.PositiveSmallIntegerField(
        _("valid for days"), null=True, blank=True, help_text=_("Empty: no expiry.")
    )

    class Meta:
        verbose_name = _("instant prize tier")
        verbose_name_plural = _("instant prize tiers")
        ordering = ["pool", "-face_value", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0), name="instanttier_remaining_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(remaining__lte=F("total_quantity")),
                name="instanttier_remaining_lte_total",
            ),
            models.CheckConstraint(
                condition=Q(face_value__gt=0), name="instanttier_face_value_positive"
            ),
            models.CheckConstraint(
                condition=Q(probability__gte=0) & Q(probability__lte=1),
                name="instanttier_probability_range",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=InstantPrizeKind.values), name="instanttier_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.face_value})"


class InstantDailyQuota(models.Model):
    """How many prizes of a tier may be awarded on one local (Asia/Shanghai) day.

    Invariant: 0 <= awarded <= quota (CHECK); `awarded` only grows through a conditional
    UPDATE. No row for a day means no prize of that tier that day: pacing is explicit.
    """

    tier = models.ForeignKey(
        InstantTier, on_delete=models.CASCADE, related_name="quotas", verbose_name=_("tier")
    )
    day = models.DateField(_("day"))
    quota = models.PositiveIntegerField(_("quota"))
    awarded = models.PositiveIntegerField(_("awarded"), default=0)

    class Meta:
        verbose_name = _("instant daily quota")
        verbose_name_plural = _("instant daily quotas")
        ordering = ["tier", "day"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "day"], name="instantquota_tier_day_unique"),
            models.CheckConstraint(condition=Q(awarded__gte=0), name="instantquota_awarded_gte_0"),
            models.CheckConstraint(
                condition=Q(awarded__lte=F("quota")), name="instantquota_awarded_lte_quota"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier} {self.day}: {self.awarded}/{self.quota}"


class InstantDrawResult(models.Model):
    """That an entry drew in the instant draw, and whether it won: one row per entry, so an
    entry draws exactly once (a retry returns the recorded outcome)."""

    invoice = models.OneToOneField(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        related_name="instant_draw",
        verbose_name=_("invoice"),
    )
    drawn_at = models.DateTimeField(_("drawn at"))
    won = models.BooleanField(_("won"), default=False)

    class Meta:
        verbose_name = _("instant draw result")
        verbose_name_plural = _("instant draw results")

    def __str__(self) -> str:
        return f"{self.invoice_id}: {'won' if self.won else '-'}"


class InstantAward(models.Model):
    """A prize won in the instant draw by one entry (at most one per invoice).

    `payable_after` is set for cash above the pool's threshold: the prize is awarded at once
    but payable only after that time (and after re-verification of the invoice).
    """

    invoice = models.OneToOneField(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        related_name="instant_award",
        verbose_name=_("invoice"),
    )
    consumer = models.ForeignKey(
        "accounts.Consumer",
        on_delete=models.PROTECT,
        related_name="instant_awards",
        verbose_name=_("consumer"),
        db_index=False,  # (consumer, pool) serves it
    )
    pool = models.ForeignKey(
        InstantPool, on_delete=models.PROTECT, related_name="awards", verbose_name=_("pool")
    )
    tier = models.ForeignKey(
        InstantTier, on_delete=models.PROTECT, related_name="awards", verbose_name=_("tier")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=InstantPrizeKind.choices)
    amount = MoneyField(_("amount"))
    day = models.DateField(_("day"))
    drawn_at = models.DateTimeField(_("drawn at"), db_index=True)
    payable_after = models.DateTimeField(_("payable after"), null=True, blank=True)

    class Meta:
        verbose_name = _("instant award")
        verbose_name_plural = _("instant awards")
        ordering = ["-drawn_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="instantaward_amount_positive"),
        ]
        indexes = [models.Index(fields=["consumer", "pool"], name="instantaward_consumer_pool")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount}"
