"""Issue 11: the round trips of one submission as production makes them — its own transaction
(not a test's savepoint), queued rollups, Redis — pinned; and a number lost to a concurrent
submission at the decision's last round trip is still recorded as a duplicate.

PostgreSQL round trips are the statements sent alone, the pipelines (each one round trip,
`apps.common.queries.pipelined`) and the commands psycopg sends on its own (a `BEGIN` or
`COMMIT` outside a pipeline, each one round trip). Redis round trips are the commands sent
(a script call is one).
"""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

import pytest
import redis.connection
from django.conf import settings

from apps.common.models import IdempotencyRecord
from apps.draws.models import InstantAward, InstantDailyQuota, InstantDrawResult, InstantTier
from apps.invoices import services
from apps.invoices.models import Invoice
from apps.prizes.ledger import fund_balances, ledger_verify
from apps.prizes.models import Award, Coupon, Fund, LedgerEntry
from tests.invoices.conftest import SELLER, submit
from tests.invoices.test_submission_querycount import (
    counted_round_trips,
    instant_pool,
    signed_in,
    spy_psycopg_commands,
    warm_up,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# The user with the consumer profile; the idempotency claim with the duplicate check and the
# registry record; BEGIN, generic plans, the consumer lock, the invoice's id, the caps and the
# risk facts; the invoice, its history, the draw record, the rollup queue row, the reply and
# COMMIT.
ACCEPTED_PG_ROUND_TRIPS = 4
# One: the win's savepoint, its take (stock, quota and the fund's two balances in one
# statement) and the ids of the instant award and the award. Its rows (instant award, award,
# history, ledger entry, coupon) and the savepoint's release join the decision's batch, which
# goes with the COMMIT.
INSTANT_WIN_PG_ROUND_TRIPS = ACCEPTED_PG_ROUND_TRIPS + 1
# The monitoring state, the session, and the three rate limits (one script) with the
# configuration's generation tokens (the values themselves are kept in the process).
REDIS_ROUND_TRIPS = 3


@pytest.fixture
def merchant(db):
    from tests.factories.core import MerchantFactory

    return MerchantFactory(uscc=SELLER, area_code="410105", industry_code="5211")


class Sent:
    def __init__(self):
        self.psycopg: list[str] = []
        self.redis = 0


@contextmanager
def production_round_trips(monkeypatch):
    """(statements and pipelines, psycopg's own commands and Redis commands) of a block."""
    sent = Sent()
    sent.psycopg = spy_psycopg_commands(monkeypatch)
    send_packed = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):
        sent.redis += 1
        return send_packed(self, command, check_health)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", send_packed_command
    )
    with counted_round_trips() as trips:
        yield trips, sent
    monkeypatch.undo()


@pytest.fixture
def queued(settings, kicks):
    """Production's queued rollups, the drain's kick recorded instead of run (`kicks`: Celery
    is eager in tests, it would drain inside the measured request, at a time of its own)."""
    settings.REPORTING_ROLLUPS_QUEUED = True


def submit_measured(consumer, campaign, make_record, monkeypatch, *, own_commands=()):
    """After a warm-up submission by someone else, `consumer` submits a fresh invoice: the
    201 response and its round trips. psycopg sends no BEGIN or COMMIT of its own: both travel
    in pipelines (nor anything else but `own_commands`)."""
    warm_up(campaign, make_record)
    client = signed_in(consumer)
    _record, body = make_record()
    with production_round_trips(monkeypatch) as (trips, sent):
        response = submit(client, body)
    assert response.status_code == 201, response.content
    assert sent.psycopg == list(own_commands)
    return response, trips, sent


def test_an_accepted_submission_makes_four_round_trips_to_postgresql(
    consumer, campaign, merchant, make_record, queued, monkeypatch
):
    response, trips, sent = submit_measured(consumer, campaign, make_record, monkeypatch)
    assert response.json()["invoice"]["status"] == "accepted"
    assert trips.count == ACCEPTED_PG_ROUND_TRIPS, trips.seen
    begin = trips.matching("BEGIN")
    commit = trips.matching("COMMIT")
    assert len(begin) == 1 and begin[0][2] and len(commit) == 1 and commit[0][2]
    if settings.SESSION_ENGINE == "apps.accounts.session_store":
        assert sent.redis == REDIS_ROUND_TRIPS
    # The claim committed before the decision's transaction began (a concurrent retry sees it).
    claim = trips.matching("INSERT", IdempotencyRecord._meta.db_table)[0][0]
    assert claim < begin[0][0]
    record = IdempotencyRecord.objects.get(user=consumer.user)
    assert record.state == IdempotencyRecord.State.COMPLETED


