"""Queued rollups (`REPORTING_ROLLUPS_QUEUED`): a change writes its subject's id to
`RollupChange` in its own transaction and `rollups.drain()` recounts later.

- the submission hot path's query counts in queued mode (the inline rollup statements replaced
  by one INSERT), and the drained figures equal the inline ones;
- the randomised sequence of the property test, queued then drained, equals a from-scratch
  recomputation (and does not before the drain: the queue is real);
- rolled-back changes leave nothing queued, and the drain skips subjects that do not exist;
- a failing drain keeps the queue; two drains at once: the second returns 0 at once;
- the drain task is kicked once per delay; `reporting_rebuild --check` drains first;
- `rollups.inline()`.
"""

# The fixtures imported from the submission tests are parameters of the tests below.
# ruff: noqa: F811
from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.invoices.models import Invoice
from apps.prizes.models import Award
from apps.reporting import rebuild, rollups
from apps.reporting.models import (
    AwardFact,
    AwardRollup,
    DailyRollup,
    InvoiceFact,
    OutboxEvent,
    RejectionRollup,
    RollupChange,
)
from tests.factories.core import ConsumerFactory
from tests.invoices.conftest import (  # noqa: F401  (fixtures)
    campaign,
    consumer,
    make_record,
    submit,
)
from tests.invoices.test_submission_querycount import (  # noqa: F401  (fixtures)
    ACCEPTED_QUERIES,
    DUPLICATE_QUERIES,
    INSTANT_WIN_QUERIES,
    merchant,
    signed_in,
    sure_win,
    warm_up,
)
from tests.prizes.helpers import instant_win, prize_campaign
from tests.reporting.helpers import submit as service_submit
from tests.reporting.helpers import world
from tests.reporting.test_rollup_property import OPS, _run, assert_counted, property_world

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# The inline path's rollup statements at the end of the decision transaction: fact (old read +
# new written), participation keys, every shared rollup row, outbox events.
INLINE_ROLLUP_STATEMENTS = 4
# The award's own rollup statements on the inline instant-win path: its fact and its cell (its
# outbox event shares the invoice's INSERT).
INLINE_AWARD_ROLLUP_STATEMENTS = 2
# Queued, all of them are one `INSERT INTO reporting_rollupchange` (every id of the deferred
# batch in it: the invoice's, and on an instant win the award's too), and that INSERT joins
# the statement of the transaction's other batched writes (`apps.common.queries.fused_writes`):
# no statement of its own.
QUEUE_INSERT = 0
# Accepted: 8 + session (12 - 4) — 1 user + consumer, 2 idempotency claim with the duplicate
# check and the registry record, 3 savepoint, 4 consumer lock (with generic plans and the
# invoice's id), 5 caps with 6 risk features, then batched as one statement: 7 the invoice,
# its history, *the queue INSERT* (where fact, participation keys, shared rollups and outbox
# were) and the idempotency reply; 8 release.
QUEUED_ACCEPTED_QUERIES = ACCEPTED_QUERIES - INLINE_ROLLUP_STATEMENTS + QUEUE_INSERT
# Rejected duplicate: 7 + session (11 - 4) — 1 user + consumer, 2 idempotency claim with the
# duplicate check and the registry record, 3 savepoint, 4 INSERT, batched as one statement:
# 5 history and *the queue INSERT*; 6 release, 7 idempotency reply.
QUEUED_DUPLICATE_QUERIES = DUPLICATE_QUERIES - INLINE_ROLLUP_STATEMENTS + QUEUE_INSERT
# Instant win: 13 + session (19 - 4 - 2) — the accepted path's 8 and the draw's 5 (win
# savepoint, the take — stock, quota and the fund's two balances in one statement —, the ids
# of the instant award and the award, the savepoint's release splitting the batch: the invoice
# with its history before it, one more statement), without the award's fact and cell: the
# award's id rides in the invoice's queue INSERT.
QUEUED_INSTANT_WIN_QUERIES = (
    INSTANT_WIN_QUERIES - INLINE_ROLLUP_STATEMENTS - INLINE_AWARD_ROLLUP_STATEMENTS + QUEUE_INSERT
)


