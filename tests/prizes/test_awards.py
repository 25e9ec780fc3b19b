"""Awards and coupons (issue 7): every win becomes a reserved award; individual income tax is
withheld above 800 per invoice (财税〔2007〕34号) as the campaign's policy says; held prizes are
re-verified before they become payable; unclaimed ones expire and their money returns; payout
accounts must be the winner's own; coupons are redeemed once, under their conditions; a
red-letter reversal cancels unpaid prizes and flags paid ones for recovery."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.exceptions import InvalidTransition
from apps.draws.choices import InstantPrizeKind
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import CampaignArea, CampaignIndustry
from apps.prizes import services
from apps.prizes.caching import prize_config_cache_clear
from apps.prizes.choices import (
    AwardKind,
    AwardSource,
    AwardStatus,
    CouponStatus,
    PayoutAccountStatus,
    PayoutStatus,
)
from apps.prizes.exceptions import PrizeError
from apps.prizes.ledger import fund_balances
from apps.prizes.models import Award, LedgerEntry, PayoutAccount, PrizePolicy
from apps.prizes.tasks import awards_expire_due, awards_release_due
from tests.factories.core import ConsumerFactory, MerchantFactory
from tests.prizes.helpers import (
    REFUSED,
    assert_books_balance,
    default_fund,
    entered_invoice,
    fresh,
    instant_win,
    pay,
    payee,
    payout_account,
    prize_campaign,
    red_flush,
    sponsor_fund,
    tax_authority_down,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

D = Decimal


@pytest.fixture
def campaign():
    return prize_campaign()


@pytest.fixture
def winner():
    return ConsumerFactory(real_name="张三")


# --- Awards and tax -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "tax"),
    [
        ("20.00", "0.00"),
        ("800.00", "0.00"),  # up to 800 per invoice: exempt
        ("800.01", "160.00"),  # above: 20 % of the whole prize
        ("1000.00", "200.00"),
        ("800.03", "160.01"),  # 160.006, rounded half up to the cent
        ("5000.00", "1000.00"),
    ],
)
def test_cash_prizes_withhold_tax_above_800(campaign, winner, amount, tax):
    award = instant_win(campaign, winner, D(amount))
    assert award.kind == AwardKind.CASH and award.source == AwardSource.INSTANT
    assert (award.amount, award.tax_withheld, award.net_amount) == (
        D(amount),
        D(tax),
        D(amount) - D(tax),
    )
    assert award.status == AwardStatus.PAYABLE
    # The gross amount is reserved in the campaign's fund from now on.
    entry = LedgerEntry.objects.get(key=f"reserve:award:{award.pk}")
    assert entry.amount == D(amount) and entry.award == award
    assert fund_balances(default_fund(campaign))["reserved"] == D(amount)
    assert award.history.get().to_status == AwardStatus.PAYABLE
    assert_books_balance()


def test_coupons_are_never_taxed(campaign, winner):
    award = instant_win(campaign, winner, D("1000.00"), kind=InstantPrizeKind.VOUCHER)
    assert (award.kind, award.tax_withheld, award.net_amount) == ("voucher", D("0"), D("1000"))
    assert award.claim_until is None  # coupons live by their own validity
    coupon = award.coupon
    code = str(coupon.code)
    assert len(code) == 19 and code.count("-") == 3 and coupon.code_last4 == code[-4:]
    assert coupon.face_value == D("1000.00") and coupon.status == CouponStatus.ISSUED


def test_tax_follows_the_policy_in_force_when_the_prize_is_won(campaign, winner):
    before = instant_win(campaign, winner, D("600.00"))
    assert before.tax_withheld == D("0.00")
    PrizePolicy.objects.filter(campaign=campaign).update(
        tax_exempt_limit=D("500.00"), tax_rate=D("0.1000"), claim_days=5
    )
    prize_config_cache_clear()  # as every writer that bypasses save() must
    after = instant_win(campaign, winner, D("600.00"))
    assert (after.tax_withheld, after.net_amount) == (D("60.00"), D("540.00"))
    assert after.claim_until - after.created_at < timedelta(days=5, seconds=5)
    assert fresh(before).tax_withheld == D("0.00")  # fixed when it was won
    # Exactly at the new limit: exempt.
    assert instant_win(campaign, winner, D("500.00")).tax_withheld == D("0.00")
    # And a campaign without a policy row gets the documented defaults.
    other = prize_campaign()
    assert instant_win(other, winner, D("1000.00")).tax_withheld == D("200.00")
    assert PrizePolicy.objects.get(campaign=other).tax_exempt_limit == D("800.00")


def test_periodic_draw_prizes_become_taxed_reserved_awards(campaign):
    from apps.draws import services as draws
    from apps.draws.services import TierSpec
    from tests.draws.conftest import add_entries, make_staff, published_draw

    CampaignIndustry.objects.create(campaign=campaign, code="52")
    CampaignArea.objects.create(campaign=campaign, code="4101", label="郑州市")
    now = timezone.now()
    window = (now - timedelta(days=10), now + timedelta(days=1), now + timedelta(days=1, hours=1))
    add_entries(campaign, 12, start=window[0])
    manager = make_staff("prize_draw_manager", "draws.manage_draw")
    a = make_staff("prize_officer_a", "draws.execute_draw")
    b = make_staff("prize_officer_b", "draws.execute_draw")
    tiers = [
        TierSpec(1, "一等奖", D("1000.00"), 1),
        TierSpec(2, "二等奖", D("800.01"), 1),
        TierSpec(3, "三等奖", D("800.00"), 1),
    ]
    draw = published_draw(campaign, manager, window, a, b, tiers=tiers)
    with time_machine.travel(draw.notice_ends_at + timedelta(seconds=1)):
        draws.draw_finalise(draw=draw, actor=manager)
    taxes = dict(Award.objects.filter(draw_winner__draw=draw).values_list("amount", "tax_withheld"))
    assert taxes == {D("1000.00"): D("200.00"), D("800.01"): D("160.00"), D("800.00"): D("0")}
    assert fund_balances(default_fund(campaign))["reserved"] == D("2600.01")
    assert_books_balance()


def test_a_win_the_fund_cannot_cover_is_not_awarded(winner):
    campaign = prize_campaign(D("500.00"))
    assert instant_win(campaign, winner, D("500.01")) is None
    assert not Award.objects.exists()
    assert instant_win(campaign, winner, D("500.00")) is not None
    assert fund_balances(default_fund(campaign))["available"] == D("0.00")
    assert_books_balance()


# --- Held prizes --------------------------------------------------------------------------------


def test_a_delayed_prize_is_held_until_the_invoice_is_re_verified(prize_world):
    world = prize_world
    held = instant_win(world.campaign, world.consumer, D("300.00"), delayed=True)
    assert held.status == AwardStatus.HELD and held.payable_after > timezone.now()
    card = payout_account(world.identity, world.consumer)
    with pytest.raises(PrizeError) as early:
        services.award_claim(consumer=world.consumer, award=held, account=card)
    assert early.value.code == "award.not_payable"
    assert awards_release_due.apply().get() == {"payable": 0, "cancelled": 0, "deferred": 0}
    later = held.payable_after + timedelta(seconds=1)
    with tax_authority_down():
        assert services.awards_release_due(now=later)["deferred"] == 1
    assert fresh(held).status == AwardStatus.HELD
    assert services.awards_release_due(now=later) == {"payable": 1, "cancelled": 0, "deferred": 0}
    assert fresh(held).status == AwardStatus.PAYABLE
    assert held.claim_until == held.payable_after + timedelta(days=30)
    assert_books_balance()


def test_a_held_prize_of_a_red_flushed_invoice_is_cancelled_at_release(prize_world):
    world = prize_world
    held = instant_win(world.campaign, world.consumer, D("300.00"), delayed=True)
    from apps.invoices.models import TaxInvoiceRecord

    TaxInvoiceRecord.objects.filter(number=held.invoice.number).update(
        status="red_flushed", red_total=held.invoice.total
    )
    counts = services.awards_release_due(now=held.payable_after + timedelta(seconds=1))
    assert counts == {"payable": 0, "cancelled": 1, "deferred": 0}
    assert fresh(held).status == AwardStatus.CANCELLED
    assert fresh(held.invoice).status == InvoiceStatus.REVERSED
    assert fund_balances(default_fund(world.campaign))["reserved"] == D("0.00")
    assert LedgerEntry.objects.filter(key=f"release:award:{held.pk}").count() == 1
    assert_books_balance()


# --- Expiry -------------------------------------------------------------------------------------


def test_unclaimed_prizes_expire_on_schedule_and_their_money_returns(prize_world):
    world = prize_world
    award = instant_win(world.campaign, world.consumer, D("1000.00"))
    claimed = instant_win(world.campaign, world.consumer, D("20.00"))
    card = payout_account(world.identity, world.consumer)
    services.award_claim(consumer=world.consumer, award=claimed, account=card)
    fund = default_fund(world.campaign)
    with time_machine.travel(award.claim_until - timedelta(seconds=5)):
        assert awards_expire_due.apply().get() == {"awards": 0, "coupons": 0}
    with time_machine.travel(award.claim_until + timedelta(seconds=1)):
        # Past the deadline the winner can no longer claim, even before the task runs.
        with pytest.raises(PrizeError) as late:
            services.award_claim(consumer=world.consumer, award=award, account=card)
        assert late.value.code == "award.claim_expired"
        assert awards_expire_due.apply().get() == {"awards": 1, "coupons": 0}
        assert awards_expire_due.apply().get() == {"awards": 0, "coupons": 0}
    assert fresh(award).status == AwardStatus.EXPIRED
    assert fresh(claimed).status == AwardStatus.CLAIMED  # being paid: never expires
    assert fund_balances(fund)["reserved"] == D("20.00")
    assert fund_balances(fund)["available"] == D("100000.00") - D("20.00")
    assert AuditEvent.objects.filter(action="awards.expired").count() == 1
    with pytest.raises(PrizeError):
        services.award_claim(consumer=world.consumer, award=award, account=card)
    assert_books_balance()


def test_unused_coupons_expire_and_their_money_returns(campaign, winner):
    award = instant_win(campaign, winner, D("50.00"), kind=InstantPrizeKind.COUPON, valid_days=3)
    coupon = award.coupon
    assert coupon.valid_until - coupon.valid_from == timedelta(days=3)
    with time_machine.travel(coupon.valid_until + timedelta(seconds=1)):
        with pytest.raises(PrizeError) as expired:
            services.coupon_redeem(
                code=str(coupon.code),
                merchant=MerchantFactory(),
                purchase_amount=D("100.00"),
                reference="T-1",
            )
        assert expired.value.code == "coupon.expired"
        assert services.awards_expire_due() == {"awards": 0, "coupons": 1}
    assert fresh(coupon).status == CouponStatus.EXPIRED
    assert fresh(award).status == AwardStatus.EXPIRED
    assert fund_balances(default_fund(campaign))["reserved"] == D("0.00")
    assert_books_balance()


# --- Claims and payout accounts -----------------------------------------------------------------


def test_only_the_winner_claims_and_only_to_their_own_verified_account(prize_world):
    world = prize_world
    award = instant_win(world.campaign, world.consumer, D("300.00"))
    other = payee(world.identity, real_name="李四")
    theirs = payout_account(world.identity, other)
    mine = payout_account(world.identity, world.consumer)
    with pytest.raises(PrizeError) as not_theirs:
        services.award_claim(consumer=other, award=award, account=theirs)
    assert not_theirs.value.code == "award.not_found" and not_theirs.value.status_code == 404
    with pytest.raises(PrizeError) as foreign:
        services.award_claim(consumer=world.consumer, award=award, account=theirs)
    assert foreign.value.code == "account.not_usable"
    PayoutAccount.objects.filter(pk=mine.pk).update(status=PayoutAccountStatus.DISABLED)
    with pytest.raises(PrizeError):
        services.award_claim(consumer=world.consumer, award=award, account=fresh(mine))
    PayoutAccount.objects.filter(pk=mine.pk).update(status=PayoutAccountStatus.VERIFIED)
    payout = services.award_claim(consumer=world.consumer, award=award, account=fresh(mine))
    again = services.award_claim(consumer=world.consumer, award=award, account=fresh(mine))
    assert again.pk == payout.pk and award.payouts.count() == 1
    coupon = instant_win(world.campaign, world.consumer, D("30.00"), kind=InstantPrizeKind.COUPON)
    with pytest.raises(PrizeError) as not_cash:
        services.award_claim(consumer=world.consumer, award=coupon, account=fresh(mine))
    assert not_cash.value.code == "award.not_cash"
    assert AuditEvent.objects.filter(action="award.claimed").count() == 1


def test_payout_accounts_are_checked_with_the_identity_service(prize_world):
    world = prize_world
    consumer = world.consumer
    stranger = payee(world.identity, real_name="李四")
    card = payout_account(world.identity, consumer)
    assert card.status == PayoutAccountStatus.VERIFIED and card.check_code == "match"
    calls = world.identity.call_count
    # The same card again (spaces, dashes): the existing row, without asking again.
    spaced = " ".join(str(card.account_no)[i : i + 4] for i in range(0, 16, 4))
    assert (
        services.payout_account_register(consumer=consumer, kind="bank_card", account_no=spaced)
        == card
    )
    assert world.identity.call_count == calls
    # Someone else's card.
    theirs = f"6222{stranger.pk:08d}7777"
    world.identity.add_account("bank_card", theirs, stranger.id_number)
    with pytest.raises(PrizeError) as mismatch:
        services.payout_account_register(consumer=consumer, kind="bank_card", account_no=theirs)
    assert mismatch.value.code == "account.ownership_failed"
    rejected = PayoutAccount.objects.get(consumer=consumer, account_last4="7777")
    assert rejected.status == PayoutAccountStatus.REJECTED and rejected.check_code == "mismatch"
    # No answer is no verdict: nothing is stored.
    world.identity.faults.next(status=503)
    with pytest.raises(PrizeError) as down:
        services.payout_account_register(
            consumer=consumer, kind="bank_card", account_no="6222020000008888"
        )
    assert down.value.code == "account.check_unavailable" and down.value.status_code == 503
    assert not PayoutAccount.objects.filter(account_last4="8888").exists()
    with pytest.raises(PrizeError) as malformed:
        services.payout_account_register(consumer=consumer, kind="bank_card", account_no="12ab")
    assert malformed.value.code == "account.invalid_number"
    unverified = ConsumerFactory(verification_status="unverified", verified_at=None)
    with pytest.raises(PrizeError) as not_verified:
        services.payout_account_register(
            consumer=unverified, kind="bank_card", account_no="6222020000009999"
        )
    assert not_verified.value.code == "account.not_verified_consumer"
    # Encrypted at rest, masked when shown.
    number = str(card.account_no)
    with connection.cursor() as cursor:
        cursor.execute("SELECT account_no FROM prizes_payoutaccount WHERE id = %s", [card.pk])
        stored = cursor.fetchone()[0]
    assert number not in stored and number[-4:] == card.account_last4
    assert number not in card.masked_account_no and card.masked_account_no.endswith(number[-4:])


# --- Coupons ------------------------------------------------------------------------------------


def coupon_of(campaign, winner, **tier):
    award = instant_win(
        campaign, winner, tier.pop("value", D("50.00")), kind=InstantPrizeKind.COUPON, **tier
    )
    return award, str(award.coupon.code)


def test_a_coupon_is_redeemed_once_and_a_retry_replays(campaign, winner):
    award, code = coupon_of(campaign, winner, min_spend=D("100.00"), valid_industries="52")
    shop, other_shop = MerchantFactory(), MerchantFactory()
    assert services.coupon_check(code=code, merchant=shop).pk == award.coupon.pk
    with pytest.raises(PrizeError) as too_little:
        services.coupon_redeem(code=code, merchant=shop, purchase_amount=D("99.99"), reference="R1")
    assert too_little.value.code == "coupon.min_spend"
    done = services.coupon_redeem(
        code=code, merchant=shop, purchase_amount=D("100.00"), reference="R1"
    )
    assert not done.replayed and done.coupon.status == CouponStatus.REDEEMED
    assert fresh(award).status == AwardStatus.PAID
    # The till's retry of the same request gets the same answer, not an error.
    replay = services.coupon_redeem(
        code=code, merchant=shop, purchase_amount=D("100.00"), reference="R1"
    )
    assert replay.replayed and replay.coupon.pk == done.coupon.pk
    for merchant, reference in ((shop, "R2"), (other_shop, "R1")):
        with pytest.raises(PrizeError) as twice:
            services.coupon_redeem(
                code=code, merchant=merchant, purchase_amount=D("100.00"), reference=reference
            )
        assert twice.value.code == "coupon.already_redeemed"
    # The merchant's reference belongs to the first coupon.
    _, second = coupon_of(campaign, winner)
    with pytest.raises(PrizeError) as reused:
        services.coupon_redeem(
            code=second, merchant=shop, purchase_amount=D("100.00"), reference="R1"
        )
    assert reused.value.code == "coupon.reference_reused"
    with pytest.raises(PrizeError) as unknown:
        services.coupon_redeem(
            code="2345-6789-ABCD-EFGH", merchant=shop, purchase_amount=D("1.00"), reference="R9"
        )
    assert unknown.value.code == "coupon.not_found"
    assert LedgerEntry.objects.filter(key=f"redeem:award:{award.pk}").count() == 1
    assert fund_balances(default_fund(campaign))["paid"] == D("50.00")
    assert AuditEvent.objects.filter(action="coupon.redeemed").count() == 1
    assert_books_balance()


def test_coupon_conditions_merchant_and_industry(campaign, winner):
    sponsor = MerchantFactory()
    sponsor_fund(campaign, sponsor)
    award, code = coupon_of(campaign, winner, sponsor=sponsor)
    assert award.fund.sponsor == sponsor and award.coupon.merchant == sponsor
    with pytest.raises(PrizeError) as elsewhere:
        services.coupon_redeem(
            code=code, merchant=MerchantFactory(), purchase_amount=D("10.00"), reference="X"
        )
    assert elsewhere.value.code == "coupon.wrong_merchant"
    assert (
        services.coupon_redeem(
            code=code, merchant=sponsor, purchase_amount=D("10.00"), reference="X"
        ).coupon.redeemed_by
        == sponsor
    )
    _, food = coupon_of(campaign, winner, valid_industries="53,54")
    with pytest.raises(PrizeError) as industry:
        services.coupon_check(code=food, merchant=MerchantFactory(industry_code="5211"))
    assert industry.value.code == "coupon.wrong_industry"
    services.coupon_check(code=food, merchant=MerchantFactory(industry_code="5411"))
    assert_books_balance()


# --- Red-letter reversals -----------------------------------------------------------------------


def test_a_reversal_cancels_unpaid_prizes_and_flags_paid_ones(prize_world):
    world = prize_world
    invoice = entered_invoice(world.campaign, world.consumer)
    payable = instant_win(world.campaign, world.consumer, D("1000.00"), invoice=invoice)
    # Other prizes of the winner, each on its own invoice: claimed, paid, a coupon.
    card = payout_account(world.identity, world.consumer)
    paid = instant_win(world.campaign, world.consumer, D("800.01"))
    paid_payout = pay(paid, card, world.team)
    assert paid_payout.status == PayoutStatus.PAID
    claimed = instant_win(world.campaign, world.consumer, D("300.00"))
    claimed_invoice = claimed.invoice
    pending = services.award_claim(consumer=world.consumer, award=claimed, account=card)
    coupon, code = coupon_of(world.campaign, world.consumer)
    fund = default_fund(world.campaign)
    before = fund_balances(fund)

    red_flush(invoice)
    assert fresh(payable).status == AwardStatus.CANCELLED
    assert payable.history.last().reason == "invoice.red_flushed"
    red_flush(claimed_invoice)
    assert fresh(claimed).status == AwardStatus.CANCELLED
    assert fresh(pending).status == PayoutStatus.CANCELLED
    red_flush(coupon.invoice)
    assert fresh(coupon.coupon).status == CouponStatus.CANCELLED
    with pytest.raises(PrizeError) as cancelled:
        services.coupon_redeem(
            code=code, merchant=MerchantFactory(), purchase_amount=D("1.00"), reference="C"
        )
    assert cancelled.value.code == "coupon.cancelled"
    red_flush(paid.invoice)
    assert fresh(paid).status == AwardStatus.TO_RECOVER
    event = AuditEvent.objects.get(action="invoice.reversed", target_id=str(paid.invoice_id))
    assert event.after["prizes_to_recover"] == 1

    after = fund_balances(fund)
    released = D("1000.00") + D("300.00") + D("50.00")
    assert after["reserved"] == before["reserved"] - released
    assert after["available"] == before["available"] + released
    assert after["paid"] == before["paid"] == D("640.01")  # recovery is finance's job
    assert_books_balance()
    # Recovery needs the permission and happens once.
    with pytest.raises(PrizeError) as denied:
        services.award_mark_recovered(award=paid, note="退回", actor=world.team.checker)
    assert denied.value.code == "batch.not_permitted"
    services.award_mark_recovered(award=paid, note="中奖人已退回", actor=world.team.officer)
    with pytest.raises(InvalidTransition):
        services.award_mark_recovered(award=paid, note="again", actor=world.team.officer)
    with pytest.raises(InvalidTransition):
        services.award_mark_recovered(award=payable, note="x", actor=world.team.officer)
    assert fund_balances(fund)["paid"] == D("0.00")
    assert fund_balances(fund)["tax_withheld"] == D("160.00")
    assert_books_balance()


def test_a_reversal_of_a_redeemed_coupon_flags_it_for_recovery(campaign, winner):
    award, code = coupon_of(campaign, winner)
    services.coupon_redeem(
        code=code, merchant=MerchantFactory(), purchase_amount=D("80.00"), reference="Z"
    )
    red_flush(award.invoice)
    assert fresh(award).status == AwardStatus.TO_RECOVER
    assert fund_balances(default_fund(campaign))["paid"] == D("50.00")
    assert_books_balance()


def test_a_payable_prize_of_a_refused_payout_stays_reserved(prize_world):
    world = prize_world
    award = instant_win(world.campaign, world.consumer, D("300.00"))
    payout = pay(award, payout_account(world.identity, world.consumer, REFUSED), world.team)
    assert payout.status == PayoutStatus.FAILED
    assert fresh(award).status == AwardStatus.PAYABLE
    assert fund_balances(default_fund(world.campaign))["reserved"] == D("300.00")
    red_flush(award.invoice)
    assert fresh(award).status == AwardStatus.CANCELLED
    assert fund_balances(default_fund(world.campaign))["reserved"] == D("0.00")
    assert_books_balance()


def test_the_registry_confirms_entered_invoices(campaign, winner):
    """The set-up every payout test relies on: re-verification finds the invoice normal."""
    from apps.invoices.verification import get_tax_verifier

    invoice = entered_invoice(campaign, winner)
    check = get_tax_verifier(cached=False).verify(
        number=invoice.number, issue_date=invoice.issue_date, total=invoice.total
    )
    assert check.outcome == "found" and check.record.status == "normal"
