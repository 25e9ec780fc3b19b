"""Why an invoice does not enter: one stable code per reason, with a translated message.

The codes are a contract with the apps and partner systems; never rename one. HTTP statuses:
400 malformed input, 403 the consumer may not submit, 409 conflict with another submission,
422 a well-formed invoice that does not qualify.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError

REJECTIONS: dict[str, tuple[int, object]] = {
    "invoice.incomplete": (400, _("Give the invoice number, issue date and total with tax.")),
    "invoice.invalid_total": (400, _("The total with tax must be a positive amount in yuan.")),
    "invoice.invalid_date": (400, _("The issue date is not a valid date.")),
    "invoice.future_date": (400, _("The issue date is in the future.")),
    "invoice.duplicate": (409, _("This invoice has already been submitted.")),
    "invoice.mismatch": (
        422,
        _("The issue date or total does not match the tax authority's record of this invoice."),
    ),
    "invoice.not_found": (
        422,
        _("The tax authority has no record of this invoice. Check the number, date and total."),
    ),
    "invoice.name_mismatch": (
        422,
        _("The buyer on this invoice is not you: only invoices in your own real name count."),
    ),
    "invoice.enterprise_buyer": (
        422,
        _("Invoices issued to a company or organisation do not take part."),
    ),
    "invoice.no_campaign": (422, _("No campaign is open for invoices of this date.")),
    "invoice.type_not_allowed": (
        422,
        _("Only digital ordinary invoices take part; this type does not."),
    ),
    "invoice.below_minimum": (
        422,
        _("The total with tax is below the campaign's minimum."),
    ),
    "invoice.seller_outside_area": (422, _("The seller is not registered in the campaign's city.")),
    "invoice.industry_not_eligible": (
        422,
        _("The seller's line of business is not part of the campaign."),
    ),
    "invoice.seller_blacklisted": (422, _("Invoices of this seller do not take part.")),
    "invoice.seller_suspended": (422, _("Invoices of this seller are suspended for now.")),
    "invoice.red_flushed": (422, _("This invoice has been reversed (red-flushed).")),
    "invoice.agent_issued": (
        422,
        _("Invoices issued by the tax office on the seller's behalf do not take part."),
    ),
    "limit.daily_reached": (422, _("You have reached today's limit of invoices.")),
    "limit.weekly_reached": (422, _("You have reached this week's limit of invoices.")),
    "limit.monthly_reached": (422, _("You have reached this month's limit of invoices.")),
    "limit.campaign_reached": (
        422,
        _("You have reached the campaign's limit of invoices."),
    ),
    "risk.blocked": (422, _("This submission cannot be accepted. Contact the hotline if unsure.")),
    "review.rejected": (422, _("A reviewer did not accept this invoice.")),
    "consumer.not_verified": (403, _("Complete real-name verification before submitting.")),
    "consumer.frozen": (403, _("Your account is frozen. Contact the hotline.")),
    # Not a rejection: a history code, shown when part of an entered invoice was reversed and
    # what remains still qualifies (apps.invoices.reversals).
    "invoice.partially_red_flushed": (
        422,
        _("Part of this invoice has been reversed (red-flushed); the rest still takes part."),
    ),
}


class InvoiceRejected(DomainError):
    """A submission that does not enter, with the reason's code. `invoice` is the rejected
    attempt on record, when one was written."""

    def __init__(self, code: str, *, detail: dict | None = None):
        status, message = REJECTIONS[code]
        super().__init__(code, message, detail=detail or {}, status_code=status)


def rejection_message(code: str) -> str:
    """The translated text for a stored rejection code (for lists and detail pages)."""
    return str(REJECTIONS[code][1]) if code in REJECTIONS else ""
