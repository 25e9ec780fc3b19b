"""Errors of the prizes app, each with a stable machine code."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError

MESSAGES = {
    "fund.insufficient": _("The prize fund does not have enough money available."),
    "fund.not_configured": _("No prize fund is configured for this campaign."),
    "ledger.invalid_amount": _("Ledger amounts must be positive and have at most two decimals."),
    "award.not_found": _("No such prize."),
    "award.not_payable": _("This prize cannot be claimed now."),
    "award.not_cash": _("Only cash prizes are paid to an account."),
    "award.claim_expired": _("The time to claim this prize has passed."),
    "coupon.not_found": _("No such coupon."),
    "coupon.not_valid_yet": _("This coupon is not valid yet."),
    "coupon.expired": _("This coupon has expired."),
    "coupon.already_redeemed": _("This coupon has already been redeemed."),
    "coupon.cancelled": _("This coupon has been cancelled."),
    "coupon.wrong_merchant": _("This coupon cannot be used at this merchant."),
    "coupon.wrong_industry": _("This coupon cannot be used in this merchant's industry."),
    "coupon.min_spend": _("The purchase is below this coupon's minimum spend."),
    "coupon.reference_reused": _("This redemption reference was already used for another coupon."),
    "account.not_verified_consumer": _("Complete real-name verification first."),
    "account.invalid_number": _("The account number is not valid."),
    "account.ownership_failed": _("The account is not in your verified name."),
    "account.check_unavailable": _("The account check is unavailable; please try again later."),
    "account.not_usable": _("This payout account cannot be used."),
    "batch.maker_is_checker": _("The person who prepared a payout batch cannot approve it."),
    "batch.empty": _("There are no claimed prizes to pay."),
    "batch.not_permitted": _("You are not allowed to do this with payout batches."),
    "payout.not_found": _("No such payout."),
    "statement.unreadable": _("The statement file could not be read."),
    "statement.duplicate": _("This statement file has already been imported."),
}


class PrizeError(DomainError):
    code = "prize.error"
    messages = MESSAGES