@pytest.fixture
def queued(settings):
    settings.REPORTING_ROLLUPS_QUEUED = True
    return settings


def queue() -> list[tuple[int, int]]:
    return sorted(RollupChange.objects.values_list("kind", "subject_id"))


def events_by_stream(since: int) -> dict[str, list[int]]:
    """Outbox events written after id `since`: {stream: [seq, ...]}."""
    out: dict[str, list[int]] = {}
    for stream, seq in (
        OutboxEvent.objects.filter(pk__gt=since).order_by("pk").values_list("stream", "seq")
    ):
        out.setdefault(stream, []).append(seq)
    return out


def last_event_id() -> int:
    return OutboxEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def submit_queued(settings, consumer, make_record, django_assert_num_queries, queries):
    """Switch to queued rollups and submit a fresh invoice as `consumer`, in `queries`
    statements; the 201 response and the body sent."""
    settings.REPORTING_ROLLUPS_QUEUED = True
    client = signed_in(consumer)
    _record, body = make_record()
    with django_assert_num_queries(queries):
        response = submit(client, body)
    assert response.status_code == 201, response.content
    return response, body


# --- 1. query counts through the API ------------------------------------------------------------


def test_queued_counts_are_the_inline_ones_less_the_rollups():
    assert QUEUED_ACCEPTED_QUERIES == ACCEPTED_QUERIES - 4
    assert QUEUED_DUPLICATE_QUERIES == DUPLICATE_QUERIES - 4
    assert QUEUED_INSTANT_WIN_QUERIES == INSTANT_WIN_QUERIES - 6


def test_a_queued_accepted_submission_makes_a_pinned_number_of_queries(
    settings, consumer, campaign, merchant, make_record, kicks, django_assert_num_queries
):
    # The warm-up is counted inline: the same submission by someone else, the reference.
    warm_up(campaign, make_record)
    reference = events_by_stream(0)
    cell = DailyRollup.objects.get(campaign_id=campaign.pk)
    assert (cell.submitted, cell.accepted, cell.participants, cell.version) == (1, 1, 1, 1)
    before = last_event_id()

    response, body = submit_queued(
        settings, consumer, make_record, django_assert_num_queries, QUEUED_ACCEPTED_QUERIES
    )
    assert response.json()["invoice"]["status"] == "accepted"
    invoice = Invoice.objects.get(number=body["number"])
    # Nothing counted yet: no fact, the cell as it was, no event; the id is queued.
    assert not InvoiceFact.objects.filter(invoice_id=invoice.pk).exists()
    cell.refresh_from_db()
    assert (cell.submitted, cell.accepted, cell.participants, cell.version) == (1, 1, 1, 1)
    assert last_event_id() == before
    assert queue() == [(RollupChange.KIND_INVOICE, invoice.pk)]

    assert rollups.drain() == 1
    assert queue() == []
    fact = InvoiceFact.objects.get(invoice_id=invoice.pk)
    assert (fact.status, fact.area_code, fact.industry_code) == ("accepted", "410105", "52")
    cell.refresh_from_db()
    assert (cell.submitted, cell.accepted, cell.participants, cell.version) == (2, 2, 2, 2)
    # The same events as the identical inline submission wrote: the same streams, one step on.
    assert events_by_stream(before) == {
        stream: [seqs[-1] + 1] for stream, seqs in reference.items()
    }
    event = OutboxEvent.objects.filter(stream=f"invoices/{cell.pk}").order_by("-seq").first()
    assert event.seq == cell.version and event.payload["accepted"] == 2
    assert event.payload["campaign"] == campaign.code
    assert rebuild.differences() == {}


