"""Races on PostgreSQL with real threads: one invoice, many consumers; one consumer, many
invoices against a cap. The database (partial unique index, row lock) decides."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection
from rest_framework.test import APIClient

from apps.invoices.models import Invoice
from tests.factories.core import ConsumerFactory
from tests.invoices.conftest import submit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_parallel(jobs) -> list:
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def worker(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except BaseException as exc:  # reported by the assertions
            results[i] = exc
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def client_for(consumer) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=consumer.user)
    return client


def test_fifty_consumers_race_for_one_invoice_exactly_one_enters(campaign, make_record):
    _record, body = make_record(buyer_name="王芳")
    clients = [client_for(ConsumerFactory(real_name="王芳")) for _ in range(50)]
    responses = run_parallel([lambda c=c: submit(c, body) for c in clients])
    statuses = Counter(
        r.status_code if not isinstance(r, BaseException) else repr(r) for r in responses
    )
    assert statuses == {201: 1, 409: 49}, statuses
    assert all(r.json()["code"] == "invoice.duplicate" for r in responses if r.status_code == 409)
    assert Invoice.objects.filter(number=body["number"], status="accepted").count() == 1
    assert Invoice.objects.filter(number=body["number"], status="rejected").count() == 49


def test_parallel_submissions_by_one_consumer_respect_the_daily_cap(
    campaign, make_record, consumer
):
    campaign.cap_per_day = 3
    campaign.save()
    bodies = [make_record()[1] for _ in range(20)]
    client = client_for(consumer)
    responses = run_parallel([lambda b=b: submit(client, b) for b in bodies])
    codes = Counter(
        r.status_code if r.status_code == 201 else r.json()["code"]
        for r in responses
        if not isinstance(r, BaseException)
    )
    assert codes == {201: 3, "limit.daily_reached": 17}, codes
    assert Invoice.objects.filter(consumer=consumer, status="accepted").count() == 3


def test_the_same_idempotency_key_in_parallel_has_one_effect(campaign, make_record, consumer):
    _record, body = make_record()
    client = client_for(consumer)
    responses = run_parallel([lambda: submit(client, body, key="same-key-parallel-1")] * 10)
    assert not [r for r in responses if isinstance(r, BaseException)]
    codes = Counter(r.status_code for r in responses)
    # One did the work; the others replayed it or were told it is still running.
    assert codes[201] >= 1 and set(codes) <= {201, 409}, codes
    assert Invoice.objects.filter(number=body["number"]).count() == 1


@pytest.mark.parametrize(
    ("limit", "pool"),
    [
        ("stock", {"remaining": 4}),
        ("quota", {"remaining": 100, "quota": 4}),
        ("fund", {"remaining": 100, "funds": "80.00"}),
    ],
)
def test_parallel_winners_never_take_more_than_the_stock_the_quota_or_the_fund(
    campaign, make_record, limit, pool
):
    """30 consumers submit at once, every entry draws a sure win of 20 yuan, and one limit
    allows four: the stock, the day's quota, or a fund of 80 yuan. The submission's win
    (`apps.draws.services._instant_win_batched`: the take and the reservation in one
    statement under the tier's row lock, the rows written with the COMMIT) awards exactly
    four, and the fund's ledger balances."""
    from apps.draws.models import InstantAward, InstantDailyQuota
    from apps.prizes.ledger import fund_balances, ledger_verify
    from apps.prizes.models import Award, Fund
    from tests.invoices.test_submission_querycount import instant_pool

    tier = instant_pool(campaign, **pool)
    fund = Fund.objects.get(campaign=campaign, is_default=True)
    clients = [client_for(ConsumerFactory(real_name="张三")) for _ in range(30)]
    bodies = [make_record()[1] for _ in clients]
    responses = run_parallel(
        [lambda c=c, b=b: submit(c, b) for c, b in zip(clients, bodies, strict=True)]
    )
    assert not [r for r in responses if isinstance(r, BaseException)], responses
    assert Counter(r.status_code for r in responses) == {201: 30}
    assert Invoice.objects.filter(status="accepted").count() == 30
    prizes = [r.json()["instant_prize"] for r in responses]
    assert sum(p is not None for p in prizes) == 4, limit
    assert InstantAward.objects.count() == Award.objects.count() == 4
    tier.refresh_from_db()
    assert tier.remaining == pool["remaining"] - 4
    assert InstantDailyQuota.objects.get(tier=tier).awarded == 4
    balances = fund_balances(fund)
    assert balances["reserved"] == 80
    assert balances["available"] == Decimal(pool.get("funds", "1000.00")) - 80
    assert ledger_verify() == []
