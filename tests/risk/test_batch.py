"""The nightly model on a small city: quiet peers, and planted anomalies that must (and
ordinary behaviour that must not) become alerts with explanations."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.invoices.models import Invoice
from apps.risk.batch import batch_run
from apps.risk.choices import AlertStatus
from apps.risk.models import MerchantBaseline, RiskAlert
from apps.risk.services import risk_alert_close
from tests.factories.core import CampaignFactory, ConsumerFactory, MerchantFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

_PHONES = random.Random(17)
_USED: set[str] = set()


def person(phone: str | None = None):
    """A consumer with a phone drawn at random (the factory's phones are consecutive numbers,
    i.e. one crowded phone block), or the given one."""
    while phone is None or phone in _USED:
        phone = f"1{_PHONES.choice('3456789')}{_PHONES.randrange(10**9):09d}"
    _USED.add(phone)
    return ConsumerFactory(real_name="", phone=phone)


class City:
    """Thirty ordinary shops and ninety ordinary shoppers over thirty days."""

    def __init__(self, phones=None):
        self.rng = random.Random(5)
        self.now = timezone.now()
        self.campaign = CampaignFactory(cap_per_day=3)
        self.shops = [MerchantFactory(industry_code="5211") for _ in range(30)]
        self.people = [person(phone) for phone in phones or [None] * 90]
        self.rows: list[Invoice] = []
        self.seq = 0
        for someone in self.people:
            for _ in range(self.rng.randint(3, 6)):
                self.add(someone, self.rng.choice(self.shops), self.rng.uniform(0.5, 29.5))

    def add(self, consumer, merchant, days_ago, *, total=None, fast=False, status="accepted"):
        at = self.now - timedelta(days=days_ago)
        total = total or Decimal(f"{self.rng.uniform(120, 600):.2f}")
        delay = timedelta(seconds=20) if fast else timedelta(hours=self.rng.uniform(1, 30))
        self.seq += 1
        self.rows.append(
            Invoice(
                uid=uuid.uuid4(),
                number=f"2641{9:01d}{self.seq:015d}",
                issue_date=(at - delay).date(),
                issued_at=at - delay,
                seller_uscc=merchant.uscc,
                total=Decimal(total),
                consumer=consumer,
                merchant=merchant,
                campaign=self.campaign,
                status=status,
                submitted_at=at,
                entered_at=at,
            )
        )

    def save(self):
        Invoice.objects.bulk_create(self.rows)
        self.rows = []

    def run(self):
        self.save()
        return batch_run(campaign=self.campaign, as_of=self.now + timedelta(minutes=1))

    def alert_for(self, *, merchant=None, consumer=None):
        alerts = RiskAlert.objects.filter(campaign=self.campaign, status=AlertStatus.OPEN)
        if merchant is not None:
            return alerts.filter(merchant=merchant).first()
        return alerts.filter(consumer=consumer, subject_kind="consumer").first()


def features(alert) -> set[str]:
    return {item["feature"] for item in alert.features}


@pytest.fixture
def city(db):
    return City()


def test_an_ordinary_city_raises_no_alert(city):
    run = city.run()
    assert [a.features for a in RiskAlert.objects.all()] == []
    assert run.alerts == 0 and run.invoices == Invoice.objects.count()
    assert run.merchants > 0 and run.consumers > 0
    assert MerchantBaseline.objects.count() == run.merchants


def test_a_shell_seller_is_explained_by_volume_few_buyers_and_round_amounts(city):
    shell = MerchantFactory(industry_code="5211")
    ring = [person() for _ in range(4)]
    for i in range(60):
        city.add(ring[i % 4], shell, (i % 5) + 0.2, total=Decimal("200.00"))
    city.run()
    alert = city.alert_for(merchant=shell)
    assert alert is not None
    assert {"surge", "few_buyers", "round_share"} <= features(alert)
    item = next(f for f in alert.features if f["feature"] == "round_share")
    # 60 of 60 round: the share is taken at its Wilson lower bound (about 0.94).
    assert item["value"] > 0.9 and item["peer_median"] < 0.2 and item["z"] >= 3.5
    assert all(city.alert_for(merchant=shop) is None for shop in city.shops)


def test_a_seller_whose_invoices_are_reversed_after_entry(city):
    shop = MerchantFactory(industry_code="5211")
    for i in range(20):
        city.add(city.people[i], shop, i + 1, status="reversed" if i % 3 == 0 else "accepted")
    city.run()
    assert "red_excess" in features(city.alert_for(merchant=shop))


def test_a_seller_whose_invoices_are_all_entered_at_the_till_just_above_the_minimum(city):
    shop = MerchantFactory(industry_code="5211")
    for i in range(20):
        city.add(city.people[i], shop, i + 1, total=Decimal("103.50"), fast=True)
    city.run()
    assert {"fast_share", "near_min_share"} <= features(city.alert_for(merchant=shop))


def test_a_busy_but_ordinary_seller_is_not_an_anomaly(city):
    shop = MerchantFactory(industry_code="5211")
    for i in range(40):
        city.add(city.people[i], shop, (i % 28) + 1)
    city.run()
    assert city.alert_for(merchant=shop) is None


def test_a_consumer_near_the_cap_every_day(city):
    bulk = person()
    for day in range(7):
        for k in range(3):
            city.add(bulk, city.shops[(day * 3 + k) % 30], day + 1 + k * 0.01)
    city.run()
    assert {"volume", "near_cap_share"} <= features(city.alert_for(consumer=bulk))


def test_a_surge_carried_by_a_few_repeat_buyers(city):
    shop = MerchantFactory(industry_code="5211")
    for i in range(25):  # an ordinary month: about one customer a day
        city.add(city.people[i], shop, 8 + i * 0.85)
    ring = [person() for _ in range(5)]
    for i in range(45):  # then, in five days, 45 sales entered by the same five hands
        city.add(ring[i % 5], shop, (i % 5) + 0.3 + i * 0.001)
    city.run()
    alert = city.alert_for(merchant=shop)
    assert alert is not None
    assert {"surge", "repeat_share"} <= features(alert)


def test_a_surge_of_many_different_customers_is_not_an_alert(city):
    """A new shop or a promotion that brings many different customers sells far more than
    before, but volume alone is context, not evidence; and one regular is not a ring."""
    shop = MerchantFactory(industry_code="5211")
    for i in range(10):
        city.add(city.people[i], shop, 10 + i * 2)
    for i in range(60):
        city.add(city.people[(10 + i) % 90], shop, (i % 5) + 0.3 + i * 0.001)
    for k in range(4):
        city.add(city.people[0], shop, k + 0.5)
    city.run()
    assert city.alert_for(merchant=shop) is None


def _china_noon_days_ago(city, day: int) -> float:
    from zoneinfo import ZoneInfo

    local = city.now.astimezone(ZoneInfo("Asia/Shanghai"))
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=day + 1)
    return (city.now - noon).total_seconds() / 86400


def test_a_run_of_days_at_the_cap(city):
    bulk = person()
    for day in range(8):
        for k in range(3 if day % 3 else 2):
            city.add(bulk, city.shops[(day * 3 + k) % 30], _china_noon_days_ago(city, day) - k / 48)
    city.run()
    alert = city.alert_for(consumer=bulk)
    assert {"volume", "near_cap_streak", "near_cap_share"} <= features(alert)
    streak = next(f for f in alert.features if f["feature"] == "near_cap_streak")
    assert streak["value"] == 8


def test_a_heavy_shopper_who_spreads_purchases_over_the_month_is_not_bulk(city):
    heavy = person()
    for day in range(20):
        city.add(heavy, city.shops[day % 30], _china_noon_days_ago(city, day))
    for day in (21, 23, 25):  # a few busy days are ordinary
        for k in range(2):
            city.add(heavy, city.shops[k], _china_noon_days_ago(city, day) - k / 48)
    city.run()
    assert city.alert_for(consumer=heavy) is None


def _draw_everything(city, lucky: dict) -> None:
    """Every entry drew once in the instant draw: a win in fifty, except that the consumers in
    `lucky` win their first `lucky[consumer]` draws."""
    from apps.draws.models import InstantDrawResult

    city.save()
    left = dict(lucky)
    results = []
    for invoice in Invoice.objects.filter(campaign=city.campaign).order_by("submitted_at"):
        if invoice.consumer_id in left:
            won = left[invoice.consumer_id] > 0
            left[invoice.consumer_id] -= 1
        else:
            won = city.rng.random() < 0.02
        results.append(InstantDrawResult(invoice=invoice, drawn_at=invoice.submitted_at, won=won))
    InstantDrawResult.objects.bulk_create(results)


def test_a_consumer_who_wins_far_more_often_than_chance(city):
    lucky = person()
    for day in range(8):
        city.add(lucky, city.shops[day], day + 1.5)
    _draw_everything(city, {lucky.pk: 6})
    city.run()
    alert = city.alert_for(consumer=lucky)
    assert alert is not None
    item = next(f for f in alert.features if f["feature"] == "win_excess")
    # 6 wins where about 0.16 were expected (floor 0.25): (6 − ½ − 0.16) / √0.25 ≈ 10.7.
    assert item["value"] > 9 and item["z"] >= 6


def test_one_lucky_win_is_not_above_chance(city):
    lucky = city.people[0]
    _draw_everything(city, {lucky.pk: 1})
    city.run()
    alert = city.alert_for(consumer=lucky)
    assert alert is None or "win_excess" not in features(alert)
    assert not [a for a in RiskAlert.objects.all() if "win_excess" in features(a)]


def test_a_cashier_entering_their_own_shops_invoices_within_seconds(city):
    cashier = person()
    for day in range(10):
        city.add(cashier, city.shops[0], day + 1, fast=True)
    city.run()
    assert {"fast_share", "top_seller_share"} <= features(city.alert_for(consumer=cashier))


def test_consumers_linked_by_one_device_form_a_cluster(city):
    farm = [person() for _ in range(5)]
    for member in farm:
        city.add(member, city.shops[1], 2)
    city.save()
    Invoice.objects.filter(consumer__in=farm).update(device_hash="d" * 64)
    family = city.people[:2]
    Invoice.objects.filter(consumer__in=family).update(device_hash="f" * 64)
    city.run()
    (cluster,) = RiskAlert.objects.filter(subject_kind="cluster")
    assert sorted(cluster.members) == sorted(p.pk for p in farm)


def test_a_new_run_refreshes_the_open_alert_and_a_closed_one_is_raised_again(city):
    shop = MerchantFactory(industry_code="5211")
    for i in range(20):
        city.add(city.people[i], shop, i + 1, status="reversed" if i % 2 else "accepted")
    first = city.run()
    second = city.run()
    alert = RiskAlert.objects.get(merchant=shop)
    assert alert.run == second and first != second
    risk_alert_close(alert=alert, confirmed=True, actor=None, note="confirmed with the tax bureau")
    city.run()
    assert RiskAlert.objects.filter(merchant=shop).count() == 2
    assert RiskAlert.objects.filter(merchant=shop, status="open").count() == 1


# --- reversals after entry (red_excess) ------------------------------------------------------


def test_a_small_seller_with_half_its_entries_reversed(city):
    """Eight entries are below the peer features' minimum, but four reversals in eight are far
    beyond what ordinary sellers' reversal rates give at that size."""
    shop = MerchantFactory(industry_code="5211")
    for i in range(8):
        city.add(city.people[i], shop, i + 1, status="reversed" if i % 2 else "accepted")
    city.run()
    alert = city.alert_for(merchant=shop)
    assert alert is not None
    item = next(f for f in alert.features if f["feature"] == "red_excess")
    assert item["reversed"] == 4 and item["entries"] == 8 and item["z"] >= 3.5