def test_an_instant_win_adds_its_own_round_trips(
    consumer, campaign, merchant, make_record, queued, monkeypatch
):
    tier = instant_pool(campaign)
    response, trips, _sent = submit_measured(consumer, campaign, make_record, monkeypatch)
    assert response.json()["instant_prize"]["tier"] == tier.name
    assert trips.count == INSTANT_WIN_PG_ROUND_TRIPS, trips.seen


@pytest.mark.parametrize("kind", ["cash", "coupon"])
def test_an_instant_wins_rows_go_with_the_commit(
    consumer, campaign, merchant, make_record, queued, monkeypatch, kind
):
    """Everything the win decides travels in one round trip (savepoint, stock, quota, the
    fund's balances, the two ids); its rows are written with the decision's batch and COMMIT,
    and they are all there, linked, with the money reserved exactly once."""
    tier = instant_pool(campaign, kind=kind)
    fund = Fund.objects.get(campaign=campaign, is_default=True)
    response, trips, _sent = submit_measured(consumer, campaign, make_record, monkeypatch)
    assert response.json()["instant_prize"]["amount"] == "20.00"
    sent = trips.statements  # (sql, the pipeline it travelled in)
    decided = [p for sql, p in sent if "UPDATE" in sql and InstantTier._meta.db_table in sql]
    assert len(decided) == 1 and decided[0] is not None
    together = [sql for sql, p in sent if p is decided[0]]
    assert sum("nextval" in sql for sql in together) == 1
    assert sum('"prizes_ledgeraccount"' in sql for sql in together) == 1  # in the take
    commit = next(p for sql, p in sent if sql == "COMMIT")
    batch = [sql for sql, p in sent if p is commit]
    for table in (InstantAward, Award, LedgerEntry) + ((Coupon,) if kind == "coupon" else ()):
        assert any(f'INSERT INTO "{table._meta.db_table}"' in sql for sql in batch), table
    award = Award.objects.get(consumer=consumer)
    instant = InstantAward.objects.get(invoice__consumer=consumer)
    assert award.instant_award_id == instant.pk and award.invoice_id == instant.invoice_id
    assert LedgerEntry.objects.get(key=f"reserve:award:{award.pk}").amount == Decimal("20.00")
    assert award.history.count() == 1
    assert Coupon.objects.filter(award=award).exists() == (kind == "coupon")
    tier.refresh_from_db()
    assert tier.remaining == 8  # the warm-up's win and this one
    assert fund_balances(fund)["reserved"] == Decimal("40.00")
    assert ledger_verify() == []


def test_a_win_the_fund_cannot_cover_enters_the_invoice_without_a_prize(
    consumer, campaign, merchant, make_record, queued, monkeypatch
):
    """30 yuan in the fund: the warm-up's 20-yuan win takes 20, this one would overdraw it.
    The balance CHECK fails the win's round trip; its savepoint undoes the stock and quota
    UPDATEs; the invoice enters with no prize and the fund is as the warm-up left it."""
    tier = instant_pool(campaign, funds="30.00")
    fund = Fund.objects.get(campaign=campaign, is_default=True)
    # After the ROLLBACK TO SAVEPOINT psycopg forgets its prepared statements (rare: a fund
    # run dry), and says so to the server.
    response, _trips, _sent = submit_measured(
        consumer, campaign, make_record, monkeypatch, own_commands=["DEALLOCATE ALL"]
    )
    body = response.json()
    assert body["invoice"]["status"] == "accepted" and body["instant_prize"] is None
    tier.refresh_from_db()
    assert tier.remaining == 9
    assert InstantDailyQuota.objects.get(tier=tier).awarded == 1
    assert not Award.objects.filter(consumer=consumer).exists()
    assert not InstantAward.objects.filter(invoice__consumer=consumer).exists()
    assert fund_balances(fund) | {"budget": None} == {
        "budget": None,
        "available": Decimal("10.00"),
        "reserved": Decimal("20.00"),
        "paid": Decimal("0"),
        "tax_withheld": Decimal("0"),
    }
    invoice = Invoice.objects.get(consumer=consumer)
    assert InstantDrawResult.objects.get(invoice=invoice).won is False
    assert ledger_verify() == []


def test_a_win_past_its_quota_leaves_the_stock_and_the_fund_untouched(
    consumer, campaign, merchant, make_record, queued, monkeypatch
):
    """A quota of one: the warm-up takes it. This win's take finds no quota left and changes
    nothing: no stock, no balance, and no `ROLLBACK TO SAVEPOINT` (after which psycopg would
    forget the connection's prepared statements: `submit_measured` sees no DEALLOCATE)."""
    tier = instant_pool(campaign, quota=1)
    fund = Fund.objects.get(campaign=campaign, is_default=True)
    response, _trips, _sent = submit_measured(consumer, campaign, make_record, monkeypatch)
    assert response.json()["instant_prize"] is None
    tier.refresh_from_db()
    assert tier.remaining == 9
    assert fund_balances(fund)["reserved"] == Decimal("20.00")
    assert not Award.objects.filter(consumer=consumer).exists()
    assert ledger_verify() == []


