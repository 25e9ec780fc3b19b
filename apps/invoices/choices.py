"""Status values and the transition tables of campaigns and invoices."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", pgettext_lazy("campaign status", "Active")
    PAUSED = "paused", _("Paused")
    ENDED = "ended", _("Ended")


CAMPAIGN_TRANSITIONS = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.ACTIVE}),
    CampaignStatus.ACTIVE: frozenset({CampaignStatus.PAUSED, CampaignStatus.ENDED}),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.ACTIVE, CampaignStatus.ENDED}),
    CampaignStatus.ENDED: frozenset(),
}


class InvoiceType(models.TextChoices):
    ORDINARY = "32", _("Digital ordinary invoice (32)")
    SPECIAL = "31", _("Digital special VAT invoice (31)")
    OTHER = "00", _("Other")


class InvoiceStatus(models.TextChoices):
    PENDING = "pending", _("Pending verification")
    HELD = "held", _("Held for review")
    ACCEPTED = "accepted", _("Accepted")
    REJECTED = "rejected", _("Rejected")
    REVERSED = "reversed", _("Reversed (red-flushed)")


# A live submission blocks every other submission of the same invoice number, forever.
# A reversed invoice stays live: an invoice enters once, and a red-flushed one never again.
LIVE_INVOICE_STATUSES = (
    InvoiceStatus.PENDING,
    InvoiceStatus.HELD,
    InvoiceStatus.ACCEPTED,
    InvoiceStatus.REVERSED,
)

INVOICE_TRANSITIONS = {
    InvoiceStatus.PENDING: frozenset(
        {InvoiceStatus.PENDING, InvoiceStatus.HELD, InvoiceStatus.ACCEPTED, InvoiceStatus.REJECTED}
    ),
    InvoiceStatus.HELD: frozenset({InvoiceStatus.ACCEPTED, InvoiceStatus.REJECTED}),
    InvoiceStatus.ACCEPTED: frozenset({InvoiceStatus.REVERSED}),
    InvoiceStatus.REJECTED: frozenset(),
    InvoiceStatus.REVERSED: frozenset(),
}


class SourceChannel(models.TextChoices):
    APP = "app", _("Mobile app")
    MINI_PROGRAM = "mini_program", _("Mini program")
    CITY_APP = "city_app", _("City government-services app")
    WEB = "web", _("Web")
    STAFF = "staff", _("Entered by staff")
    IMPORT = "import", _("Bulk import")


class RegistryStatus(models.TextChoices):
    NORMAL = "normal", _("Normal")
    RED_FLUSHED = "red_flushed", _("Red-flushed")
    PARTIALLY_RED_FLUSHED = "partially_red_flushed", _("Partially red-flushed")


class IssuerKind(models.TextChoices):
    SELF = "self", _("Issued by the seller (自开)")
    AGENT = "agent", _("Issued by the tax office on the seller's behalf (代开)")
