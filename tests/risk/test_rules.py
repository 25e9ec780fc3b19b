"""Each real-time rule with scenarios that must and must not trigger it, and the decision."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.invoices.choices import InvoiceStatus
from apps.prizes.models import PayoutAccount
from apps.risk.choices import ListKind, RiskAction
from apps.risk.models import MerchantBaseline, WatchEntry
from apps.risk.services import device_fingerprint, watch_add, watch_lift
from tests.factories.core import ConsumerFactory, MerchantFactory

from .conftest import fired

pytestmark = pytest.mark.django_db  # SQL facts on PostgreSQL, the ORM path elsewhere


def test_a_plain_submission_is_allowed_without_reasons(consumer, merchant, assess, past):
    past(consumer, merchant, 60 * 24 * 3)
    decision = assess(consumer, merchant)
    assert decision.action == RiskAction.ALLOW and decision.score == 0 and not decision.hits


# --- consumer velocity -------------------------------------------------------------------


def test_consumer_velocity_fires_at_four_earlier_submissions_in_ten_minutes(consumer, assess, past):
    for minutes in (1, 2, 4, 8):
        past(consumer, MerchantFactory(), minutes, status=InvoiceStatus.REJECTED)
    assert fired(assess(consumer, MerchantFactory()))["consumer_velocity"] == 30


def test_consumer_velocity_ignores_fewer_or_older_submissions(consumer, assess, past):
    for minutes in (1, 2, 4, 12):
        past(consumer, MerchantFactory(), minutes)
    assert "consumer_velocity" not in fired(assess(consumer, MerchantFactory()))


# --- split purchase ----------------------------------------------------------------------


def test_split_purchase_holds_a_second_invoice_just_above_the_minimum(
    consumer, merchant, assess, past
):
    past(consumer, merchant, 6, total="101.30")
    decision = assess(consumer, merchant, total="104.80")
    assert fired(decision)["split_purchase"] == 60
    assert decision.action == RiskAction.HOLD and decision.code == "risk.held"


@pytest.mark.parametrize(
    "earlier_total, minutes_ago, same_seller, total",
    [
        ("101.30", 6, False, "104.80"),  # another seller
        ("101.30", 45, True, "104.80"),  # outside the 30-minute window
        ("101.30", 6, True, "180.00"),  # this one is not near the minimum
        ("250.00", 6, True, "104.80"),  # the earlier one was not
    ],
)
def test_split_purchase_does_not_fire_otherwise(
    consumer, merchant, assess, past, earlier_total, minutes_ago, same_seller, total
):
    past(consumer, merchant if same_seller else MerchantFactory(), minutes_ago, total=earlier_total)
    assert "split_purchase" not in fired(assess(consumer, merchant, total=total))


# --- insider timing ----------------------------------------------------------------------


def test_insider_timing_repeated_fast_entries_at_one_seller_hold(consumer, merchant, assess, past):
    past(consumer, merchant, 60 * 20, issued_before=25)
    decision = assess(consumer, merchant, seconds_after_issue=15)
    assert fired(decision)["insider_timing"] == 60 and decision.action == RiskAction.HOLD


def test_one_fast_entry_adds_only_a_few_points(consumer, merchant, assess, past):
    past(consumer, merchant, 60 * 20, issued_before=3600)  # earlier one was not fast
    decision = assess(consumer, merchant, seconds_after_issue=15)
    assert fired(decision) == {"insider_timing": 5} and decision.action == RiskAction.ALLOW


def test_slow_entries_never_count_as_insider(consumer, merchant, assess, past):
    past(consumer, merchant, 60 * 20, issued_before=25)
    assert "insider_timing" not in fired(assess(consumer, merchant, seconds_after_issue=600))


def test_seller_staff_on_the_list_is_held(consumer, merchant, assess):
    watch_add(
        kind=ListKind.SELLER_STAFF,
        value=str(consumer.public_id),
        merchant_uscc=merchant.uscc,
        actor=None,
        reason="cashier",
    )
    decision = assess(consumer, merchant)
    assert fired(decision) == {"seller_staff": 100} and decision.action == RiskAction.HOLD
    assert not assess(consumer, MerchantFactory()).hits  # at another seller: a customer


# --- round-amount bursts -------------------------------------------------------------------


def test_round_burst_fires_on_the_third_round_amount_in_a_day(consumer, assess, past):
    past(consumer, MerchantFactory(), 120, total="200.00")
    past(consumer, MerchantFactory(), 300, total="500.00")
    assert fired(assess(consumer, MerchantFactory(), total="300.00"))["round_burst"] == 30


@pytest.mark.parametrize("total, earlier_hours", [("301.50", 2), ("300.00", 30)])
def test_round_burst_needs_round_amounts_within_the_window(
    consumer, assess, past, total, earlier_hours
):
    past(consumer, MerchantFactory(), 60 * earlier_hours, total="200.00")
    past(consumer, MerchantFactory(), 60 * earlier_hours + 5, total="500.00")
    assert "round_burst" not in fired(assess(consumer, MerchantFactory(), total=total))


# --- devices -----------------------------------------------------------------------------


def test_a_device_shared_by_three_consumers_holds(consumer, merchant, assess, past):
    device = device_fingerprint("phone-1")
    past(ConsumerFactory(), merchant, 600, device_hash=device)
    past(ConsumerFactory(), merchant, 900, device_hash=device)
    decision = assess(consumer, merchant, device_hash=device)
    assert fired(decision)["shared_device"] == 60 and decision.action == RiskAction.HOLD


def test_a_family_phone_is_not_shared_device_fraud(consumer, merchant, assess, past):
    device = device_fingerprint("phone-1")
    past(ConsumerFactory(), merchant, 600, device_hash=device)
    past(consumer, merchant, 60 * 24 * 40, device_hash=device)  # own, long ago
    assert "shared_device" not in fired(assess(consumer, merchant, device_hash=device))


def test_device_velocity(consumer, assess, past):
    device = device_fingerprint("phone-2")
    for minutes in range(1, 9):  # eight earlier in the hour: this is the ninth
        past(consumer, MerchantFactory(), minutes * 5, device_hash=device)
    assert fired(assess(consumer, MerchantFactory(), device_hash=device))["device_velocity"] == 40
    assert "device_velocity" not in fired(
        assess(consumer, MerchantFactory(), device_hash=device_fingerprint("phone-3"))
    )


# --- payout accounts ---------------------------------------------------------------------


def _account(consumer, number):
    return PayoutAccount.objects.create(
        consumer=consumer,
        kind="bank_card",
        account_no=number,
        account_last4=number[-4:],
        status="verified",
    )


def test_a_payout_account_shared_with_another_consumer_holds(consumer, merchant, assess):
    _account(ConsumerFactory(), "6222020000000001234")
    _account(consumer, "6222020000000001234")
    decision = assess(consumer, merchant)
    assert fired(decision)["shared_account"] == 60 and decision.action == RiskAction.HOLD


def test_an_own_payout_account_is_fine(consumer, merchant, assess):
    _account(consumer, "6222020000000001234")
    _account(ConsumerFactory(), "6222020000000009999")
    assert "shared_account" not in fired(assess(consumer, merchant))


# --- seller surge ------------------------------------------------------------------------


def test_a_repeat_buyer_carrying_a_sellers_surge_is_held(consumer, merchant, assess, past):
    MerchantBaseline.objects.create(
        merchant=merchant, daily_mean=Decimal("2.00"), computed_at=timezone.now()
    )
    for i in range(20):
        past(ConsumerFactory(), merchant, 10 + i)
    past(consumer, merchant, 300)
    past(consumer, merchant, 1500)
    outcome = assess(consumer, merchant)
    assert fired(outcome)["seller_surge"] == 60
    assert outcome.action == "hold"


def test_a_new_customer_of_a_surging_seller_is_not_held(consumer, merchant, assess, past):
    """A promotion brings many different customers: only the few who keep coming back (the
    hands that enter fake sales) are held."""
    MerchantBaseline.objects.create(
        merchant=merchant, daily_mean=Decimal("2.00"), computed_at=timezone.now()
    )
    for i in range(50):
        past(ConsumerFactory(), merchant, 10 + i)
    past(consumer, merchant, 300)  # one earlier visit is an ordinary customer
    assert "seller_surge" not in fired(assess(consumer, merchant))


def test_a_busy_seller_at_its_usual_volume_is_not_a_surge(consumer, merchant, assess, past):
    MerchantBaseline.objects.create(
        merchant=merchant, daily_mean=Decimal("20.00"), computed_at=timezone.now()
    )
    for i in range(50):
        past(ConsumerFactory(), merchant, 10 + i)
    past(consumer, merchant, 300)
    past(consumer, merchant, 1500)
    assert "seller_surge" not in fired(assess(consumer, merchant))


# --- blacklists ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["merchant", "consumer", "device", "account"])
def test_anything_blacklisted_blocks(consumer, merchant, assess, kind):
    device = device_fingerprint("phone-9")
    account = _account(consumer, "6222020000000005678")
    value = {
        "merchant": merchant.uscc,
        "consumer": str(consumer.public_id),
        "device": device,
        "account": account.account_no_index,
    }[kind]
    entry = watch_add(kind=kind, value=value, actor=None, reason="fraud ring")
    decision = assess(consumer, merchant, device_hash=device)
    assert decision.action == RiskAction.BLOCK and decision.code == "risk.blocked"
    assert fired(decision) == {"blacklist": 1000}
    watch_lift(entry=entry, actor=None, reason="cleared")
    assert assess(consumer, merchant, device_hash=device).action == RiskAction.ALLOW


def test_blacklisting_an_unrelated_value_changes_nothing(consumer, merchant, assess):
    watch_add(kind="merchant", value=MerchantFactory().uscc, actor=None, reason="other")
    assert WatchEntry.objects.filter(active=True).count() == 1
    assert assess(consumer, merchant).action == RiskAction.ALLOW