def test_a_queued_rejected_duplicate_makes_a_pinned_number_of_queries(
    queued, consumer, campaign, merchant, make_record, kicks, django_assert_num_queries
):
    warm_up(campaign, make_record)
    client = signed_in(consumer)
    _record, body = make_record()
    assert submit(client, body).status_code == 201
    with django_assert_num_queries(QUEUED_DUPLICATE_QUERIES):
        response = submit(client, body)
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "invoice.duplicate"
    rejected = Invoice.objects.get(number=body["number"], status="rejected")
    assert (RollupChange.KIND_INVOICE, rejected.pk) in queue()
    assert len(queue()) == 3  # warm-up, first entry, duplicate
    assert not InvoiceFact.objects.exists()
    assert not DailyRollup.objects.exists() and not OutboxEvent.objects.exists()

    assert rollups.drain() == 3
    cell = DailyRollup.objects.get(campaign_id=campaign.pk)
    assert (cell.submitted, cell.accepted, cell.participants) == (2, 2, 2)
    assert RejectionRollup.objects.get().reason == "invoice.duplicate"
    assert InvoiceFact.objects.get(invoice_id=rejected.pk).status == "rejected"
    assert rebuild.differences() == {}


def test_a_queued_instant_win_makes_a_pinned_number_of_queries(
    settings, consumer, campaign, merchant, make_record, sure_win, kicks,
    django_assert_num_queries,
):  # fmt: skip
    warm_up(campaign, make_record)  # inline, and it wins too: the reference
    reference = events_by_stream(0)
    before = last_event_id()
    awards = AwardRollup.objects.get()
    assert (awards.awarded, awards.version) == (1, 1)

    response, body = submit_queued(
        settings, consumer, make_record, django_assert_num_queries, QUEUED_INSTANT_WIN_QUERIES
    )
    assert response.json()["instant_prize"]["tier"] == "20元现金"
    invoice = Invoice.objects.get(number=body["number"])
    award = Award.objects.get(invoice=invoice)
    assert queue() == [
        (RollupChange.KIND_INVOICE, invoice.pk),
        (RollupChange.KIND_AWARD, award.pk),
    ]
    assert not InvoiceFact.objects.filter(invoice_id=invoice.pk).exists()
    assert not AwardFact.objects.filter(award_id=award.pk).exists()
    awards.refresh_from_db()
    assert (awards.awarded, awards.version) == (1, 1)
    assert last_event_id() == before

    assert rollups.drain() == 2
    awards.refresh_from_db()
    assert (awards.awarded, awards.awarded_amount, awards.version) == (2, Decimal("40.00"), 2)
    cell = DailyRollup.objects.get(campaign_id=campaign.pk)
    assert (cell.submitted, cell.accepted, cell.participants) == (2, 2, 2)
    assert events_by_stream(before) == {
        stream: [seqs[-1] + 1] for stream, seqs in reference.items()
    }
    assert rebuild.differences() == {}


# --- 2. the property: queued, then drained ------------------------------------------------------


@hypothesis_settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=14))
def test_queued_rollups_drained_equal_a_from_scratch_recomputation(prize_world, queued, kicks, ops):
    with transaction.atomic():
        w, accounts = property_world(prize_world)
        for op in ops:
            _run(op, w, accounts)
        # Nothing counted yet; every invoice and award is queued.
        assert not InvoiceFact.objects.exists() and not AwardFact.objects.exists()
        entries = queue()
        invoices = {
            (RollupChange.KIND_INVOICE, pk) for pk in Invoice.objects.values_list("pk", flat=True)
        }
        awards = {
            (RollupChange.KIND_AWARD, pk) for pk in Award.objects.values_list("pk", flat=True)
        }
        assert set(entries) == invoices | awards
        if entries:
            assert rebuild.differences() != {}  # the queue is real: the rollups trail
        # Small batches: several transactions, a subject queued twice may span two of them.
        assert rollups.drain(batch_size=3) == len(entries)
        assert queue() == []
        assert_counted()
        transaction.set_rollback(True)


# --- 3. rolled-back changes ---------------------------------------------------------------------


def test_a_change_rolled_back_leaves_nothing_queued(queued, kicks, consumer):
    campaign = prize_campaign()
    invoice = service_submit(consumer, world([consumer], campaign).merchants[0])
    assert queue() == [(RollupChange.KIND_INVOICE, invoice.pk)]
    RollupChange.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        rollups.invoice_changed(invoice)
        rollups.enqueue(invoice_ids=[invoice.pk], award_ids=[1])
        assert len(queue()) == 3  # one row per call: the drain counts a subject once
        raise RuntimeError("undo")
    assert queue() == []


