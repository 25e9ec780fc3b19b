"""Awards, coupons, payout accounts, payouts and the prize-fund ledger.

Money leaves the platform only through this app. The invariants that keep it exact are in the
database: balances that cannot go negative, one live payout per award, a request number that is
never reused for another payout, a checker who is never the maker, append-only ledger entries.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from apps.common.fields import BlindIndexField, EncryptedTextField
from apps.common.masking import mask_account
from apps.common.models import MoneyField, TimeStampedModel

from .choices import (
    AccountKind,
    AwardKind,
    AwardSource,
    AwardStatus,
    BatchStatus,
    CouponStatus,
    EntryKind,
    FundSource,
    MismatchKind,
    PayoutAccountKind,
    PayoutAccountStatus,
    PayoutStatus,
)


class PrizePolicy(models.Model):
    """A campaign's prize rules that staff may change: tax threshold and rate (财税〔2007〕34号
    defaults), how long a winner has to claim, and whether payouts re-verify the invoice."""

    campaign = models.OneToOneField(
        "invoices.Campaign",
        on_delete=models.CASCADE,
        related_name="prize_policy",
        verbose_name=_("campaign"),
    )
    tax_exempt_limit = MoneyField(
        _("tax-exempt prize limit"),
        default=Decimal("800.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("A prize of at most this amount per invoice is not taxed."),
    )
    tax_rate = models.DecimalField(
        _("tax rate"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.2000"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Above the limit the whole prize is taxed at this rate (0.2000 = 20%)."),
    )
    claim_days = models.PositiveSmallIntegerField(
        _("days to claim"),
        default=30,
        validators=[MinValueValidator(1)],
        help_text=_("A payable prize not claimed within this many days expires."),
    )
    coupon_valid_days = models.PositiveSmallIntegerField(
        _("coupon validity (days)"), default=30, validators=[MinValueValidator(1)]
    )
    reverify_before_payout = models.BooleanField(
        _("re-verify the invoice before payout"), default=True
    )

    class Meta:
        verbose_name = _("prize policy")
        verbose_name_plural = _("prize policies")
        constraints = [
            models.CheckConstraint(
                condition=Q(tax_rate__gte=0) & Q(tax_rate__lte=1), name="prizepolicy_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(tax_exempt_limit__gte=0), name="prizepolicy_limit_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return str(self.campaign)


class Fund(TimeStampedModel):
    """A prize fund of a campaign: central, city or one sponsoring merchant's money.

    Instant pools sponsored by a merchant draw on that merchant's fund; everything else on the
    campaign's default fund. Its balances are the ledger accounts below.
    """

    campaign = models.ForeignKey(
        "invoices.Campaign",
        on_delete=models.PROTECT,
        related_name="funds",
        verbose_name=_("campaign"),
    )
    name = models.CharField(_("name"), max_length=200)
    source = models.CharField(_("source"), max_length=16, choices=FundSource.choices)
    sponsor = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="funds",
        verbose_name=_("sponsoring merchant"),
    )
    is_default = models.BooleanField(_("campaign's default fund"), default=False)

    class Meta:
        verbose_name = _("prize fund")
        verbose_name_plural = _("prize funds")
        ordering = ["campaign", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(is_default=True), name="fund_one_default"
            ),
            models.UniqueConstraint(
                fields=["campaign", "sponsor"],
                condition=Q(sponsor__isnull=False),
                name="fund_one_per_sponsor",
            ),
            models.CheckConstraint(
                condition=Q(source__in=FundSource.values), name="fund_source_valid"
            ),
            models.CheckConstraint(
                condition=(Q(source=FundSource.MERCHANT) & Q(sponsor__isnull=False))
                | (~Q(source=FundSource.MERCHANT) & Q(sponsor__isnull=True)),
                name="fund_sponsor_matches_source",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class LedgerAccount(models.Model):
    """One account of a fund's ledger with its running balance.

    Invariant: `balance` equals the sum of the entries into it minus those out of it (checked by
    `ledger_verify`), and is never negative except for FUNDING (CHECK) — so a reservation or
    payment the fund cannot cover fails in the database, whatever the concurrency.
    """

    fund = models.ForeignKey(
        Fund, on_delete=models.PROTECT, related_name="accounts", verbose_name=_("fund")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=AccountKind.choices)
    balance = MoneyField(_("balance"), default=Decimal("0.00"))

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        ordering = ["fund", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["fund", "kind"], name="ledgeraccount_fund_kind"),
            models.CheckConstraint(
                condition=Q(kind__in=AccountKind.values), name="ledgeraccount_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind=AccountKind.FUNDING) | Q(balance__gte=0),
                name="ledgeraccount_balance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.fund} / {self.get_kind_display()}"


class LedgerEntry(models.Model):
    """One movement of `amount` from one account to another of the same fund (double entry in
    one row: what leaves one account enters the other, so the fund always sums to zero).

    Append-only (database trigger): corrections are compensating entries. `key` makes every
    movement idempotent (`reserve:award:42` can happen once).
    """

    fund = models.ForeignKey(
        Fund, on_delete=models.PROTECT, related_name="entries", verbose_name=_("fund")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=EntryKind.choices)
    from_account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="+", verbose_name=_("from")
    )
    to_account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="+", verbose_name=_("to")
    )
    amount = MoneyField(_("amount"))
    key = models.CharField(_("idempotency key"), max_length=80, unique=True)
    award = models.ForeignKey(
        "Award",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        verbose_name=_("award"),
    )
    payout = models.ForeignKey(
        "Payout",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        verbose_name=_("payout"),
    )
    memo = models.CharField(_("memo"), max_length=300, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledgerentry_amount_positive"),
            models.CheckConstraint(
                condition=~Q(from_account=F("to_account")), name="ledgerentry_two_accounts"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=EntryKind.values), name="ledgerentry_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount}"


class Award(TimeStampedModel):
    """A prize won by a consumer on one invoice, in an instant or a periodic draw.

    Its gross `amount` is reserved in the fund's ledger from the moment it exists until it is
    paid, redeemed, expired or cancelled. For cash, `tax_withheld` is fixed at award time by the
    campaign's prize policy and `net_amount = amount - tax_withheld` (CHECK) is what is paid.
    """

    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    campaign = models.ForeignKey(
        "invoices.Campaign",
        on_delete=models.PROTECT,
        related_name="awards",
        verbose_name=_("campaign"),
    )
    fund = models.ForeignKey(
        Fund, on_delete=models.PROTECT, related_name="awards", verbose_name=_("fund")
    )
    consumer = models.ForeignKey(
        "accounts.Consumer",
        on_delete=models.PROTECT,
        related_name="awards",
        verbose_name=_("consumer"),
    )
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        related_name="awards",
        verbose_name=_("invoice"),
    )
    source = models.CharField(_("source"), max_length=16, choices=AwardSource.choices)
    instant_award = models.OneToOneField(
        "draws.InstantAward",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="award",
        verbose_name=_("instant award"),
    )
    draw_winner = models.OneToOneField(
        "draws.DrawWinner",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="award",
        verbose_name=_("draw winner"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=AwardKind.choices)
    name = models.CharField(_("prize"), max_length=100)
    amount = MoneyField(_("amount"))
    tax_withheld = MoneyField(_("tax withheld"), default=Decimal("0.00"))
    net_amount = MoneyField(_("net amount"))
    status = models.CharField(
        _("status"), max_length=16, choices=AwardStatus.choices, db_index=True
    )
    status_reason = models.CharField(_("status reason"), max_length=300, blank=True, default="")
    payable_after = models.DateTimeField(_("payable after"), null=True, blank=True)
    claim_until = models.DateTimeField(_("claim until"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid / redeemed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("award")
        verbose_name_plural = _("awards")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(source=AwardSource.INSTANT)
                    & Q(instant_award__isnull=False)
                    & Q(draw_winner__isnull=True)
                )
                | (
                    Q(source=AwardSource.PERIODIC)
                    & Q(draw_winner__isnull=False)
                    & Q(instant_award__isnull=True)
                ),
                name="award_one_origin",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="award_amount_positive"),
            models.CheckConstraint(
                condition=Q(tax_withheld__gte=0) & Q(tax_withheld__lte=F("amount")),
                name="award_tax_range",
            ),
            models.CheckConstraint(
                condition=Q(net_amount=F("amount") - F("tax_withheld")),
                name="award_net_is_gross_minus_tax",
            ),
            models.CheckConstraint(
                condition=Q(status__in=AwardStatus.values), name="award_status_valid"
            ),
            models.CheckConstraint(condition=Q(kind__in=AwardKind.values), name="award_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind=AwardKind.CASH) | Q(tax_withheld=0),
                name="award_tax_only_on_cash",
            ),
        ]
        indexes = [
            models.Index(fields=["consumer", "-created_at"], name="award_consumer_recent"),
            models.Index(fields=["status", "payable_after"], name="award_status_due"),
            models.Index(fields=["status", "claim_until"], name="award_status_claim_until"),
        ]
        permissions = [
            ("manage_award", _("Can release, cancel and mark awards recovered")),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.amount}"


class AwardStatusChange(models.Model):
    """History of an award's status, with why (shown to the consumer when it affects them)."""

    award = models.ForeignKey(
        Award, on_delete=models.CASCADE, related_name="history", verbose_name=_("award")
    )
    from_status = models.CharField(_("from"), max_length=16, blank=True, default="")
    to_status = models.CharField(_("to"), max_length=16)
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
        verbose_name = _("award status change")
        verbose_name_plural = _("award status changes")
        ordering = ["award", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class Coupon(TimeStampedModel):
    """The code of a coupon or voucher award, redeemable once at a participating merchant.

    The code is random (≥ 80 bits), stored encrypted for its owner to see and as a keyed hash
    for lookup; `(merchant, reference)` makes a merchant's redemption request idempotent.
    """

    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    award = models.OneToOneField(
        Award, on_delete=models.PROTECT, related_name="coupon", verbose_name=_("award")
    )
    code = EncryptedTextField(_("code"))
    code_index = BlindIndexField(source="code", purpose="coupon_code", unique=True)
    code_last4 = models.CharField(_("code ends with"), max_length=4)
    face_value = MoneyField(_("face value"))
    min_spend = MoneyField(_("minimum spend"), null=True, blank=True)
    valid_industries = models.CharField(
        _("valid industries"), max_length=200, blank=True, default=""
    )
    merchant = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="coupons",
        verbose_name=_("only at merchant"),
    )
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=CouponStatus.choices,
        default=CouponStatus.ISSUED,
        db_index=True,
    )
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    redeemed_by = models.ForeignKey(
        "merchants.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="redemptions",
        verbose_name=_("redeemed at merchant"),
    )
    redeemed_key_id = models.CharField(
        _("redeemed with key"), max_length=40, blank=True, default=""
    )
    purchase_amount = MoneyField(_("purchase amount"), null=True, blank=True)
    redemption_ref = models.CharField(
        _("merchant's reference"), max_length=64, null=True, blank=True
    )

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(face_value__gt=0), name="coupon_value_positive"),
            models.CheckConstraint(
                condition=Q(status__in=CouponStatus.values), name="coupon_status_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(status=CouponStatus.REDEEMED)
                    & Q(redeemed_at__isnull=False)
                    & Q(redeemed_by__isnull=False)
                )
                | (~Q(status=CouponStatus.REDEEMED) & Q(redeemed_at__isnull=True)),
                name="coupon_redemption_complete",
            ),
            models.UniqueConstraint(
                fields=["redeemed_by", "redemption_ref"],
                condition=Q(redemption_ref__isnull=False),
                name="coupon_redemption_ref_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["redeemed_by", "-redeemed_at"], name="coupon_redeemed_by"),
            models.Index(fields=["status", "valid_until"], name="coupon_status_valid_until"),
        ]

    def __str__(self) -> str:
        return f"****{self.code_last4} ({self.face_value})"