def test_ordinary_reversals_are_not_an_anomaly(city):
    """A busy shop with a few returns (3 of 60) and a small one with a single return."""
    busy, small = MerchantFactory(industry_code="5211"), MerchantFactory(industry_code="5211")
    for i in range(60):
        city.add(
            city.people[i], busy, (i % 28) + 1, status="reversed" if i % 20 == 0 else "accepted"
        )
    for i in range(6):
        city.add(city.people[60 + i], small, i + 1, status="reversed" if i == 0 else "accepted")
    city.run()
    assert city.alert_for(merchant=busy) is None and city.alert_for(merchant=small) is None
    assert not [a for a in RiskAlert.objects.all() if "red_excess" in features(a)]


# --- periodic draws: wins vs chance (draw_win_excess) ----------------------------------------


def _periodic_draw(city, lucky: dict, *, status="drawn", chance=0.02, days=30):
    """One periodic draw over the month: a ticket for every entry; the consumers in `lucky`
    win with their first `lucky[consumer]` tickets, everybody else at `chance`."""
    from apps.draws.models import DrawTicket, DrawTier, DrawWinner, PeriodicDraw

    city.save()
    draw = PeriodicDraw.objects.create(
        code=f"RISK-{uuid.uuid4().hex[:8]}",
        name="test",
        campaign=city.campaign,
        window_starts_at=city.now - timedelta(days=days),
        window_ends_at=city.now - timedelta(hours=1),
        cutoff_at=city.now - timedelta(minutes=30),
        status="committed",  # tickets and tiers can be written until the freeze
        seed_commitment="c" * 64,
        randomness_source="福彩3D",
    )
    tier = DrawTier.objects.create(draw=draw, rank=1, name="一等奖", amount=Decimal("50"), count=1)
    entries = Invoice.objects.filter(campaign=city.campaign).order_by("submitted_at", "pk")
    tickets = DrawTicket.objects.bulk_create(
        DrawTicket(
            draw=draw,
            ticket_no=n,
            invoice=invoice,
            entry_ref=f"e{n}",
            holder_ref=f"h{invoice.consumer_id}",
            eligible_at=invoice.submitted_at,
        )
        for n, invoice in enumerate(entries, start=1)
    )
    left, winners = dict(lucky), []
    for ticket in tickets:
        consumer = ticket.invoice.consumer_id
        if consumer in left:
            won = left[consumer] > 0
            left[consumer] -= 1
        else:
            won = city.rng.random() < chance
        if won:
            slot = len(winners) + 1
            winners.append(
                DrawWinner(
                    draw=draw,
                    tier=tier,
                    rank=1,
                    slot=slot,
                    ticket=ticket,
                    ticket_no=ticket.ticket_no,
                    counter=slot,
                )
            )
    PeriodicDraw.objects.filter(pk=draw.pk).update(
        status=status,
        ticket_count=len(tickets),
        tickets_digest="d" * 64,
        public_randomness="4 7 1",
        started_by=UserFactory(),
        confirmed_by=UserFactory(),
    )
    DrawWinner.objects.bulk_create(winners)
    return draw