def test_an_award_whose_savepoint_rolled_back_is_not_queued_and_skipped_by_the_drain(queued, kicks):
    campaign = prize_campaign()
    consumer = ConsumerFactory(real_name="张三")
    # Directly: the award's INSERT into the queue is in its savepoint.
    with pytest.raises(RuntimeError), transaction.atomic():
        award = instant_win(campaign, consumer, Decimal("20.00"))
        assert (RollupChange.KIND_AWARD, award.pk) in queue()
        raise RuntimeError("undo")
    assert queue() == []
    assert not Award.objects.filter(pk=award.pk).exists()
    # Deferred (the submission's way): the collected id of the undone award is dropped.
    kept = instant_win(campaign, consumer, Decimal("10.00"))
    RollupChange.objects.all().delete()
    with transaction.atomic(), rollups.deferred():
        rollups.invoice_changed(kept.invoice)
        with pytest.raises(RuntimeError), transaction.atomic():
            undone = instant_win(campaign, consumer, Decimal("30.00"))
            raise RuntimeError("undo")
    assert queue() == [(RollupChange.KIND_INVOICE, kept.invoice_id)]
    assert not Award.objects.filter(pk=undone.pk).exists()
    # Ids whose rows are gone (queued by hand here) are consumed and skipped, no error; the
    # live subjects of the same batch are counted.
    rollups.enqueue(
        invoice_ids=[undone.invoice_id + 1000], award_ids=[award.pk, undone.pk, kept.pk]
    )
    assert rollups.drain() == 5
    assert queue() == []
    assert set(AwardFact.objects.values_list("award_id", flat=True)) == {kept.pk}
    assert set(InvoiceFact.objects.values_list("invoice_id", flat=True)) == {kept.invoice_id}
    # A batch of nothing but missing ids is consumed too.
    rollups.enqueue(award_ids=[award.pk])
    assert rollups.drain() == 1
    assert queue() == []


# --- 4. a failing drain keeps the queue ---------------------------------------------------------


def test_a_failing_drain_keeps_the_queue(queued, kicks, monkeypatch):
    campaign = prize_campaign()
    consumers = [ConsumerFactory(real_name="张三"), ConsumerFactory(real_name="李四")]
    w = world(consumers, campaign)
    for c in consumers:
        service_submit(c, w.merchants[0])
    entries = queue()
    assert len(entries) == 2

    def boom(invoices, awards):
        raise RuntimeError("rollups down")

    real = rollups._apply_snapshots
    monkeypatch.setattr(rollups, "_apply_snapshots", boom)
    with pytest.raises(RuntimeError, match="rollups down"):
        rollups.drain()
    assert queue() == entries
    assert not InvoiceFact.objects.exists() and not DailyRollup.objects.exists()

    monkeypatch.setattr(rollups, "_apply_snapshots", real)
    assert rollups.drain() == 2
    assert queue() == []
    assert DailyRollup.objects.get(campaign_id=campaign.pk).submitted == 2
    assert rebuild.differences() == {}


