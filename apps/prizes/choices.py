"""Statuses and transition tables of awards, coupons, payouts and payout batches."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class FundSource(models.TextChoices):
    CENTRAL = "central", _("Central government")
    CITY = "city", _("City government")
    MERCHANT = "merchant", _("Merchant-sponsored")


class AccountKind(models.TextChoices):
    """The accounts of one fund's double-entry ledger.

    FUNDING is the contra account money enters from (its balance is minus the budget received);
    every other account can never go negative.
    """

    FUNDING = "funding", _("Funding received")
    AVAILABLE = "available", _("Available")
    RESERVED = "reserved", _("Reserved for awards")
    DISBURSED = "disbursed", _("Paid out")
    TAX_WITHHELD = "tax_withheld", _("Tax withheld")


class EntryKind(models.TextChoices):
    DEPOSIT = "deposit", _("Funding deposit")
    RESERVE = "reserve", _("Reserved on award")
    RELEASE = "release", _("Released (expired or cancelled)")
    DISBURSE = "disburse", _("Paid out")
    WITHHOLD_TAX = "withhold_tax", _("Tax withheld")
    RECOVER = "recover", _("Recovered from winner")
    CORRECTION = "correction", _("Correction")


class AwardSource(models.TextChoices):
    INSTANT = "instant", _("Instant draw")
    PERIODIC = "periodic", _("Periodic draw")


class AwardKind(models.TextChoices):
    CASH = "cash", _("Cash")
    COUPON = "coupon", _("Coupon")
    VOUCHER = "voucher", _("Voucher")


class AwardStatus(models.TextChoices):
    HELD = "held", _("Held until re-verification")
    PAYABLE = "payable", _("Payable")
    CLAIMED = "claimed", _("Claimed")
    PAID = "paid", _("Paid / redeemed")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")
    TO_RECOVER = "to_recover", _("To be recovered")
    RECOVERED = "recovered", _("Recovered")


AWARD_TRANSITIONS: dict[str, frozenset[str]] = {
    AwardStatus.HELD: frozenset({AwardStatus.PAYABLE, AwardStatus.CANCELLED}),
    AwardStatus.PAYABLE: frozenset(
        {AwardStatus.CLAIMED, AwardStatus.PAID, AwardStatus.EXPIRED, AwardStatus.CANCELLED}
    ),
    # A definite payout failure puts the award back to payable (the winner fixes the account
    # and claims again); a red-flush found at payout time cancels it.
    AwardStatus.CLAIMED: frozenset(
        {AwardStatus.PAID, AwardStatus.PAYABLE, AwardStatus.HELD, AwardStatus.CANCELLED}
    ),
    AwardStatus.PAID: frozenset({AwardStatus.TO_RECOVER}),
    AwardStatus.TO_RECOVER: frozenset({AwardStatus.RECOVERED}),
    AwardStatus.EXPIRED: frozenset(),
    AwardStatus.CANCELLED: frozenset(),
    AwardStatus.RECOVERED: frozenset(),
}

# Statuses whose amount is still reserved in the ledger.
AWARD_RESERVED_STATUSES = frozenset({AwardStatus.HELD, AwardStatus.PAYABLE, AwardStatus.CLAIMED})


class CouponStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    REDEEMED = "redeemed", _("Redeemed")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")


class PayoutAccountKind(models.TextChoices):
    BANK_CARD = "bank_card", _("Bank card")
    WALLET = "wallet", _("Wallet")


class PayoutAccountStatus(models.TextChoices):
    VERIFIED = "verified", _("Verified")
    REJECTED = "rejected", _("Rejected")
    DISABLED = "disabled", _("Disabled")


class BatchStatus(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted for approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    COMPLETED = "completed", _("Completed")


BATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    BatchStatus.SUBMITTED: frozenset({BatchStatus.APPROVED, BatchStatus.REJECTED}),
    BatchStatus.APPROVED: frozenset({BatchStatus.COMPLETED}),
    BatchStatus.REJECTED: frozenset(),
    BatchStatus.COMPLETED: frozenset(),
}


class PayoutStatus(models.TextChoices):
    PENDING = "pending", _("Awaiting approval")
    APPROVED = "approved", _("Approved")
    SENDING = "sending", _("Sending")
    PROCESSING = "processing", _("Processing at provider")
    UNKNOWN = "unknown", _("Outcome unknown")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Failed")
    BLOCKED = "blocked", _("Blocked (invoice reversed)")
    CANCELLED = "cancelled", _("Cancelled")


PAYOUT_TRANSITIONS: dict[str, frozenset[str]] = {
    PayoutStatus.PENDING: frozenset(
        {PayoutStatus.APPROVED, PayoutStatus.CANCELLED, PayoutStatus.BLOCKED}
    ),
    PayoutStatus.APPROVED: frozenset({PayoutStatus.SENDING, PayoutStatus.BLOCKED}),
    # SENDING is written (and committed) before the request leaves; whatever happens next,
    # the same request number is the only one ever used for this payout.
    PayoutStatus.SENDING: frozenset(
        {PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN}
    ),
    PayoutStatus.PROCESSING: frozenset(
        {PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.UNKNOWN}
    ),
    PayoutStatus.UNKNOWN: frozenset(
        {PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.PROCESSING, PayoutStatus.SENDING}
    ),
    PayoutStatus.PAID: frozenset(),
    PayoutStatus.FAILED: frozenset(),
    PayoutStatus.BLOCKED: frozenset(),
    PayoutStatus.CANCELLED: frozenset(),
}

# A payout in one of these may still turn into money leaving: it blocks a new payout.
PAYOUT_LIVE_STATUSES = frozenset(
    {
        PayoutStatus.PENDING,
        PayoutStatus.APPROVED,
        PayoutStatus.SENDING,
        PayoutStatus.PROCESSING,
        PayoutStatus.UNKNOWN,
        PayoutStatus.PAID,
    }
)
PAYOUT_IN_FLIGHT = frozenset({PayoutStatus.SENDING, PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN})


class MismatchKind(models.TextChoices):
    MISSING_AT_PROVIDER = "missing_at_provider", _("Paid here, missing in the statement")
    EXTRA_AT_PROVIDER = "extra_at_provider", _("In the statement, unknown or unpaid here")
    AMOUNT = "amount", _("Amount differs")
    STATUS = "status", _("Status differs")
    BAD_LINE = "bad_line", _("Unreadable statement line")