def test_a_consumer_who_wins_the_periodic_draw_far_more_often_than_chance(city):
    lucky = person()
    for day in range(8):
        city.add(lucky, city.shops[day], day + 1.5)
    _periodic_draw(city, {lucky.pk: 6})
    city.run()
    alert = city.alert_for(consumer=lucky)
    assert alert is not None
    item = next(f for f in alert.features if f["feature"] == "draw_win_excess")
    # 6 wins where 8 tickets × ~2 % ≈ 0.16 were expected (floor 0.25): (6 − ½ − 0.16) / ½.
    assert item["value"] > 10 and item["z"] >= 6


def test_one_periodic_win_and_undrawn_draws_are_not_above_chance(city):
    _periodic_draw(city, {city.people[0].pk: 1})
    lucky = person()
    for day in range(8):
        city.add(lucky, city.shops[day], day + 1.5)
    # Winners of a draw that was cancelled before confirmation do not count.
    _periodic_draw(city, {lucky.pk: 6}, status="cancelled", days=29)
    city.run()
    assert not [a for a in RiskAlert.objects.all() if "draw_win_excess" in features(a)]


# --- phone-pattern links ----------------------------------------------------------------------


def test_consumers_crowding_one_phone_block_form_a_cluster(city):
    """Five SIMs of one 100-number block, no shared device or account: in a city where
    numbers are scattered, that is far more than chance puts in one block."""
    farm = [person(f"1391234560{k}") for k in range(5)]
    for k, member in enumerate(farm):
        city.add(member, city.shops[k], 2 + k)
    city.run()
    (cluster,) = RiskAlert.objects.filter(subject_kind="cluster")
    assert sorted(cluster.members) == sorted(p.pk for p in farm)
    assert {"linked_consumers", "shared_phone_block"} <= features(cluster)