def test_a_win_whose_cached_accounts_name_no_account_is_undone(
    consumer, campaign, merchant, make_record, queued, monkeypatch
):
    """Account ids from the prize cache that name no account (cannot happen while the cache's
    generations hold): the take's stock is counted but no balance moves, so the savepoint
    undoes it; the invoice enters without a prize and nothing of the win stays."""
    from apps.prizes import services as prize_services
    from apps.prizes.choices import AccountKind

    tier = instant_pool(campaign)
    real = prize_services.cached_account_ids

    def stale(fund_id):
        return {**real(fund_id), AccountKind.AVAILABLE: 10**9}

    warm_up(campaign, make_record)
    monkeypatch.setattr(prize_services, "cached_account_ids", stale)
    client = signed_in(consumer)
    _record, body = make_record()
    response = submit(client, body)
    assert response.status_code == 201, response.content
    assert response.json()["instant_prize"] is None
    tier.refresh_from_db()
    assert tier.remaining == 9  # the warm-up's win only
    assert InstantDailyQuota.objects.get(tier=tier).awarded == 1
    assert not Award.objects.filter(consumer=consumer).exists()
    assert ledger_verify() == []


def test_a_number_taken_by_a_concurrent_submission_at_the_commit_is_a_duplicate(
    consumer, campaign, merchant, make_record, queued, monkeypatch
):
    """The duplicate check passed (the other submission had not committed yet): the invoice's
    INSERT, sent with the decision's last round trip, fails on the partial unique index. The
    attempt is recorded as rejected, nothing of the decision stays, and the reply is stored."""
    from tests.factories.core import ConsumerFactory

    _record, body = make_record()
    first = submit(signed_in(ConsumerFactory(real_name="张三")), body)
    assert first.status_code == 201, first.content
    # As if the first had not committed when the second looked.
    monkeypatch.setattr(
        services,
        "_number_is_live_query",
        lambda number: ("SELECT 1 WHERE %s = ''", [number]),
    )
    with production_round_trips(monkeypatch) as (trips, _sent):
        response = submit(signed_in(consumer), body, key="lost-race-key-1")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "invoice.duplicate"
    # The decision's batch carried the INSERT that failed, with the COMMIT that never ran.
    assert trips.matching("INSERT INTO", Invoice._meta.db_table)
    assert Invoice.objects.filter(number=body["number"], status="accepted").count() == 1
    mine = Invoice.objects.get(number=body["number"], consumer=consumer)
    assert (mine.status, mine.rejection_code) == ("rejected", "invoice.duplicate")
    assert not mine.history.exclude(to_status="rejected").exists()
    record = IdempotencyRecord.objects.get(key="lost-race-key-1")
    assert (record.state, record.response_status) == (IdempotencyRecord.State.COMPLETED, 409)


def test_another_integrity_error_at_the_commit_is_not_taken_for_a_duplicate(
    consumer, campaign, merchant, make_record, queued, monkeypatch
):
    """Only the live number's unique index means "duplicate": any other failure of the last
    round trip is a server fault (500), and nothing is recorded."""
    from django.db import IntegrityError

    real = services._history_steps

    def failing(invoice, steps, actor=None):
        real(invoice, steps, actor)
        if invoice.status == "accepted":  # the decision's batch only (not a rejection's)
            from apps.common.queries import write_later

            write_later("INSERT INTO invoices_invoicestatuschange (invoice_id) VALUES (NULL)")

    monkeypatch.setattr(services, "_history_steps", failing)
    _record, body = make_record()
    client = signed_in(consumer)
    client.raise_request_exception = True
    with pytest.raises(IntegrityError):
        submit(client, body, key="other-error-key-1")
    assert not Invoice.objects.filter(number=body["number"]).exists()
    assert not IdempotencyRecord.objects.filter(key="other-error-key-1").exists()


def test_a_consumer_frozen_before_the_lock_is_judged_by_the_locked_row(
    consumer, campaign, merchant, make_record, monkeypatch
):
    """The checks that need no count run on the consumer as the request loaded it, before the
    lock's round trip; the locked row decides. Frozen in between: rejected as frozen."""
    from apps.accounts.choices import ConsumerStatus
    from apps.accounts.models import Consumer

    real = services.eligibility_failure

    def freezing(**kwargs):
        Consumer.objects.filter(pk=consumer.pk).update(status=ConsumerStatus.FROZEN)
        return real(**kwargs)

    monkeypatch.setattr(services, "eligibility_failure", freezing)
    _record, body = make_record()
    response = submit(signed_in(consumer), body)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "consumer.frozen"
    invoice = Invoice.objects.get(number=body["number"])
    assert (invoice.status, invoice.rejection_code) == ("rejected", "consumer.frozen")