class PayoutAccount(TimeStampedModel):
    """A bank card or wallet a consumer is paid to, in their own verified name.

    Ownership (name + ID number + account) is checked through the identity adapter before the
    account is usable; the number is encrypted at rest and shown masked everywhere.
    """

    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    consumer = models.ForeignKey(
        "accounts.Consumer",
        on_delete=models.PROTECT,
        related_name="payout_accounts",
        verbose_name=_("consumer"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=PayoutAccountKind.choices)
    account_no = EncryptedTextField(_("account number"))
    account_no_index = BlindIndexField(source="account_no", purpose="account", db_index=True)
    account_last4 = models.CharField(_("account ends with"), max_length=4)
    bank_name = models.CharField(_("bank or wallet"), max_length=100, blank=True, default="")
    status = models.CharField(_("status"), max_length=16, choices=PayoutAccountStatus.choices)
    check_code = models.CharField(
        _("ownership check result"), max_length=40, blank=True, default=""
    )
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payout account")
        verbose_name_plural = _("payout accounts")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "account_no_index"], name="payoutaccount_once_per_consumer"
            ),
            models.CheckConstraint(
                condition=Q(status__in=PayoutAccountStatus.values),
                name="payoutaccount_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=PayoutAccountKind.values), name="payoutaccount_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ****{self.account_last4}"

    @property
    def masked_account_no(self) -> str:
        return mask_account(self.account_no)


class PayoutBatch(TimeStampedModel):
    """Cash payouts a finance maker prepared, approved by a different finance checker.

    Invariant (CHECK and service): `approved_by <> created_by`.
    """

    reference = models.CharField(_("reference"), max_length=32, unique=True)
    campaign = models.ForeignKey(
        "invoices.Campaign",
        on_delete=models.PROTECT,
        related_name="payout_batches",
        verbose_name=_("campaign"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=BatchStatus.choices, default=BatchStatus.SUBMITTED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("prepared by"),
    )
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    rejected_reason = models.CharField(
        _("rejection reason"), max_length=300, blank=True, default=""
    )
    payout_count = models.PositiveIntegerField(_("payouts"), default=0)
    total_amount = MoneyField(_("total paid amount"), default=Decimal("0.00"))
    total_tax = MoneyField(_("total tax withheld"), default=Decimal("0.00"))

    class Meta:
        verbose_name = _("payout batch")
        verbose_name_plural = _("payout batches")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("created_by")),
                name="payoutbatch_checker_not_maker",
            ),
            models.CheckConstraint(
                condition=Q(status__in=BatchStatus.values), name="payoutbatch_status_valid"
            ),
        ]
        permissions = [
            ("prepare_payoutbatch", _("Can prepare and submit payout batches (maker)")),
            ("approve_payoutbatch", _("Can approve or reject payout batches (checker)")),
            ("reconcile_payouts", _("Can import provider statements and resolve mismatches")),
        ]

    def __str__(self) -> str:
        return self.reference