def test_a_family_with_adjacent_numbers_is_not_a_phone_link(city):
    family = [person(f"1375550000{k}") for k in range(3)]  # a family plan: 3 in one block
    for k, member in enumerate(family):
        city.add(member, city.shops[k], 2 + k)
    city.run()
    assert not RiskAlert.objects.filter(subject_kind="cluster").exists()


def test_where_blocks_are_crowded_anyway_five_in_one_is_ordinary(db):
    """A city whose participants' numbers crowd into few blocks (about three in each): five in
    one block is what chance gives there, not a farm."""
    city = City(phones=[f"13866{b:04d}{k:02d}" for b in range(30) for k in range(3)])
    farm = [person(f"1391234560{k}") for k in range(5)]
    for k, member in enumerate(farm):
        city.add(member, city.shops[k], 2 + k)
    city.run()
    assert not RiskAlert.objects.filter(subject_kind="cluster").exists()


def test_the_reversal_test_reports_more_at_a_higher_false_discovery_rate(city):
    """Two reversals in five entries is weak evidence: not reported at the default 1 %, but an
    analyst who accepts 20 % false reports gets it."""
    from apps.risk.services import risk_settings_update

    shop = MerchantFactory(industry_code="5211")
    for i in range(5):
        city.add(city.people[i], shop, i + 1, status="reversed" if i < 2 else "accepted")
    city.run()
    assert city.alert_for(merchant=shop) is None
    risk_settings_update(reversal_fdr="0.2", actor=None, reason="broad sweep")
    city.run()
    assert "red_excess" in features(city.alert_for(merchant=shop))


