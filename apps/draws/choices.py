"""Status values of periodic draws and their transition table; kinds of instant prizes."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class DrawStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    COMMITTED = "committed", _("Committed")
    FROZEN = "frozen", _("Ticket list frozen")
    RANDOMNESS_RECORDED = "randomness_recorded", _("Public randomness recorded")
    DRAWN = "drawn", _("Drawn")
    PUBLISHED = "published", _("Published (public notice)")
    FINALISED = "finalised", _("Finalised")
    CANCELLED = "cancelled", pgettext_lazy("draw status", "Cancelled")


ALLOWED_TRANSITIONS = {
    DrawStatus.SCHEDULED: frozenset({DrawStatus.COMMITTED, DrawStatus.CANCELLED}),
    DrawStatus.COMMITTED: frozenset({DrawStatus.FROZEN, DrawStatus.CANCELLED}),
    DrawStatus.FROZEN: frozenset({DrawStatus.RANDOMNESS_RECORDED, DrawStatus.CANCELLED}),
    DrawStatus.RANDOMNESS_RECORDED: frozenset({DrawStatus.DRAWN, DrawStatus.CANCELLED}),
    DrawStatus.DRAWN: frozenset({DrawStatus.PUBLISHED}),
    DrawStatus.PUBLISHED: frozenset({DrawStatus.FINALISED}),
    DrawStatus.FINALISED: frozenset(),
    DrawStatus.CANCELLED: frozenset(),
}

#: Configuration (window, cut-off, limit, tiers) may still change in these states.
EDITABLE_STATUSES = (DrawStatus.SCHEDULED, DrawStatus.COMMITTED)

#: From freezing on, the ticket list and the tier table are immutable (a database trigger).
LOCKED_STATUSES = (
    DrawStatus.FROZEN,
    DrawStatus.RANDOMNESS_RECORDED,
    DrawStatus.DRAWN,
    DrawStatus.PUBLISHED,
    DrawStatus.FINALISED,
    DrawStatus.CANCELLED,
)

#: The seed commitment and randomness source are public from commitment on.
COMMITTED_STATUSES = (
    DrawStatus.COMMITTED,
    DrawStatus.FROZEN,
    DrawStatus.RANDOMNESS_RECORDED,
    DrawStatus.DRAWN,
    DrawStatus.PUBLISHED,
    DrawStatus.FINALISED,
)

#: Ticket list (count, digest, file) exists and is public.
FROZEN_STATUSES = (
    DrawStatus.FROZEN,
    DrawStatus.RANDOMNESS_RECORDED,
    DrawStatus.DRAWN,
    DrawStatus.PUBLISHED,
    DrawStatus.FINALISED,
)

#: Winners, the server seed and the publication bundle are public.
PUBLISHED_STATUSES = (DrawStatus.PUBLISHED, DrawStatus.FINALISED)


class DisqualificationReason(models.TextChoices):
    RED_FLUSHED = "red_flushed", _("Invoice red-flushed (reversed)")
    REVERIFICATION_FAILED = "reverification_failed", _("Re-verification failed")
    INELIGIBLE = "ineligible", _("Entry found ineligible")
    FRAUD = "fraud", _("Fraud confirmed")
    OTHER = "other", _("Other")


class OddsMode(models.TextChoices):
    FIXED = "fixed", _("Fixed probability per entry")
    DYNAMIC = "dynamic", _("Dynamic (remaining daily quota / expected remaining entries)")


class InstantPrizeKind(models.TextChoices):
    COUPON = "coupon", _("Coupon")
    VOUCHER = "voucher", _("Voucher")
    CASH = "cash", _("Cash")
