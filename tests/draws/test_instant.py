"""The instant draw (即时开奖): one CSPRNG draw per entry, stock and daily quotas that never go
over under any concurrency (TEST_CHECKLIST 24), per-consumer caps, delayed cash payouts, the
local (Asia/Shanghai) day boundary, and the prize in the submission response."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import close_old_connections, connection
from django.utils import timezone

from apps.draws import services
from apps.draws.choices import InstantPrizeKind, OddsMode
from apps.draws.models import (
    InstantAward,
    InstantDailyQuota,
    InstantDrawResult,
    InstantPool,
    InstantTier,
)
from apps.invoices.choices import InvoiceStatus
from apps.prizes.choices import FundSource
from apps.prizes.ledger import fund_deposit
from apps.prizes.models import Fund
from tests.draws.conftest import make_staff
from tests.factories.core import ConsumerFactory, InvoiceFactory, MerchantFactory

# The intake's fixtures, for the one test that submits through the API.
from tests.invoices.conftest import api, consumer, make_record, submit  # noqa: F401

SHANGHAI = ZoneInfo("Asia/Shanghai")


def make_pool(campaign, *, mode=OddsMode.FIXED, **fields):
    now = timezone.now()
    values = {
        "campaign": campaign,
        "name": "郑州即时奖池",
        "odds_mode": mode,
        "active_from": now - timedelta(days=30),
        "active_until": now + timedelta(days=30),
        "max_wins_per_consumer": None,
        **fields,
    }
    return InstantPool.objects.create(**values)


def make_tier(pool, *, quantity=10, quota=None, day=None, probability="1", **fields):
    values = {
        "name": "20元现金",
        "kind": InstantPrizeKind.CASH,
        "face_value": Decimal("20.00"),
        "total_quantity": quantity,
        "remaining": quantity,
        "probability": Decimal(probability),
        **fields,
    }
    tier = InstantTier.objects.create(pool=pool, **values)
    InstantDailyQuota.objects.create(
        tier=tier, day=day or timezone.localdate(), quota=quantity if quota is None else quota
    )
    return tier


def entry(campaign, who=None, merchant=None):
    return InvoiceFactory(
        campaign=campaign,
        consumer=who or ConsumerFactory(),
        merchant=merchant,
        status=InvoiceStatus.ACCEPTED,
        entered_at=timezone.now(),
    )


# --- one entry, one draw --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sure_win_is_awarded_recorded_and_counted(campaign):
    pool = make_pool(campaign, delay_cash_above=Decimal("50.00"))
    tier = make_tier(pool, quantity=3)
    invoice = entry(campaign)
    prize = services.instant_draw_for_entry(invoice=invoice)
    assert prize == {"tier": "20元现金", "kind": "cash", "amount": "20.00", "payable_after": None}
    award = InstantAward.objects.get(invoice=invoice)
    assert (award.tier, award.amount, award.consumer_id) == (
        tier,
        Decimal("20.00"),
        invoice.consumer_id,
    )
    assert InstantDrawResult.objects.get(invoice=invoice).won
    tier.refresh_from_db()
    assert tier.remaining == 2
    assert InstantDailyQuota.objects.get(tier=tier).awarded == 1


@pytest.mark.django_db
def test_an_entry_draws_exactly_once(campaign):
    pool = make_pool(campaign)
    tier = make_tier(pool, quantity=5)
    invoice = entry(campaign)
    first = services.instant_draw_for_entry(invoice=invoice)
    again = services.instant_draw_for_entry(invoice=invoice)
    assert first == again and first is not None
    assert InstantAward.objects.count() == 1 and InstantDrawResult.objects.count() == 1
    tier.refresh_from_db()
    assert tier.remaining == 4
    # A losing entry stays lost.
    tier.probability = Decimal("0")
    tier.save()
    loser = entry(campaign)
    assert services.instant_draw_for_entry(invoice=loser) is None
    tier.probability = Decimal("1")
    tier.save()
    assert services.instant_draw_for_entry(invoice=loser) is None
    assert not InstantDrawResult.objects.get(invoice=loser).won


@pytest.mark.django_db
def test_no_active_pool_draws_nothing(campaign):
    invoice = entry(campaign)
    assert services.instant_draw_for_entry(invoice=invoice) is None
    make_tier(make_pool(campaign, enabled=False))
    now = timezone.now()
    make_tier(
        make_pool(
            campaign, active_from=now + timedelta(hours=1), active_until=now + timedelta(days=1)
        )
    )
    make_tier(make_pool(campaign, active_from=now - timedelta(days=2), active_until=now))
    assert services.instant_draw_for_entry(invoice=invoice) is None
    assert not InstantDrawResult.objects.exists()
    pending = InvoiceFactory(campaign=campaign, status=InvoiceStatus.PENDING)
    assert services.instant_draw_for_entry(invoice=pending) is None


@pytest.mark.django_db
def test_the_random_point_picks_tiers_by_their_odds(campaign, monkeypatch):
    pool = make_pool(campaign)
    big = make_tier(pool, name="100元", face_value=Decimal("100.00"), probability="0.010000")
    small = make_tier(pool, name="5元", face_value=Decimal("5.00"), probability="0.200000")
    points = iter([0, 9_999_999, 10_000_000, 209_999_999, 210_000_000, 999_999_999])
    monkeypatch.setattr(services.secrets, "randbelow", lambda n: next(points))
    outcomes = [
        (services.instant_draw_for_entry(invoice=entry(campaign)) or {}).get("tier")
        for _ in range(6)
    ]
    assert outcomes == [big.name, big.name, small.name, small.name, None, None]


@pytest.mark.django_db
def test_odds_over_many_entries_are_roughly_right(campaign):
    pool = make_pool(campaign)
    make_tier(pool, quantity=1000, probability="0.250000")
    wins = sum(
        services.instant_draw_for_entry(invoice=entry(campaign)) is not None for _ in range(400)
    )
    # Binomial(400, 0.25): mean 100, sd ≈ 8.7; these bounds are beyond 6 sd.
    assert 48 <= wins <= 152


@pytest.mark.django_db
def test_dynamic_odds_spread_the_days_quota(campaign):
    day_start = datetime(2026, 3, 2, 0, 0, tzinfo=SHANGHAI)
    with time_machine.travel(day_start + timedelta(hours=12), tick=False):
        pool = make_pool(campaign, mode=OddsMode.DYNAMIC, expected_daily_entries=20)
        # Half the day left: about 10 entries expected, 10 prizes left → certain.
        make_tier(pool, quantity=100, quota=10, probability="0")
        assert services.instant_draw_for_entry(invoice=entry(campaign)) is not None
        candidates = services._instant_candidates(
            [pool], entry(campaign), timezone.localdate(), timezone.now()
        )
        assert [c.weight for c in candidates] == [services.PPB * 9 // 10]


@pytest.mark.django_db
def test_cash_above_the_threshold_is_payable_only_later(campaign):
    pool = make_pool(campaign, delay_cash_above=Decimal("50.00"), delay_days=7)
    make_tier(pool, name="100元现金", face_value=Decimal("100.00"))
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        pool.active_from = timezone.now() - timedelta(days=1)
        pool.save()
        InstantDailyQuota.objects.update(day=timezone.localdate())
        prize = services.instant_draw_for_entry(invoice=entry(campaign))
    assert prize["payable_after"] == datetime(2026, 3, 9, 10, 0, tzinfo=SHANGHAI).isoformat()
    award = InstantAward.objects.get()
    assert award.payable_after == award.drawn_at + timedelta(days=7)


@pytest.mark.django_db
def test_coupons_and_small_cash_are_payable_at_once(campaign):
    pool = make_pool(campaign, delay_cash_above=Decimal("50.00"))
    make_tier(pool, name="满100减50券", kind=InstantPrizeKind.COUPON, face_value=Decimal("50.00"))
    assert services.instant_draw_for_entry(invoice=entry(campaign))["payable_after"] is None
    InstantTier.objects.update(kind=InstantPrizeKind.CASH)
    services.instant_config_cache_clear()  # an update() sends no signal
    assert services.instant_draw_for_entry(invoice=entry(campaign))["payable_after"] is None


@pytest.mark.django_db
def test_per_consumer_cap(campaign):
    pool = make_pool(campaign, max_wins_per_consumer=2)
    make_tier(pool, quantity=10)
    lucky = ConsumerFactory()
    prizes = [services.instant_draw_for_entry(invoice=entry(campaign, lucky)) for _ in range(4)]
    assert [p is not None for p in prizes] == [True, True, False, False]
    assert services.instant_draw_for_entry(invoice=entry(campaign)) is not None
    # Another pool of the campaign has its own cap.
    sponsor = MerchantFactory()
    second = make_pool(campaign, name="商家联动奖池", sponsor=sponsor, max_wins_per_consumer=1)
    make_tier(second, name="商家券", kind=InstantPrizeKind.VOUCHER, quantity=5)
    # A sponsored pool pays from its sponsor's fund: none yet, so no prize (never an overspend).
    assert services.instant_draw_for_entry(invoice=entry(campaign, lucky)) is None
    fund = Fund.objects.create(
        campaign=campaign, name="商家出资", source=FundSource.MERCHANT, sponsor=sponsor
    )
    fund_deposit(fund=fund, amount=Decimal("100.00"), key="deposit:sponsor", memo="", actor=None)
    assert services.instant_draw_for_entry(invoice=entry(campaign, lucky))["tier"] == "商家券"


@pytest.mark.django_db
def test_stock_quota_and_prize_cap_limit_awards(campaign):
    pool = make_pool(campaign)
    tier = make_tier(pool, quantity=2, quota=5)
    assert [bool(services.instant_draw_for_entry(invoice=entry(campaign))) for _ in range(3)] == [
        True,
        True,
        False,
    ]
    tier.refresh_from_db()
    assert tier.remaining == 0
    # Both or neither: the refused draw's quota count was undone with its savepoint.
    assert InstantDailyQuota.objects.get(tier=tier).awarded == 2
    quota_tier = make_tier(pool, name="10元", face_value=Decimal("10.00"), quantity=50, quota=1)
    results = [services.instant_draw_for_entry(invoice=entry(campaign)) for _ in range(3)]
    assert [bool(r) for r in results] == [True, False, False]
    assert InstantDailyQuota.objects.get(tier=quota_tier).awarded == 1
    quota_tier.refresh_from_db()
    assert quota_tier.remaining == 49  # the stock the refused draws took was given back
    # No quota row for today: no prize of that tier today.
    unpaced = make_tier(pool, name="5元", face_value=Decimal("5.00"), quantity=50)
    InstantDailyQuota.objects.filter(tier=unpaced).delete()
    assert services.instant_draw_for_entry(invoice=entry(campaign)) is None
    # A prize above the campaign's per-invoice maximum is never drawn.
    campaign.max_prize_per_invoice = Decimal("800.00")
    campaign.save()
    make_tier(pool, name="1000元", face_value=Decimal("1000.00"), quantity=5)
    assert services.instant_draw_for_entry(invoice=entry(campaign)) is None


@pytest.mark.django_db
def test_counters_cannot_go_out_of_range_in_the_database(campaign):
    from django.db import IntegrityError, transaction

    tier = make_tier(make_pool(campaign), quantity=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        InstantTier.objects.filter(pk=tier.pk).update(remaining=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        InstantDailyQuota.objects.filter(tier=tier).update(awarded=2)


@pytest.mark.django_db
def test_daily_quotas_hold_across_the_shanghai_day_boundary(campaign):
    d1, d2 = datetime(2026, 3, 1).date(), datetime(2026, 3, 2).date()
    with time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=SHANGHAI), tick=False):
        pool = make_pool(campaign)
        tier = make_tier(pool, quantity=100, quota=2, day=d1)
    InstantDailyQuota.objects.create(tier=tier, day=d2, quota=2)

    def draw_at(moment, n):
        with time_machine.travel(moment, tick=False):
            return [services.instant_draw_for_entry(invoice=entry(campaign)) for _ in range(n)]

    # 23:59:59 in Shanghai is 15:59:59 UTC: still 1 March.
    late = draw_at(datetime(2026, 3, 1, 23, 59, 59, tzinfo=SHANGHAI), 3)
    assert [bool(p) for p in late] == [True, True, False]
    # 00:00:00 on 2 March in Shanghai is still 1 March in UTC: the new day's quota applies.
    early = draw_at(datetime(2026, 3, 2, 0, 0, 0, tzinfo=SHANGHAI), 3)
    assert [bool(p) for p in early] == [True, True, False]
    assert dict(InstantDailyQuota.objects.values_list("day", "awarded")) == {d1: 2, d2: 2}
    assert sorted(InstantAward.objects.values_list("day", flat=True)) == [d1, d1, d2, d2]


@pytest.mark.django_db
def test_plan_quotas_spreads_the_stock_over_the_days(campaign):
    with time_machine.travel(datetime(2026, 3, 1, 9, 0, tzinfo=SHANGHAI), tick=False):
        pool = make_pool(
            campaign,
            active_from=datetime(2026, 3, 1, 0, 0, tzinfo=SHANGHAI),
            active_until=datetime(2026, 3, 5, 0, 0, tzinfo=SHANGHAI),
        )
        tier = make_tier(pool, quantity=10, quota=0)
        staff = make_staff("pool_admin", "draws.change_instantpool")
        assert services.instant_plan_quotas(pool=pool, actor=staff) == 4
    quotas = list(InstantDailyQuota.objects.filter(tier=tier).values_list("quota", flat=True))
    assert quotas == [3, 3, 2, 2] and sum(quotas) == tier.total_quantity


# --- through the submission pipeline -----------------------------------------------------


@pytest.mark.django_db
def test_the_prize_is_in_the_submission_response(campaign, request):
    record_for = request.getfixturevalue("make_record")
    client = request.getfixturevalue("api")
    pool = make_pool(campaign)
    make_tier(pool, quantity=1)
    _record, body = record_for()
    response = submit(client, body)
    assert response.status_code == 201, response.json()
    assert response.json()["instant_prize"] == {
        "tier": "20元现金",
        "kind": "cash",
        "amount": "20.00",
        "payable_after": None,
    }
    _record, body = record_for()
    assert submit(client, body).json()["instant_prize"] is None  # stock exhausted


# --- concurrency on PostgreSQL (TEST_CHECKLIST 24) ------------------------------------------


def run_parallel(jobs, threads=40):
    """Run `jobs` on `threads` threads that all start at once; each job in its own
    transaction on its own connection."""
    barrier = threading.Barrier(threads)
    results: list = [None] * len(jobs)

    def worker(offset):
        try:
            barrier.wait()
            for index in range(offset, len(jobs), threads):
                try:
                    results[index] = jobs[index]()
                except BaseException as exc:  # reported by the assertions
                    results[index] = exc
        finally:
            close_old_connections()
            connection.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=180)
    return results


def _draw_in_transaction(invoice):
    from django.db import transaction

    with transaction.atomic():
        return services.instant_draw_for_entry(invoice=invoice)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_200_parallel_entries_against_a_tier_of_10_win_exactly_10(campaign):
    pool = make_pool(campaign)
    tier = make_tier(pool, quantity=10, quota=1000)
    invoices = [entry(campaign) for _ in range(200)]
    results = run_parallel([lambda i=i: _draw_in_transaction(i) for i in invoices])
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert sum(r is not None for r in results) == 10
    assert InstantAward.objects.count() == 10
    assert InstantDrawResult.objects.count() == 200
    assert InstantDrawResult.objects.filter(won=True).count() == 10
    tier.refresh_from_db()
    assert tier.remaining == 0
    assert InstantDailyQuota.objects.get(tier=tier).awarded == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_entries_never_exceed_the_daily_quota_or_the_consumer_cap(campaign):
    pool = make_pool(campaign, max_wins_per_consumer=3)
    tier = make_tier(pool, quantity=500, quota=25)
    same = ConsumerFactory()
    invoices = [entry(campaign, same) for _ in range(40)] + [entry(campaign) for _ in range(160)]
    results = run_parallel([lambda i=i: _draw_in_transaction(i) for i in invoices])
    assert not [r for r in results if isinstance(r, BaseException)]
    assert InstantAward.objects.count() == 25
    assert InstantDailyQuota.objects.get(tier=tier).awarded == 25
    tier.refresh_from_db()
    assert tier.remaining == 475
    assert InstantAward.objects.filter(consumer=same).count() <= 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_entry_drawn_in_parallel_draws_once(campaign):
    make_tier(make_pool(campaign), quantity=50)
    invoice = entry(campaign)
    results = run_parallel([lambda: _draw_in_transaction(invoice)] * 20, threads=20)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert InstantAward.objects.count() == 1 and InstantDrawResult.objects.count() == 1
    assert len({str(r) for r in results}) == 1