# --- consumers: entries reversed after entry (claim, then return) ----------------------------


def _ordinary_returns(city) -> None:
    """A background of ordinary returns: a tenth of the shoppers took one thing back."""
    for someone in city.people[::10]:
        city.add(someone, city.rng.choice(city.shops), city.rng.uniform(1, 20), status="reversed")


def test_a_consumer_who_returns_most_of_what_they_entered(city):
    """Five of eight entries red-flushed after entry, at ordinary shops: claim and return."""
    _ordinary_returns(city)
    claimer = person()
    for i in range(8):
        city.add(claimer, city.shops[i], i + 1, status="reversed" if i < 5 else "accepted")
    city.run()
    alert = city.alert_for(consumer=claimer)
    assert alert is not None
    item = next(f for f in alert.features if f["feature"] == "red_excess")
    assert item["reversed"] == 5 and item["entries"] == 8 and item["z"] >= 3.5
    assert 0 < item["peer_median"] < 0.1
    # The shops it returned to are ordinary: one reversal each is no seller anomaly.
    assert not [
        a for a in RiskAlert.objects.filter(subject_kind="merchant") if "red_excess" in features(a)
    ]


def test_one_return_among_ten_entries_is_ordinary(city):
    _ordinary_returns(city)
    shopper, twice = person(), person()
    for i in range(10):
        city.add(shopper, city.shops[i], i + 1, status="reversed" if i == 0 else "accepted")
    for i in range(12):  # two returns among twelve: still within ordinary spreads
        city.add(twice, city.shops[i], i + 1, status="reversed" if i < 2 else "accepted")
    city.run()
    assert city.alert_for(consumer=shopper) is None and city.alert_for(consumer=twice) is None
    assert not [a for a in RiskAlert.objects.all() if "red_excess" in features(a)]


def test_a_claimer_with_few_entries_is_tested_against_its_size_and_the_false_discovery_rate(city):
    """Three of six reversed is evidence, but weak among many tested consumers at 1 %."""
    from apps.risk.services import risk_settings_update

    _ordinary_returns(city)
    claimer = person()
    for i in range(6):
        city.add(claimer, city.shops[i], i + 1, status="reversed" if i < 3 else "accepted")
    city.run()
    assert city.alert_for(consumer=claimer) is None
    risk_settings_update(reversal_fdr="0.2", actor=None, reason="broad sweep")
    city.run()
    assert "red_excess" in features(city.alert_for(consumer=claimer))


# --- consumers: large entries reversed after entry (red_large) -------------------------------


def _run_alerts(city):
    """The alerts the run itself raised (earlier open alerts stay open until worked)."""
    return list(city.run().alert_set.all())