class Payout(TimeStampedModel):
    """One transfer of an award's net amount to a payout account.

    `request_no` is the idempotency number sent to the payment provider: the same on every
    retry of this payout and never used by another one (unique). At most one payout per award
    is live (partial unique index), so an award can never be paid twice.
    """

    request_no = models.CharField(_("request number"), max_length=40, unique=True)
    award = models.ForeignKey(
        Award, on_delete=models.PROTECT, related_name="payouts", verbose_name=_("award")
    )
    account = models.ForeignKey(
        PayoutAccount,
        on_delete=models.PROTECT,
        related_name="payouts",
        verbose_name=_("payout account"),
    )
    batch = models.ForeignKey(
        PayoutBatch,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payouts",
        verbose_name=_("batch"),
    )
    amount = MoneyField(_("amount paid"))
    tax_withheld = MoneyField(_("tax withheld"), default=Decimal("0.00"))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=PayoutStatus.choices,
        default=PayoutStatus.PENDING,
        db_index=True,
    )
    provider_ref = models.CharField(_("provider reference"), max_length=64, blank=True, default="")
    fail_code = models.CharField(_("failure code"), max_length=64, blank=True, default="")
    fail_message = models.CharField(_("failure message"), max_length=300, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("payout")
        verbose_name_plural = _("payouts")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["award"],
                condition=Q(
                    status__in=["pending", "approved", "sending", "processing", "unknown", "paid"]
                ),
                name="payout_one_live_per_award",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(
                condition=Q(status__in=PayoutStatus.values), name="payout_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["batch", "status"], name="payout_batch_status"),
        ]

    def __str__(self) -> str:
        return self.request_no


class PayoutStatusChange(models.Model):
    """History of a payout, including every provider reply that moved it."""

    payout = models.ForeignKey(
        Payout, on_delete=models.CASCADE, related_name="history", verbose_name=_("payout")
    )
    from_status = models.CharField(_("from"), max_length=16, blank=True, default="")
    to_status = models.CharField(_("to"), max_length=16)
    via = models.CharField(_("via"), max_length=24)
    note = models.CharField(_("note"), max_length=300, blank=True, default="")
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
        verbose_name = _("payout status change")
        verbose_name_plural = _("payout status changes")
        ordering = ["payout", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class ProviderStatement(TimeStampedModel):
    """A payment provider's daily statement, imported for reconciliation (kept as received)."""

    day = models.DateField(_("day"))
    file_name = models.CharField(_("file name"), max_length=200, blank=True, default="")
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    line_count = models.PositiveIntegerField(_("lines"), default=0)
    matched_count = models.PositiveIntegerField(_("matched"), default=0)
    mismatch_count = models.PositiveIntegerField(_("mismatches"), default=0)
    resolved_unknown_count = models.PositiveIntegerField(_("unknown payouts settled"), default=0)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("imported by"),
    )

    class Meta:
        verbose_name = _("provider statement")
        verbose_name_plural = _("provider statements")
        ordering = ["-day", "-id"]

    def __str__(self) -> str:
        return f"{self.day} ({self.line_count})"


class ReconciliationIssue(TimeStampedModel):
    """A difference between our payouts and the provider's statement, for finance to settle by
    hand (never fixed automatically)."""

    statement = models.ForeignKey(
        ProviderStatement,
        on_delete=models.CASCADE,
        related_name="issues",
        verbose_name=_("statement"),
    )
    kind = models.CharField(_("kind"), max_length=24, choices=MismatchKind.choices)
    payout = models.ForeignKey(
        Payout,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reconciliation_issues",
        verbose_name=_("payout"),
    )
    request_no = models.CharField(_("request number"), max_length=64, blank=True, default="")
    line_no = models.PositiveIntegerField(_("statement line"), null=True, blank=True)
    ours = models.CharField(_("our record"), max_length=200, blank=True, default="")
    theirs = models.CharField(_("provider's record"), max_length=200, blank=True, default="")
    resolved = models.BooleanField(_("resolved"), default=False)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    resolution_note = models.CharField(_("resolution"), max_length=300, blank=True, default="")

    class Meta:
        verbose_name = _("reconciliation issue")
        verbose_name_plural = _("reconciliation issues")
        ordering = ["resolved", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=MismatchKind.values), name="reconissue_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.request_no}"
