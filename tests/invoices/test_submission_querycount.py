"""Issue 11: the submission hot path's query count, pinned; and the configuration cache it
reads (campaigns, their rules, merchants) forgets every change before the next submission.

The counts are of one whole request through the API — session, user, idempotency key,
consumer, duplicate check, registry, the decision transaction, rollups, outbox, instant draw —
with warm caches (an earlier submission loaded the campaign, its rules and the merchant). A
change that adds a query on this path must change the pinned number here, on purpose.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.draws.choices import InstantPrizeKind, OddsMode
from apps.draws.models import InstantAward, InstantDailyQuota, InstantPool, InstantTier
from apps.invoices.campaign_lists import AREA, INDUSTRY, campaign_rule_upsert
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import Campaign, CampaignIndustry, Invoice
from apps.merchants.choices import MerchantStatus
from apps.merchants.services import merchant_set_status
from apps.prizes.services import policy_for
from apps.reporting import rollups
from apps.reporting.models import DailyRollup, InvoiceFact, OutboxEvent
from tests.factories.core import (
    ConsumerFactory,
    MerchantFactory,
    UserFactory,
    funded_default_fund,
)
from tests.invoices.conftest import SELLER, app_client, submit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# One accepted submission, warm caches (PostgreSQL), signed in as the consumer app is (session
# token). Outside tests the SAVEPOINT/RELEASE pair is the transaction's BEGIN/COMMIT:
#    1 session (read from the cached copy with Redis: no query), 2 user with its consumer
#    profile (one join), 3 the idempotency claim (INSERT … ON CONFLICT DO NOTHING), the
#    duplicate check and the registry record in one statement (the claim travels with the
#    view's first read: `apps.common.queries._fused_reads`),
#    4 savepoint, 5 consumer lock (its SELECT also sets generic plans for the transaction and
#    draws the new invoice's id), 6 caps and 7 risk features (apps.risk), read under the lock,
#   the deferred rollups: 8 fact (old read + new written in one statement),
#   9 participation keys, 10 every shared rollup row (participants per day, cell, merchant
#   day, merchant total) in one statement, 11 outbox events (one INSERT),
#   the batched writes, one statement (`apps.common.queries.fused_writes`): 12 the invoice (its
#   id drawn already; a lost race for the number fails here and is recorded anew), both
#   history rows and the idempotency reply (committed with the decision; on an instant draw
#   the entry's draw record goes with them),
#   13 release.
# Campaign, campaign rules, merchant and the campaign's instant pools come from the cache (no
# query); an app session's activity is written at most hourly (no session UPDATE here).
# With Redis (CI, production) the session store reads its cached copy; without, the database.
SESSION_QUERIES = 0 if settings.SESSION_ENGINE == "apps.accounts.session_store" else 1
ACCEPTED_QUERIES = 12 + SESSION_QUERIES
# Round trips: statements sent together in psycopg's pipeline mode travel in one
# (`apps.common.queries`): 5–7 (with the transaction's BEGIN outside tests) and 12
# (with the COMMIT outside tests: `test_submission_round_trips`).
ACCEPTED_ROUND_TRIPS = ACCEPTED_QUERIES - 2
# A number already entered: session, user + consumer, idempotency claim with the duplicate
# check and the registry record (one statement: a local look-up), then the rejected attempt
# kept on record (savepoint, INSERT, fact, participation keys, shared rollups, outbox, history
# (batched), release) and the idempotency reply. The consumer lock is not touched.
DUPLICATE_QUERIES = 11 + SESSION_QUERIES
DUPLICATE_ROUND_TRIPS = DUPLICATE_QUERIES
# An accepted submission that wins an instant prize: the accepted path plus the draw's own
# statements (apps.draws: under the pipeline's own consumer lock and in its transaction (no
# savepoint), pools and tiers from the cache and fixed odds (no stock or quota read); the
# win's savepoint, one statement that takes the stock and the day's quota and moves the
# fund's two balances (the ledger reserve, apps.prizes), and the ids of the instant award and
# the award (one SELECT); then, batched with the transaction's writes, the savepoint's release
# (alone: it splits the batch's fused statement in two, the invoice and its history before
# it) and, in one statement with the entry's draw record (written once, with its outcome)
# and the idempotency reply, the instant award, the award, its history and its ledger entry
# (a coupon's row would join them); fund, policy and the fund's account ids come from the
# prize configuration cache), and the award's rollup (fact, cell; its outbox event shares
# the invoice's INSERT).
INSTANT_WIN_QUERIES = 19 + SESSION_QUERIES
# Round trips: the accepted path's, one for everything the win decides (savepoint, the take,
# ids: `_instant_win_batched`; its rows join the accepted path's batch), and the award's two
# rollup statements (written inline in tests; production queues them).
INSTANT_WIN_ROUND_TRIPS = ACCEPTED_ROUND_TRIPS + 1 + 2


class RoundTrips:
    """Statements and database round trips of a block: the statements of one pipeline
    (psycopg's pipeline mode, `apps.common.queries.pipelined`) travel in one round trip."""

    def __init__(self):
        # (sql, the pipeline it was sent in or None); keeping the pipeline objects keeps
        # their identities apart. `_pipeline` is psycopg's own (no public accessor).
        self.statements: list[tuple[str, object]] = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append((sql, getattr(connection.connection, "_pipeline", None)))
        return execute(sql, params, many, context)

    @property
    def count(self) -> int:
        pipelines = {id(p): p for _sql, p in self.statements if p is not None}
        return sum(1 for _sql, p in self.statements if p is None) + len(pipelines)

    @property
    def seen(self) -> list[tuple[str, bool]]:
        """(sql, sent in a pipeline) per statement."""
        return [(sql, p is not None) for sql, p in self.statements]

    def matching(self, *needles: str) -> list[tuple[int, str, bool]]:
        """(index, sql, sent in a pipeline) of the statements containing every needle."""
        return [
            (i, sql, piped)
            for i, (sql, piped) in enumerate(self.seen)
            if all(n in sql for n in needles)
        ]


@contextmanager
def counted_round_trips():
    counter = RoundTrips()
    with connection.execute_wrapper(counter):
        yield counter


def spy_psycopg_commands(monkeypatch) -> list[str]:
    """The commands psycopg sends on its own from now on (its `BEGIN`, `COMMIT`, …, each a
    round trip outside a pipeline), outside any cursor."""
    sent: list[str] = []
    real = psycopg.Connection._exec_command

    def spy(self, command, *args, **kwargs):
        sent.append(bytes(command).decode())
        return real(self, command, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "_exec_command", spy)
    return sent


_keys = itertools.count(1)


@pytest.fixture
def merchant(db):
    return MerchantFactory(uscc=SELLER, area_code="410105", industry_code="5211")


def signed_in(consumer) -> APIClient:
    """A client signed in as the consumer app is (a session token in X-Session-Token): the
    session and user queries are part of the count."""
    return app_client(consumer)


def warm_up(campaign, make_record):
    """An earlier submission by someone else: caches hold the campaign, rules and merchant."""
    other = ConsumerFactory(real_name="张三")
    _record, body = make_record()
    response = submit(signed_in(other), body)
    assert response.status_code == 201, response.content


def test_an_accepted_submission_makes_a_pinned_number_of_queries(
    consumer, campaign, merchant, make_record, django_assert_num_queries
):
    warm_up(campaign, make_record)
    client = signed_in(consumer)
    _record, body = make_record()
    with django_assert_num_queries(ACCEPTED_QUERIES), counted_round_trips() as trips:
        response = submit(client, body)
    assert response.status_code == 201, response.content
    assert response.json()["invoice"]["status"] == "accepted"
    assert trips.count == ACCEPTED_ROUND_TRIPS
    invoice = Invoice.objects.get(number=body["number"])
    assert invoice.merchant == merchant and invoice.campaign == campaign
    # The rollups and the outbox were written (once, with the final state).
    fact = InvoiceFact.objects.get(invoice_id=invoice.pk)
    assert (fact.status, fact.area_code, fact.industry_code) == ("accepted", "410105", "52")
    cell = DailyRollup.objects.get(
        day=fact.day, area_code="410105", industry_code="52", campaign_id=campaign.pk
    )
    assert (cell.submitted, cell.accepted, cell.participants) == (2, 2, 2)
    event = OutboxEvent.objects.filter(stream=f"invoices/{cell.pk}").order_by("-seq").first()
    assert event.seq == cell.version and event.payload["accepted"] == 2
    assert event.payload["campaign"] == campaign.code


def test_a_rejected_duplicate_makes_a_pinned_number_of_queries(
    consumer, campaign, merchant, make_record, django_assert_num_queries
):
    warm_up(campaign, make_record)
    client = signed_in(consumer)
    _record, body = make_record()
    assert submit(client, body).status_code == 201
    with django_assert_num_queries(DUPLICATE_QUERIES), counted_round_trips() as trips:
        response = submit(client, body)
    assert response.status_code == 409, response.content
    assert trips.count == DUPLICATE_ROUND_TRIPS
    assert response.json()["code"] == "invoice.duplicate"
    assert Invoice.objects.filter(number=body["number"], status="rejected").count() == 1


@pytest.fixture
def sure_win(campaign):
    return instant_pool(campaign)


def instant_pool(campaign, *, probability="1", remaining=10, funds="1000.00", quota=10, kind=None):
    """A funded campaign's instant pool with one 20-yuan tier of 10 (cash unless `kind`), open
    today with a quota of `quota`; `funds` deposited in the campaign's default fund."""
    funded_default_fund(campaign, Decimal(funds))
    now = timezone.now()
    pool = InstantPool.objects.create(
        campaign=campaign,
        name="郑州即时奖池",
        odds_mode=OddsMode.FIXED,
        active_from=now - timedelta(days=1),
        active_until=now + timedelta(days=1),
        max_wins_per_consumer=None,
    )
    tier = InstantTier.objects.create(
        pool=pool,
        name="20元现金",
        kind=kind or InstantPrizeKind.CASH,
        face_value=Decimal("20.00"),
        total_quantity=max(10, remaining),
        remaining=remaining,
        probability=Decimal(probability),
    )
    InstantDailyQuota.objects.create(tier=tier, day=timezone.localdate(), quota=quota)
    policy_for(campaign.pk)  # a running campaign has its prize policy (the admin makes it)
    return tier


def test_an_instant_win_makes_a_pinned_number_of_queries(
    consumer, campaign, merchant, make_record, sure_win, django_assert_num_queries
):
    warm_up(campaign, make_record)
    client = signed_in(consumer)
    _record, body = make_record()
    with django_assert_num_queries(INSTANT_WIN_QUERIES), counted_round_trips() as trips:
        response = submit(client, body)
    assert response.status_code == 201, response.content
    assert trips.count == INSTANT_WIN_ROUND_TRIPS
    assert response.json()["instant_prize"]["tier"] == "20元现金"
    sure_win.refresh_from_db()
    assert sure_win.remaining == 8  # the warm-up won too
    assert InstantAward.objects.filter(tier=sure_win).count() == 2


def test_query_list_of_an_accepted_submission_is_readable(
    consumer, campaign, merchant, make_record
):
    """Not a pin: keeps the list at hand when the count changes (run with -s to print it)."""
    warm_up(campaign, make_record)
    client = signed_in(consumer)
    _record, body = make_record()
    with CaptureQueriesContext(connection) as ctx:
        assert submit(client, body).status_code == 201
    for i, query in enumerate(ctx.captured_queries, 1):
        print(f"{i:3} {query['sql'][:160]}")
    # The same row is never read twice: one consumer load outside, one lock inside.
    consumer_reads = [q for q in ctx.captured_queries if 'FROM "accounts_consumer"' in q["sql"]]
    assert len(consumer_reads) <= 3  # view, pipeline lock, instant draw's lock (apps.draws)
    campaign_reads = [q for q in ctx.captured_queries if 'FROM "invoices_campaign' in q["sql"]]
    assert campaign_reads == []
    merchant_reads = [q for q in ctx.captured_queries if 'FROM "merchants_merchant"' in q["sql"]]
    assert merchant_reads == []


# --- the configuration cache forgets every change ------------------------------------------


def test_a_new_industry_exclusion_is_seen_by_the_next_submission(
    consumer, campaign, merchant, make_record
):
    warm_up(campaign, make_record)
    campaign_rule_upsert(
        kind=INDUSTRY,
        campaign=campaign,
        code="5211",
        excluded="1",
        label="",
        actor=UserFactory(),
        source="test",
    )
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invoice.industry_not_eligible"


def test_a_deleted_rule_and_a_new_area_are_seen_by_the_next_submission(
    consumer, campaign, merchant, make_record
):
    warm_up(campaign, make_record)
    # A queryset delete sends `post_delete` for every row it deletes: 52xx is not included now.
    CampaignIndustry.objects.filter(campaign=campaign, code="52").delete()
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.json()["code"] == "invoice.industry_not_eligible", response.content
    campaign_rule_upsert(
        kind=INDUSTRY, campaign=campaign, code="52", actor=UserFactory(), source="test"
    )
    campaign_rule_upsert(
        kind=AREA, campaign=campaign, code="4102", label="开封市", actor=UserFactory(), source="t"
    )
    CampaignIndustry.objects.filter(campaign=campaign).exclude(code="52").delete()
    campaign.areas.filter(code="4101").delete()
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.json()["code"] == "invoice.seller_outside_area", response.content


def test_a_changed_campaign_rule_is_seen_by_the_next_submission(
    consumer, campaign, merchant, make_record
):
    warm_up(campaign, make_record)
    campaign.min_total = Decimal("500.00")
    campaign.save(update_fields=["min_total", "updated_at"])
    _record, body = make_record(total="200.00")
    response = submit(signed_in(consumer), body)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invoice.below_minimum"


def test_a_campaign_edited_in_the_admin_is_seen_by_the_next_submission(
    consumer, campaign, merchant, make_record, admin_client
):
    from django.urls import reverse

    from tests.invoices.test_admin import campaign_form_data

    warm_up(campaign, make_record)
    url = reverse("admin:invoices_campaign_change", args=[campaign.pk])
    # An industry exclusion added in the campaign page's inline.
    data = campaign_form_data(
        campaign,
        **{
            "industries-TOTAL_FORMS": "1",
            "industries-0-code": "5211",
            "industries-0-excluded": "on",
            "industries-0-label": "零售",
        },
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert campaign.industries.filter(code="5211", excluded=True).exists()
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.json()["code"] == "invoice.industry_not_eligible", response.content
    # A higher minimum set on the campaign itself.
    campaign.industries.filter(code="5211").delete()
    response = admin_client.post(url, campaign_form_data(campaign, min_total="300.00"))
    assert response.status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).min_total == Decimal("300.00")
    _record, body = make_record(total="200.00")
    response = submit(signed_in(consumer), body)
    assert response.json()["code"] == "invoice.below_minimum", response.content


def test_an_ended_campaign_takes_no_more_entries(consumer, campaign, merchant, make_record):
    warm_up(campaign, make_record)
    campaign.status = "ended"
    campaign.save(update_fields=["status", "updated_at"])
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.json()["code"] == "invoice.no_campaign", response.content


def test_a_blacklisted_merchant_is_seen_by_the_next_submission(
    consumer, campaign, merchant, make_record
):
    warm_up(campaign, make_record)
    merchant_set_status(
        merchant=merchant,
        status=MerchantStatus.BLACKLISTED,
        reason="虚开发票",
        actor=UserFactory(is_staff=True, is_superuser=True),
    )
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invoice.seller_blacklisted"


def test_a_merchant_registered_after_a_lookup_is_seen(consumer, campaign, make_record):
    warm_up(campaign, make_record)  # the seller is unknown: "no merchant" is cached
    blacklisted = MerchantFactory(uscc=SELLER, status=MerchantStatus.BLACKLISTED)
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.json()["code"] == "invoice.seller_blacklisted", response.content
    assert blacklisted.pk


def test_a_row_read_just_before_a_change_is_never_served_after_it(
    merchant, django_capture_on_commit_callbacks
):
    """The race deleting keys cannot close: a request reads the generation and the old row,
    the change commits, then the slow request stores what it read. The stale row carries the
    old generation and the next reader reloads."""
    from django.core.cache import cache

    from apps.invoices import caching
    from apps.merchants.models import Merchant

    assert caching.merchant_by_uscc(merchant.uscc).status == MerchantStatus.ACTIVE
    found = cache.get_many([caching.MERCHANT_GEN])
    token = caching._generation(found, caching.MERCHANT_GEN)  # the slow request's generation
    stale = Merchant.objects.get(pk=merchant.pk)  # ... and its row, read before the change
    with django_capture_on_commit_callbacks(execute=True):
        merchant_set_status(
            merchant=merchant,
            status=MerchantStatus.BLACKLISTED,
            reason="虚开发票",
            actor=UserFactory(is_staff=True, is_superuser=True),
        )
    caching._store(caching._merchant_key(merchant.uscc), token, stale)  # stored too late
    assert caching.merchant_by_uscc(merchant.uscc).status == MerchantStatus.BLACKLISTED


def test_a_risk_configuration_read_just_before_a_change_is_never_served_after_it(
    django_capture_on_commit_callbacks,
):
    """The risk hook's configuration (apps.risk.rules) follows the same generation rule."""
    from django.core.cache import cache

    from apps.invoices import caching
    from apps.risk import rules
    from apps.risk.services import risk_rule_update

    assert rules.current_config().rules["consumer_velocity"].weight == 30  # the default
    found = cache.get_many([rules.CONFIG_GENERATION_KEY])
    token = caching._generation(found, rules.CONFIG_GENERATION_KEY)  # a slow request's
    stale = rules.load_config()  # ... and what it read before the change
    with django_capture_on_commit_callbacks(execute=True):
        risk_rule_update(
            code="consumer_velocity",
            weight=55,
            reason="收紧频次规则",
            actor=UserFactory(is_staff=True, is_superuser=True),
        )
    caching._store(rules.CONFIG_CACHE_KEY, token, stale)  # stored too late
    assert rules.current_config().rules["consumer_velocity"].weight == 55


def test_a_lost_generation_voids_everything_cached(campaign, merchant):
    """An evicted generation key (or a fresh cache) starts a new generation: nothing cached
    under an earlier one is trusted."""
    from django.core.cache import cache

    from apps.invoices import caching

    caching.merchant_by_uscc(merchant.uscc)
    Merchant = type(merchant)
    Merchant.objects.filter(pk=merchant.pk).update(name="改名后的商户")  # no signal
    cache.delete(caching.MERCHANT_GEN)
    assert caching.merchant_by_uscc(merchant.uscc).name == "改名后的商户"


def test_a_rolled_back_change_is_not_counted_by_deferred_rollups(consumer, campaign, make_record):
    """A change collected inside a savepoint that rolls back (an instant win whose fund cannot
    pay) is dropped; the changes that survive are applied once, at the end."""
    _record, body = make_record()
    assert submit(signed_in(consumer), body).status_code == 201
    invoice = Invoice.objects.get(number=body["number"])
    with transaction.atomic(), rollups.deferred():
        invoice.status = InvoiceStatus.REVERSED
        rollups.invoice_changed(invoice)
        try:
            with transaction.atomic():
                invoice.status = InvoiceStatus.REJECTED
                invoice.rejection_code = "review.rejected"
                rollups.invoice_changed(invoice)
                raise RuntimeError("undo")
        except RuntimeError:
            pass
    fact = InvoiceFact.objects.get(invoice_id=invoice.pk)
    assert fact.status == "reversed"
    cell = DailyRollup.objects.get(day=fact.day, campaign_id=campaign.pk)
    assert (cell.accepted, cell.reversed, cell.rejected) == (0, 1, 0)