def test_a_consumer_who_returns_dear_goods_among_a_long_ordinary_history(city):
    """Five dear purchases entered and returned, hidden among fourteen ordinary kept ones: 5 of
    19 is within what ordinary heavy returners do, 5 large reversals in 19 entries is not."""
    from apps.risk.services import risk_settings_update

    _ordinary_returns(city)
    claimer = person()
    for i in range(14):
        city.add(claimer, city.shops[i], i + 1)
    for i in range(5):
        city.add(claimer, city.shops[20 + i], i + 1.5, total="2400.00", status="reversed")
    alert = next(a for a in _run_alerts(city) if a.consumer_id == claimer.pk)
    large = next(f for f in alert.features if f["feature"] == "red_large")
    assert large["reversed"] == 5 and large["entries"] == 19 and large["z"] >= 3.5
    assert 0 < large["peer_median"] < 0.01
    # The count of all reversals alone does not report it ...
    assert all(f["feature"] != "red_excess" or f["z"] < 6 for f in alert.features)
    # ... and with the large-value test switched off nothing else does.
    risk_settings_update(reversal_large_share="0", actor=None, reason="large test off")
    assert not [a for a in _run_alerts(city) if a.consumer_id == claimer.pk]


def test_a_shopper_of_dear_goods_who_returns_two_is_ordinary(city):
    _ordinary_returns(city)
    shopper = person()
    for i in range(12):
        city.add(
            shopper,
            city.shops[i],
            i + 1,
            total="1800.00",
            status="reversed" if i < 2 else "accepted",
        )
    alerts = _run_alerts(city)
    assert not [a for a in alerts if a.consumer_id == shopper.pk]
    assert not [a for a in alerts if {"red_large", "red_excess"} & features(a)]


# --- consumers linked by returns at the same sellers (linked_returns) ------------------------


def _ring(city, size=3, *, shops=None, reversed_each=3, kept_each=4):
    """`size` people who each buy at the same shops and return one purchase at each."""
    ring = [person() for _ in range(size)]
    shops = shops or city.shops[20 : 20 + reversed_each]
    for someone in ring:
        for k, shop in enumerate(shops):
            city.add(someone, shop, k + 1.5, status="reversed")
        for k in range(kept_each):
            city.add(someone, city.shops[k], k + 2)
    return ring


def test_people_who_return_at_the_same_shops_are_a_linked_group(city):
    """Each of three people has 3 of 7 entries reversed: weak alone among ordinary returners,
    but they returned at the same three shops, and 9 of 21 pooled is not chance."""
    from apps.risk.services import risk_settings_update

    _ordinary_returns(city)
    ring = _ring(city)
    alerts = _run_alerts(city)
    groups = [a for a in alerts if "linked_returns" in features(a)]
    assert len(groups) == 1 and sorted(groups[0].members) == sorted(p.pk for p in ring)
    item = groups[0].features[0]
    assert item["feature"] == "linked_returns" and item["z"] >= 3.5
    assert item["reversed"] == 9 and item["entries"] == 21 and item["sellers"] == 3
    assert groups[0].subject_kind == "cluster"
    # None of them, and none of the shops, is an alert alone.
    assert not [a for a in alerts if a.consumer_id in {p.pk for p in ring} and a not in groups]
    assert not [a for a in alerts if a.subject_kind == "merchant"]
    risk_settings_update(reversal_link_min=0, actor=None, reason="link off")
    assert not [a for a in _run_alerts(city) if "linked_returns" in features(a)]


def test_one_return_each_at_a_shared_shop_links_nobody(city):
    _ordinary_returns(city)
    pair = [person(), person()]
    for someone in pair:
        city.add(someone, city.shops[3], 2, status="reversed")
        for k in range(5):
            city.add(someone, city.shops[10 + k], k + 3)
    assert not [a for a in _run_alerts(city) if "linked_returns" in features(a)]


def test_buyers_of_a_seller_that_reverses_everyone_are_not_linked(city):
    """A seller red-flushes most invoices of its four buyers: the seller is the alert; its
    buyers' shared reversals are the seller's doing and link nobody."""
    _ordinary_returns(city)
    shop = MerchantFactory(industry_code="5211")
    buyers = city.people[:4]
    for i, someone in enumerate(buyers):
        for k in range(3):
            city.add(someone, shop, k + 1 + i / 10, status="reversed")
    alerts = _run_alerts(city)
    assert "red_excess" in features(next(a for a in alerts if a.merchant_id == shop.pk))
    assert not [a for a in alerts if "linked_returns" in features(a)]


