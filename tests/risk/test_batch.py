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
from tests.factories.core import CampaignFactory, ConsumerFactory, MerchantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


class City:
    """Thirty ordinary shops and ninety ordinary shoppers over thirty days."""

    def __init__(self):
        self.rng = random.Random(5)
        self.now = timezone.now()
        self.campaign = CampaignFactory(cap_per_day=3)
        self.shops = [MerchantFactory(industry_code="5211") for _ in range(30)]
        self.people = [ConsumerFactory(real_name="") for _ in range(90)]
        self.rows: list[Invoice] = []
        self.seq = 0
        for person in self.people:
            for _ in range(self.rng.randint(3, 6)):
                self.add(person, self.rng.choice(self.shops), self.rng.uniform(0.5, 29.5))

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
    ring = [ConsumerFactory(real_name="") for _ in range(4)]
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
    assert "red_rate" in features(city.alert_for(merchant=shop))


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
    bulk = ConsumerFactory(real_name="")
    for day in range(7):
        for k in range(3):
            city.add(bulk, city.shops[(day * 3 + k) % 30], day + 1 + k * 0.01)
    city.run()
    assert {"volume", "near_cap_share"} <= features(city.alert_for(consumer=bulk))


def test_a_cashier_entering_their_own_shops_invoices_within_seconds(city):
    cashier = ConsumerFactory(real_name="")
    for day in range(10):
        city.add(cashier, city.shops[0], day + 1, fast=True)
    city.run()
    assert {"fast_share", "top_seller_share"} <= features(city.alert_for(consumer=cashier))


def test_consumers_linked_by_one_device_form_a_cluster(city):
    farm = [ConsumerFactory(real_name="") for _ in range(5)]
    for person in farm:
        city.add(person, city.shops[1], 2)
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