# --- 5. two drains at once ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_second_drain_returns_at_once_while_one_runs(queued, kicks, monkeypatch):
    campaign = prize_campaign()
    consumers = [ConsumerFactory(real_name=n) for n in ("张三", "李四", "王五")]
    w = world(consumers, campaign)
    for i, c in enumerate(consumers):
        service_submit(c, w.merchants[i])
    assert kicks  # committed for real: a drain was asked for (recorded, not run)
    entries = queue()
    assert len(entries) == 3
    assert rebuild.differences() != {}

    entered, release = threading.Event(), threading.Event()
    real = rollups._apply_snapshots

    def held(invoices, awards):
        if threading.current_thread().name == "first-drain":
            entered.set()
            assert release.wait(30)
        return real(invoices, awards)

    monkeypatch.setattr(rollups, "_apply_snapshots", held)
    results: dict[str, object] = {}

    def run(name):
        try:
            results[name] = rollups.drain()
        except Exception as exc:  # reported below
            results[name] = exc
        finally:
            connection.close()

    first = threading.Thread(target=run, args=("first-drain",), name="first-drain")
    first.start()
    try:
        assert entered.wait(30), results
        started = time.monotonic()
        asked = len(kicks)
        second = threading.Thread(target=run, args=("second-drain",), name="second-drain")
        second.start()
        second.join(10)
        assert not second.is_alive(), "the second drain waited for the first"
        assert time.monotonic() - started < 5
        assert results["second-drain"] == 0
        # ... and asked for another drain a delay later: what the first misses is not left
        # for the minute beat.
        assert kicks[asked:] == [{"countdown": queued.REPORTING_ROLLUPS_DRAIN_DELAY}]
        # The first holds the queue (deleted, not committed): still there for everyone else.
        assert queue() == entries
    finally:
        release.set()
        first.join(30)
    assert results["first-drain"] == 3
    assert queue() == []
    assert rebuild.differences() == {}


# --- 6. the drain task is kicked once per delay -------------------------------------------------


def test_changes_in_a_row_kick_one_drain(
    queued, kicks, monkeypatch, consumer, django_capture_on_commit_callbacks
):
    queued.REPORTING_ROLLUPS_DRAIN_DELAY = 7
    assert rollups._last_kick == [0.0]  # this process never kicked (`kicks`)
    cache.delete(rollups.DRAIN_CACHE_KEY)
    w = world([consumer], prize_campaign())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            service_submit(consumer, w.merchants[0])
        with transaction.atomic():
            service_submit(consumer, w.merchants[1])
    assert sum(cb is rollups._kick_drain for cb in callbacks) == 2
    assert kicks == [{"countdown": 7}]
    assert len(queue()) == 2
    # Another process (its own `_last_kick`) within the delay: the cache key says queued.
    assert cache.get(rollups.DRAIN_CACHE_KEY) is not None
    rollups._last_kick[0] = 0.0
    rollups._kick_drain()
    assert kicks == [{"countdown": 7}]
    # This process within the delay does not even ask the cache.
    cache.delete(rollups.DRAIN_CACHE_KEY)
    rollups._kick_drain()
    assert kicks == [{"countdown": 7}]
    # Once the delay has passed (and the key with it), the next change kicks again.
    rollups._last_kick[0] = 0.0
    cache.delete(rollups.DRAIN_CACHE_KEY)
    rollups._kick_drain()
    assert kicks == [{"countdown": 7}, {"countdown": 7}]


def test_a_drain_forgets_the_queued_marker_so_later_changes_kick_again(queued, kicks):
    cache.set(rollups.DRAIN_CACHE_KEY, 1, timeout=60)
    assert rollups.drain() == 0
    assert cache.get(rollups.DRAIN_CACHE_KEY) is None


# --- 7. reporting_rebuild --check drains first --------------------------------------------------


def test_the_check_command_drains_first(queued, kicks, consumer):
    w = world([consumer], prize_campaign())
    service_submit(consumer, w.merchants[0])
    service_submit(consumer, w.merchants[1], name_ok=False)
    assert len(queue()) == 2
    assert rebuild.differences() != {}
    call_command("reporting_rebuild", "--check")
    assert queue() == []
    assert DailyRollup.objects.exists()
    assert rebuild.differences() == {}


# --- 8. inline() --------------------------------------------------------------------------------


def test_inline_applies_rollups_whatever_the_setting(queued, kicks, consumer):
    assert rollups.queued()
    with rollups.inline():
        assert not rollups.queued()
        with rollups.inline():
            assert not rollups.queued()
        assert not rollups.queued()  # the inner block restores the outer's
        w = world([consumer], prize_campaign())
        invoice = service_submit(consumer, w.merchants[0])
    assert rollups.queued()
    assert queue() == []
    assert InvoiceFact.objects.filter(invoice_id=invoice.pk).exists()
    assert rebuild.differences() == {}
    queued.REPORTING_ROLLUPS_QUEUED = False
    assert not rollups.queued()
