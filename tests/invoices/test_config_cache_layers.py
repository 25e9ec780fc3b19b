"""Issue 11: the configuration cache's round trips. Within a request the generation tokens are
read once, together; each process keeps the values it has read; neither may serve a value after
a change, and no caller gets an object another caller holds."""

from __future__ import annotations

import itertools
from uuid import uuid4

import pytest
from django.conf import settings
from django.core.cache import cache

from apps.common import throttling
from apps.invoices import caching
from apps.invoices.models import CampaignIndustry
from tests.factories.core import ConsumerFactory, MerchantFactory
from tests.invoices.conftest import SELLER, app_client, submit

pytestmark = [pytest.mark.django_db]

_keys = itertools.count(1)


class _CountingCache:
    """Counts the cache's round trips (get_many / get / set / add) made through `caching`."""

    def __init__(self, monkeypatch):
        self.calls = []
        self.inside = False
        for name in ("get_many", "get", "set", "add"):
            original = getattr(cache, name)
            monkeypatch.setattr(caching.cache, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def call(*args, **kwargs):
            if self.inside:  # a backend whose get_many calls get (local memory): one call
                return original(*args, **kwargs)
            self.calls.append((name, args[0] if args else None))
            self.inside = True
            try:
                return original(*args, **kwargs)
            finally:
                self.inside = False

        return call


def test_the_snapshot_follows_djangos_request_signals():
    from django.core import signals

    started = [r[1]() for r in signals.request_started.receivers]
    finished = [r[1]() for r in signals.request_finished.receivers]
    assert caching.request_started in started and caching.request_finished in finished


@pytest.fixture
def request_scope():
    caching.request_started()
    yield
    caching.request_finished()


def test_a_request_reads_its_generations_once_and_kept_values_without_round_trips(
    campaign, request_scope, monkeypatch
):
    caching.active_campaigns()  # warm: the cache and this process hold the campaigns
    caching.campaign_code(campaign.pk)
    caching.campaign_rule_lists(campaign)
    caching.request_finished()
    caching.request_started()  # a new request
    counted = _CountingCache(monkeypatch)
    assert [c.pk for c in caching.active_campaigns()] == [campaign.pk]
    assert caching.campaign_code(campaign.pk) == campaign.code
    assert caching.campaign_rule_lists(campaign) is not None
    assert [name for name, _key in counted.calls] == ["get_many"]  # the generations only
    assert set(counted.calls[0][1]) >= {caching.CAMPAIGN_GEN, caching.MERCHANT_GEN}


def test_outside_a_request_every_read_asks_for_the_current_generation(campaign, monkeypatch):
    caching.active_campaigns()
    counted = _CountingCache(monkeypatch)
    caching.active_campaigns()
    caching.active_campaigns()
    assert [name for name, _key in counted.calls] == ["get_many", "get_many"]


def test_a_kept_value_is_never_served_after_another_process_changes_it(campaign, request_scope):
    caching.active_campaigns()
    assert caching.campaign_rule_lists(campaign)[0] == tuple(
        CampaignIndustry.objects.filter(campaign=campaign, excluded=False).values_list(
            "code", flat=True
        )
    )
    # Another process changes the rules: the database row and a new generation, and nothing
    # reaches this process's signals.
    CampaignIndustry.objects.bulk_create(
        [CampaignIndustry(campaign=campaign, code="99", excluded=True)]
    )
    cache.set(caching.CAMPAIGN_GEN, uuid4().hex, None)
    caching.request_finished()
    caching.request_started()  # the next request
    campaigns = caching.active_campaigns()
    assert "99" in caching.campaign_rule_lists(campaigns[0])[1]


def test_a_change_inside_the_request_is_seen_by_the_same_request(campaign, request_scope):
    assert caching.campaign_code(campaign.pk) == campaign.code
    campaign.code = f"renamed-{next(_keys)}"
    campaign.save()  # the signal replaces the generation and drops it from the snapshot
    assert caching.campaign_code(campaign.pk) == campaign.code


def test_callers_never_share_a_kept_object(campaign, request_scope):
    first = caching.active_campaigns()
    first[0].name = "changed by one caller"
    first.clear()
    again = caching.active_campaigns()
    assert len(again) == 1 and again[0].name == campaign.name
    assert again[0] is not caching.active_campaigns()[0]


def test_merchants_are_kept_apart_and_bounded(campaign, request_scope, monkeypatch):
    merchant = MerchantFactory(uscc=SELLER)
    assert caching.merchant_by_uscc(SELLER).pk == merchant.pk
    key = caching._merchant_key(SELLER)
    assert key in caching._kept_merchants and key not in caching._kept
    # Served from the process while its generation holds, never after a change elsewhere.
    caching.request_finished()
    caching.request_started()
    counted = _CountingCache(monkeypatch)
    assert caching.merchant_by_uscc(SELLER).pk == merchant.pk
    assert [name for name, _key in counted.calls] == ["get_many"]
    assert key not in counted.calls[0][1]  # the generations only
    type(merchant).objects.filter(pk=merchant.pk).update(name="改名商户")
    cache.set(caching.MERCHANT_GEN, uuid4().hex, None)
    caching.request_finished()
    caching.request_started()
    assert caching.merchant_by_uscc(SELLER).name == "改名商户"
    # A full store starts again rather than growing.
    monkeypatch.setattr(caching, "_MERCHANTS_KEPT", 1)
    MerchantFactory(uscc="91410105MA00000002")
    caching.merchant_by_uscc("91410105MA00000002")
    assert list(caching._kept_merchants) == [caching._merchant_key("91410105MA00000002")]


@pytest.mark.postgres
def test_a_submission_reads_the_configuration_in_at_most_one_round_trip(
    campaign, make_record, monkeypatch
):
    MerchantFactory(uscc=SELLER, area_code="410105", industry_code="5211")
    _record, body = make_record()
    assert submit(app_client(ConsumerFactory(real_name="张三")), body).status_code == 201
    consumer = ConsumerFactory(real_name="张三")
    client = app_client(consumer)
    _record, body = make_record()
    counted = _CountingCache(monkeypatch)
    response = submit(client, body)
    assert response.status_code == 201, response.content
    # Campaigns, merchant, prize rules, instant pools and risk configuration: at most one
    # get_many. With Redis none: the generation tokens came with the rate limits' script and
    # the values (the merchant too) are kept in the process. The other cache reads of the
    # request are the monitoring state and the session.
    cached_session = settings.SESSION_ENGINE == "apps.accounts.session_store"
    names = [name for name, _key in counted.calls]
    config = [] if throttling._redis_script() is not None else ["get_many"]
    assert names == (["get", "get"] if cached_session else ["get"]) + config
    assert counted.calls[0][1] == "monitoring:state:v1"
    if cached_session:
        assert counted.calls[1][1].startswith("lotteryinvoice.session.v1:")
    if config:
        assert caching.CAMPAIGN_GEN in counted.calls[-1][1]