def test_a_shop_where_a_reported_claimer_returned_is_not_a_seller_anomaly(city):
    """A claimer buys eight times at one small shop and returns six: the claimer is the alert;
    the shop's 6 reversals in 16 entries are the claimer's doing. A shop that also red-flushes
    other buyers' invoices stays an alert."""
    _ordinary_returns(city)
    claimer, small = person(), MerchantFactory(industry_code="5211")
    for i in range(8):
        city.add(claimer, small, i + 1, status="reversed" if i < 6 else "accepted")
    for i in range(8):
        city.add(city.people[i], small, i + 1.2)
    other = MerchantFactory(industry_code="5211")
    claimer2 = person()
    for i in range(8):
        city.add(claimer2, other, i + 1, status="reversed" if i < 6 else "accepted")
    for i in range(8):  # ... and most of its other buyers' invoices are red-flushed too
        city.add(city.people[10 + i], other, i + 1.2, status="reversed" if i < 6 else "accepted")
    alerts = _run_alerts(city)
    assert {claimer.pk, claimer2.pk} <= {a.consumer_id for a in alerts}
    assert not [a for a in alerts if a.merchant_id == small.pk]
    seller = next(a for a in alerts if a.merchant_id == other.pk)
    item = next(f for f in seller.features if f["feature"] == "red_excess")
    assert item["reversed"] == 6 and item["entries"] == 8  # counted without the claimer's


def test_the_large_returns_test_counts_only_consumers_who_can_have_two_large_returns(
    city, monkeypatch
):
    """The red_large family holds the consumers with two or more large entries (the others
    cannot have the two large reversals the test reports): ordinary shoppers of cheap goods do
    not dilute the threshold of every test in the family, a buyer of two dear things does."""
    import apps.risk.batch as batch

    calls = []
    real = batch.benjamini_hochberg

    def spy(pvalues, q, tests):
        calls.append((pvalues, tests))
        return real(pvalues, q, tests)

    monkeypatch.setattr(batch, "benjamini_hochberg", spy)
    _ordinary_returns(city)
    two, one = person(), person()
    for i in range(4):
        city.add(two, city.shops[i], i + 1, total="5000.00" if i < 2 else None)
        city.add(one, city.shops[i], i + 1, total="5000.00" if i < 1 else None)
    city.run()
    entries = list(Invoice.objects.filter(campaign=city.campaign).values_list("consumer", "total"))
    totals = sorted(float(t) for _c, t in entries)
    k = 0.95 * (len(totals) - 1)
    large = totals[int(k)] + (totals[int(k) + 1] - totals[int(k)]) * (k - int(k))
    per = {}
    for consumer, total in entries:
        n, nl = per.get(consumer, (0, 0))
        per[consumer] = (n + 1, nl + (float(total) >= large))
    tested = [c for c, (n, _nl) in per.items() if n >= 4]
    with_two = [c for c in tested if per[c][1] >= 2]
    assert two.pk in with_two and one.pk not in with_two
    assert 0 < len(with_two) < len(tested)
    # The consumers' family (keys are (test, subject) pairs; no linked groups here).
    family = [tests for pvalues, tests in calls if all(isinstance(k, tuple) for k in pvalues)]
    assert family == [len(tested) + len(with_two)]


def test_a_dear_claimer_among_many_cheap_shoppers_is_reported(city):
    """Three hundred more ordinary shoppers who never buy anything dear (tested for the count
    of reversals, no hypotheses of the large-returns test): a claimer who returned 3 of 6 dear
    purchases among them is reported, an ordinary buyer of dear goods with one return of six
    is not."""
    _ordinary_returns(city)
    for _ in range(300):
        someone = person()
        for k in range(4):
            city.add(someone, city.shops[k], k + 1, total=f"{city.rng.uniform(120, 200):.2f}")
    claimer, buyer = person(), person()
    for i in range(6):
        city.add(
            claimer,
            city.shops[i],
            i + 1.5,
            total="3000.00",
            status="reversed" if i < 3 else "accepted",
        )
        city.add(
            buyer,
            city.shops[i],
            i + 1.5,
            total="3000.00",
            status="reversed" if i < 1 else "accepted",
        )
    alerts = _run_alerts(city)
    alert = next(a for a in alerts if a.consumer_id == claimer.pk)
    assert {"red_large", "red_excess"} & features(alert)
    assert not [a for a in alerts if a.consumer_id == buyer.pk]
