"""The periodic draw's lifecycle through its services (SQLite and PostgreSQL).

Happy path with history and audit; the two-person rule; no second run; immutability after the
freeze (database triggers and service refusals); who gets a ticket (TEST_CHECKLIST 33); per-
holder caps; replay from stored data (30); disqualification and substitutes (spec §6);
permissions; the scheduled freeze.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.accounts.choices import ConsumerStatus
from apps.audit.models import AuditEvent
from apps.common.exceptions import DomainError, InvalidTransition
from apps.common.schedules import SCHEDULES
from apps.draws import engine, selectors, services
from apps.draws.choices import DrawStatus
from apps.draws.exceptions import DrawError
from apps.draws.models import (
    DrawStatusChange,
    DrawTicket,
    DrawTier,
    DrawWinner,
    InstantAward,
    InstantPool,
    InstantTier,
    PeriodicDraw,
)
from apps.draws.services import TierSpec
from apps.draws.tasks import freeze_due_draws
from apps.invoices.choices import InvoiceStatus
from apps.merchants.choices import MerchantStatus
from tests.draws.conftest import (
    SOURCE,
    add_entries,
    drawn_draw,
    frozen_draw,
    make_staff,
    new_draw,
    published_draw,
)
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    InvoiceFactory,
    MerchantFactory,
)

pytestmark = pytest.mark.django_db


def winners_of(draw):
    return list(
        DrawWinner.objects.filter(draw=draw)
        .order_by("counter")
        .values_list("rank", "slot", "ticket_no", "counter", "substitute_for", "disqualified")
    )


# --- happy path -------------------------------------------------------------------------------


def test_whole_lifecycle_with_history_and_audit(
    campaign, manager, officer_a, officer_b, disqualifier, window
):
    entries = add_entries(campaign, 40, start=window[0])
    draw = new_draw(campaign, manager, window)
    assert draw.status == DrawStatus.SCHEDULED and draw.seed_commitment == ""

    draw = services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    assert draw.status == DrawStatus.COMMITTED
    assert len(draw.seed_commitment) == 64
    # The seed is ciphertext at rest, and its commitment matches.
    with connection.cursor() as cursor:
        cursor.execute("SELECT server_seed FROM draws_periodicdraw WHERE id = %s", [draw.pk])
        (stored,) = cursor.fetchone()
    fresh = PeriodicDraw.objects.get(pk=draw.pk)
    assert fresh.server_seed not in stored and len(bytes.fromhex(fresh.server_seed)) == 32
    assert engine.seed_commitment(bytes.fromhex(fresh.server_seed)) == draw.seed_commitment

    with time_machine.travel(window[2] + timedelta(minutes=1)):
        draw = services.draw_freeze(draw=draw, actor=manager)
    assert draw.status == DrawStatus.FROZEN and draw.ticket_count == 40
    tickets = list(DrawTicket.objects.filter(draw=draw).order_by("ticket_no"))
    assert [t.invoice_id for t in tickets] == [e.pk for e in entries]
    assert tickets[0].entry_ref == engine.entry_ref(draw.code, entries[0].number)
    assert tickets[0].holder_ref == engine.holder_ref(draw.code, str(entries[0].consumer.public_id))
    digest = engine.TicketsDigest()
    digest.add_many((t.ticket_no, t.entry_ref, t.holder_ref) for t in tickets)
    assert digest.hexdigest() == draw.tickets_digest

    draw = services.draw_record_randomness(draw=draw, value=" 4 7 1 ", actor=manager)
    assert draw.public_randomness == "4 7 1"
    draw = services.draw_start(draw=draw, actor=officer_a)
    assert draw.status == DrawStatus.RANDOMNESS_RECORDED and draw.started_by == officer_a
    draw = services.draw_confirm(draw=draw, actor=officer_b)
    assert draw.status == DrawStatus.DRAWN and draw.confirmed_by == officer_b
    assert len(winners_of(draw)) == 6
    assert PeriodicDraw.objects.get(pk=draw.pk).revealed_seed == ""

    draw = services.draw_publish(draw=draw, actor=manager)
    assert draw.revealed_seed == fresh.server_seed
    assert draw.notice_ends_at == draw.published_at + timedelta(days=7)

    first = DrawWinner.objects.filter(draw=draw).order_by("counter").first()
    sub = services.draw_disqualify(
        draw=draw, ticket_no=first.ticket_no, reason="red_flushed", actor=disqualifier
    )
    assert sub is not None and sub.substitute_for == first.ticket_no
    assert (sub.rank, sub.slot) == (first.rank, first.slot)

    with pytest.raises(DrawError) as exc:
        services.draw_finalise(draw=draw, actor=manager)
    assert exc.value.code == "draw.notice_period_running"
    with time_machine.travel(draw.notice_ends_at + timedelta(seconds=1)):
        draw = services.draw_finalise(draw=draw, actor=manager)
    assert draw.status == DrawStatus.FINALISED

    steps = list(
        DrawStatusChange.objects.filter(draw=draw).order_by("pk").values_list("action", "to_status")
    )
    assert steps == [
        ("created", "scheduled"),
        ("committed", "committed"),
        ("frozen", "frozen"),
        ("randomness_recorded", "randomness_recorded"),
        ("started", "randomness_recorded"),
        ("drawn", "drawn"),
        ("published", "published"),
        ("winner_disqualified", "published"),
        ("finalised", "finalised"),
    ]
    audited = list(
        AuditEvent.objects.filter(category="draw", target_id=str(draw.pk))
        .order_by("seq")
        .values_list("action", "actor_id")
    )
    assert [a for a, _ in audited] == [f"draw.{action}" for action, _ in steps]
    assert ("draw.drawn", officer_b.pk) in audited and ("draw.started", officer_a.pk) in audited

    report = selectors.draw_replay(draw)
    assert report.ok, report.checks


def test_commit_only_before_the_window_closes(campaign, manager, window):
    draw = new_draw(campaign, manager, window)
    with time_machine.travel(window[1]), pytest.raises(DrawError) as exc:
        services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    assert exc.value.code == "draw.window_closed"


def test_commit_needs_a_randomness_source_and_tiers(campaign, manager, window):
    draw = new_draw(campaign, manager, window)
    with pytest.raises(DrawError) as exc:
        services.draw_commit(draw=draw, actor=manager, randomness_source="  ")
    assert exc.value.code == "draw.randomness_source_required"
    empty = new_draw(
        campaign,
        manager,
        (window[0], window[1] + timedelta(days=1), window[2] + timedelta(days=1)),
        tiers=[],
    )
    with pytest.raises(DrawError) as exc:
        services.draw_commit(draw=empty, actor=manager, randomness_source=SOURCE)
    assert exc.value.code == "draw.no_tiers"


def test_freeze_only_at_or_after_the_cutoff(campaign, manager, window):
    draw = new_draw(campaign, manager, window)
    services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    with pytest.raises(DrawError) as exc:
        services.draw_freeze(draw=draw, actor=manager)
    assert exc.value.code == "draw.before_cutoff"
    with time_machine.travel(window[2]):
        assert services.draw_freeze(draw=draw, actor=manager).status == DrawStatus.FROZEN


def test_steps_out_of_order_are_refused(campaign, manager, officer_a, window):
    draw = new_draw(campaign, manager, window)
    with pytest.raises(InvalidTransition):
        services.draw_record_randomness(draw=draw, value="1 2 3", actor=manager)
    with pytest.raises(InvalidTransition):
        services.draw_start(draw=draw, actor=officer_a)
    with pytest.raises(InvalidTransition):
        services.draw_publish(draw=draw, actor=manager)
    with time_machine.travel(window[2]), pytest.raises(InvalidTransition):
        services.draw_freeze(draw=draw, actor=manager)  # not committed


def test_one_live_draw_per_campaign_window(campaign, manager, window):
    draw = new_draw(campaign, manager, window)
    with pytest.raises(IntegrityError), transaction.atomic():
        new_draw(campaign, manager, window)
    services.draw_cancel(draw=draw, reason="wrong tiers", actor=manager)
    assert new_draw(campaign, manager, window).status == DrawStatus.SCHEDULED


# --- two people, one run (TEST_CHECKLIST 34) --------------------------------------------------


def test_the_starter_cannot_confirm(campaign, manager, officer_a, officer_b, window):
    add_entries(campaign, 10, start=window[0])
    draw = frozen_draw(campaign, manager, window)
    services.draw_record_randomness(draw=draw, value="7 7 7", actor=manager)
    with pytest.raises(DrawError) as exc:
        services.draw_confirm(draw=draw, actor=officer_a)
    assert exc.value.code == "draw.not_started"
    services.draw_start(draw=draw, actor=officer_a)
    with pytest.raises(DrawError) as exc:
        services.draw_confirm(draw=draw, actor=officer_a)
    assert exc.value.code == "draw.same_person"
    refusal = AuditEvent.objects.get(action="draw.confirm_refused")
    assert (refusal.actor_id, refusal.outcome) == (officer_a.pk, "denied")
    assert PeriodicDraw.objects.get(pk=draw.pk).status == DrawStatus.RANDOMNESS_RECORDED
    assert not DrawWinner.objects.filter(draw=draw).exists()
    with pytest.raises(DrawError) as exc:
        services.draw_start(draw=draw, actor=officer_b)
    assert exc.value.code == "draw.already_started"
    assert services.draw_confirm(draw=draw, actor=officer_b).status == DrawStatus.DRAWN


def test_two_person_rule_is_a_database_constraint(campaign, manager, officer_a, window):
    draw = new_draw(campaign, manager, window)
    with pytest.raises(IntegrityError), transaction.atomic():
        PeriodicDraw.objects.filter(pk=draw.pk).update(started_by=officer_a, confirmed_by=officer_a)


def test_a_draw_never_runs_twice(campaign, manager, officer_a, officer_b, window):
    add_entries(campaign, 12, start=window[0])
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    before = winners_of(draw)
    third = make_staff("officer_c", "draws.execute_draw")
    for actor in (officer_a, officer_b, third):
        with pytest.raises(DrawError) as exc:
            services.draw_confirm(draw=draw, actor=actor)
        assert exc.value.code == "draw.already_drawn"
        with pytest.raises(DrawError):
            services.draw_start(draw=draw, actor=actor)
    assert winners_of(draw) == before
    # Even a writer that skipped every check cannot record a second original winner.
    row = DrawWinner.objects.filter(draw=draw).first()
    other = (
        DrawTicket.objects.filter(draw=draw)
        .exclude(pk=row.ticket_id)
        .exclude(ticket_no__in=[w[2] for w in before])
        .first()
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        DrawWinner.objects.create(
            draw=draw,
            tier_id=row.tier_id,
            rank=row.rank,
            slot=row.slot,
            ticket=other,
            ticket_no=other.ticket_no,
            counter=10_000,
        )


def test_no_cancel_after_the_draw(campaign, manager, officer_a, officer_b, window):
    add_entries(campaign, 5, start=window[0])
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    with pytest.raises(InvalidTransition):
        services.draw_cancel(draw=draw, reason="too late", actor=manager)


def test_cancel_needs_a_reason(campaign, manager, window):
    draw = new_draw(campaign, manager, window)
    with pytest.raises(DrawError) as exc:
        services.draw_cancel(draw=draw, reason=" ", actor=manager)
    assert exc.value.code == "draw.reason_required"
    draw = services.draw_cancel(draw=draw, reason="duplicate", actor=manager)
    assert draw.status == DrawStatus.CANCELLED and draw.cancel_reason == "duplicate"


# --- permissions ------------------------------------------------------------------------------


def test_every_step_checks_the_actors_permission(
    campaign, manager, officer_a, officer_b, disqualifier, window
):
    nobody = make_staff("viewer", "draws.view_periodicdraw")
    with pytest.raises(DrawError) as exc:
        new_draw(campaign, nobody, window)
    assert exc.value.code == "draw.permission_denied" and exc.value.status_code == 403
    draw = new_draw(campaign, manager, window)
    for call in (
        lambda: services.draw_commit(draw=draw, actor=officer_a, randomness_source=SOURCE),
        lambda: services.draw_cancel(draw=draw, reason="x", actor=disqualifier),
        lambda: services.draw_commit(draw=draw, actor=None, randomness_source=SOURCE),
    ):
        with pytest.raises(DrawError):
            call()
    add_entries(campaign, 5, start=window[0])
    services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    with time_machine.travel(window[2]):
        with pytest.raises(DrawError):
            services.draw_freeze(draw=draw, actor=officer_a)
        services.draw_freeze(draw=draw, actor=manager)
    services.draw_record_randomness(draw=draw, value="1", actor=manager)
    with pytest.raises(DrawError):
        services.draw_start(draw=draw, actor=manager)  # managing is not executing
    services.draw_start(draw=draw, actor=officer_a)
    with pytest.raises(DrawError):
        services.draw_confirm(draw=draw, actor=manager)
    services.draw_confirm(draw=draw, actor=officer_b)
    with pytest.raises(DrawError):
        services.draw_publish(draw=draw, actor=officer_b)
    services.draw_publish(draw=draw, actor=manager)
    ticket = DrawWinner.objects.filter(draw=draw).first().ticket_no
    with pytest.raises(DrawError):
        services.draw_disqualify(draw=draw, ticket_no=ticket, reason="fraud", actor=manager)


# --- immutability after the freeze (TEST_CHECKLIST 31) ---------------------------------------


def _refused(write):
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


def test_tickets_and_tiers_are_immutable_after_the_freeze(campaign, manager, window):
    entries = add_entries(campaign, 6, start=window[0])
    draw = frozen_draw(campaign, manager, window)
    tickets = DrawTicket.objects.filter(draw=draw)
    tiers = DrawTier.objects.filter(draw=draw)
    late = InvoiceFactory(
        campaign=campaign, status=InvoiceStatus.ACCEPTED, entered_at=window[0] + timedelta(1)
    )
    # The database refuses (a trigger on SQLite and on PostgreSQL) ...
    _refused(lambda: tickets.filter(ticket_no=1).update(holder_ref="0" * 16))
    _refused(lambda: tickets.filter(ticket_no=2).delete())
    _refused(
        lambda: DrawTicket.objects.create(
            draw=draw,
            ticket_no=7,
            invoice=late,
            entry_ref="0" * 16,
            holder_ref="0" * 16,
            eligible_at=timezone.now(),
        )
    )
    _refused(lambda: tiers.update(amount=Decimal("900.00")))
    _refused(lambda: tiers.filter(rank=3).delete())
    _refused(lambda: DrawTier.objects.create(draw=draw, rank=9, name="加奖", amount=1, count=1))
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(ticket_count=7))
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(tickets_digest="0" * 64))
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(per_holder_limit=3))
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(seed_commitment="0" * 64))
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(randomness_source="other"))
    # ... and so do the services, everywhere.
    with pytest.raises(DrawError) as exc:
        services.draw_set_tiers(draw=draw, tiers=[TierSpec(1, "一等奖", 1000, 1)], actor=manager)
    assert exc.value.code == "draw.not_editable"
    draw.per_holder_limit = 5
    with pytest.raises(DrawError):
        services.draw_save(draw=draw, actor=manager)
    assert tickets.count() == len(entries)
    assert PeriodicDraw.objects.get(pk=draw.pk).per_holder_limit == 1


def test_commitment_is_immutable_once_committed(campaign, manager, window):
    draw = new_draw(campaign, manager, window)
    services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(seed_commitment="0" * 64))
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(code="ZZ-OTHER"))
    # The service keeps what was committed, but tiers may still change until the freeze.
    draw = PeriodicDraw.objects.get(pk=draw.pk)
    draw.randomness_source = "another source"
    draw.per_holder_limit = 4
    draw.name = "新名称"
    services.draw_save(draw=draw, actor=manager, tiers=[TierSpec(1, "特等奖", 800, 1)])
    draw = PeriodicDraw.objects.get(pk=draw.pk)
    assert (draw.randomness_source, draw.per_holder_limit, draw.name) == (SOURCE, 1, "新名称")
    assert list(draw.tiers.values_list("name", flat=True)) == ["特等奖"]


def test_winners_cannot_be_rewritten_or_deleted(campaign, manager, officer_a, officer_b, window):
    add_entries(campaign, 8, start=window[0])
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    winners = DrawWinner.objects.filter(draw=draw)
    _refused(lambda: winners.filter(rank=1).update(ticket_no=1, counter=99))
    _refused(lambda: winners.filter(rank=1).delete())
    _refused(lambda: PeriodicDraw.objects.filter(pk=draw.pk).update(public_randomness="x"))


# --- who gets a ticket (TEST_CHECKLIST 33) ---------------------------------------------------


def test_only_eligible_entries_get_tickets_in_entry_order(campaign, manager, window):
    start = window[0]
    consumer = ConsumerFactory()
    frozen = ConsumerFactory(status=ConsumerStatus.FROZEN)
    good = MerchantFactory()
    blacklisted = MerchantFactory(status=MerchantStatus.BLACKLISTED)
    suspended = MerchantFactory(status=MerchantStatus.SUSPENDED)
    other = CampaignFactory(code="other")

    def entry(minutes, **fields):
        values = {
            "campaign": campaign,
            "consumer": consumer,
            "merchant": good,
            "status": InvoiceStatus.ACCEPTED,
            "entered_at": start + timedelta(minutes=minutes),
            **fields,
        }
        return InvoiceFactory(**values)

    eligible = [
        entry(30),
        entry(10),
        entry(10),  # same time as the one before: the invoice id decides
        entry(0),  # exactly at the window start: in
        entry(20, merchant=None),  # unknown seller: nothing against it
    ]
    for fields in (
        {"status": InvoiceStatus.PENDING, "entered_at": None},
        {"status": InvoiceStatus.HELD, "entered_at": None},
        {"status": InvoiceStatus.REJECTED, "rejection_code": "invoice.duplicate"},
        {"status": InvoiceStatus.REVERSED},
        {"merchant": blacklisted},
        {"merchant": suspended},
        {"consumer": frozen},
        {"campaign": other},
    ):
        entry(15, **fields)
    entry(-1)  # before the window
    InvoiceFactory(
        campaign=campaign,
        consumer=consumer,
        merchant=good,
        status=InvoiceStatus.ACCEPTED,
        entered_at=window[1],  # the window's end is excluded
    )
    draw = frozen_draw(campaign, manager, window)
    numbered = list(
        DrawTicket.objects.filter(draw=draw)
        .order_by("ticket_no")
        .values_list("ticket_no", "invoice_id")
    )
    expected = sorted(eligible, key=lambda i: (i.entered_at, i.pk))
    assert numbered == [(n, i.pk) for n, i in enumerate(expected, start=1)]
    # One ticket per invoice and draw, by constraint.
    _refused(
        lambda: DrawTicket.objects.create(
            draw=draw,
            ticket_no=99,
            invoice=expected[0],
            entry_ref="0" * 16,
            holder_ref="0" * 16,
            eligible_at=timezone.now(),
        )
    )


def test_instant_winners_stay_out_when_the_campaign_says_so(campaign, manager, window):
    entries = add_entries(campaign, 4, start=window[0])
    pool = InstantPool.objects.create(
        campaign=campaign,
        name="即时奖池",
        active_from=window[0],
        active_until=window[2],
    )
    tier = InstantTier.objects.create(
        pool=pool, name="5元", kind="cash", face_value=5, total_quantity=10, remaining=9
    )
    InstantAward.objects.create(
        invoice=entries[1],
        consumer=entries[1].consumer,
        pool=pool,
        tier=tier,
        kind="cash",
        amount=5,
        day=timezone.localdate(),
        drawn_at=timezone.now(),
    )
    draw = frozen_draw(campaign, manager, window)
    assert draw.ticket_count == 4
    campaign.instant_winner_enters_periodic = False
    campaign.save()
    later = (window[0], window[1] + timedelta(days=1), window[2] + timedelta(days=1))
    other = frozen_draw(campaign, manager, later)
    assert other.ticket_count == 3
    assert not DrawTicket.objects.filter(draw=other, invoice=entries[1]).exists()


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_per_holder_limit_holds(campaign, manager, officer_a, officer_b, window, limit):
    heavy = ConsumerFactory()
    others = [ConsumerFactory() for _ in range(3)]
    # The heavy consumer holds most of the tickets.
    add_entries(campaign, 40, start=window[0], consumers=[heavy] * 9 + others)
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b, limit=limit)
    holders = {}
    for ticket_no in DrawWinner.objects.filter(draw=draw).values_list("ticket_no", flat=True):
        holder = DrawTicket.objects.get(draw=draw, ticket_no=ticket_no).invoice.consumer_id
        holders[holder] = holders.get(holder, 0) + 1
    assert max(holders.values()) <= limit
    assert sum(holders.values()) == min(6, 4 * limit)  # 4 holders, 6 slots


def test_a_draw_without_tickets_fills_no_slot(campaign, manager, officer_a, officer_b, window):
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    assert draw.ticket_count == 0
    assert draw.tickets_digest == engine.TicketsDigest().hexdigest()
    assert winners_of(draw) == []


# --- replay (TEST_CHECKLIST 30) -------------------------------------------------------------


def test_replay_from_stored_data_gives_the_same_winners(
    campaign, manager, officer_a, officer_b, disqualifier, window
):
    add_entries(campaign, 30, start=window[0], consumers=[ConsumerFactory() for _ in range(12)])
    draw = published_draw(campaign, manager, window, officer_a, officer_b, limit=2)
    for _ in range(2):
        current = DrawWinner.objects.filter(draw=draw, disqualified=False).order_by("counter")
        services.draw_disqualify(
            draw=draw,
            ticket_no=current.first().ticket_no,
            reason="reverification_failed",
            actor=disqualifier,
        )
    report = selectors.draw_replay(PeriodicDraw.objects.get(pk=draw.pk))
    assert report.ok, report.checks
    assert [name for name, _ok, _detail in report.checks] == [
        "commitment",
        "digest",
        "tickets",
        "winners",
        "substitutes",
    ]
    # The engine, fed the stored inputs from scratch, agrees with the stored results.
    bundle = selectors.draw_bundle(PeriodicDraw.objects.get(pk=draw.pk))
    assert len(bundle["substitutes"]) == 2 and len(bundle["disqualified"]) == 2


def _bypassing_triggers(sql, params):
    """Tamper with the stored tickets the way only someone with database access could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql, params)
            cursor.execute("SET LOCAL session_replication_role = origin")
        else:
            cursor.execute("DROP TRIGGER drawticket_locked_update")
            cursor.execute(sql, params)


def test_replay_detects_an_edited_ticket(campaign, manager, officer_a, officer_b, window):
    add_entries(campaign, 10, start=window[0])
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    assert selectors.draw_replay(draw).ok
    _bypassing_triggers(
        "UPDATE draws_drawticket SET holder_ref = %s WHERE draw_id = %s AND ticket_no = 3",
        ["f" * 16, draw.pk],
    )
    report = selectors.draw_replay(draw)
    assert not report.ok
    assert ("digest", False) in [(name, ok) for name, ok, _ in report.checks]


def test_editing_one_entry_changes_the_digest():
    rows = [(n, f"{n:016x}", f"{n % 3:016x}") for n in range(1, 50)]
    digests = set()
    for edit in (None, 10, 20):
        digest = engine.TicketsDigest()
        digest.add_many((n, e, "a" * 16 if n == edit else h) for n, e, h in rows)
        digests.add(digest.hexdigest())
    assert len(digests) == 3


@pytest.mark.postgres
def test_set_based_and_portable_freezing_agree(campaign, manager, window):
    consumers = [ConsumerFactory() for _ in range(7)]
    add_entries(campaign, 60, start=window[0], consumers=consumers, step=timedelta(minutes=7))
    # Ties in entered_at: the invoice id decides, on both paths.
    add_entries(campaign, 5, start=window[0], consumers=consumers, step=timedelta(0))
    later = (window[0], window[1] + timedelta(days=1), window[2] + timedelta(days=1))
    fast = new_draw(campaign, manager, window, code="ZZ-SAME")
    slow = new_draw(campaign, manager, later, code="ZZ-SAME-2")
    for draw in (fast, slow):
        services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    with time_machine.travel(later[2]):
        fast = services.draw_freeze(draw=fast, actor=manager, set_based=True)
        slow = services.draw_freeze(draw=slow, actor=manager, set_based=False)
    assert fast.ticket_count == slow.ticket_count == 65

    def rows(draw):
        return list(
            DrawTicket.objects.filter(draw=draw)
            .order_by("ticket_no")
            .values_list("ticket_no", "invoice_id", "eligible_at")
        )

    assert rows(fast) == rows(slow)
    fast_refs = DrawTicket.objects.filter(draw=fast).order_by("ticket_no")
    for ticket in fast_refs:
        invoice = ticket.invoice
        assert ticket.entry_ref == engine.entry_ref(fast.code, invoice.number)
        assert ticket.holder_ref == engine.holder_ref(fast.code, str(invoice.consumer.public_id))
    assert selectors.draw_replay(fast).ok and selectors.draw_replay(slow).ok


@pytest.mark.postgres
def test_the_digest_in_sql_is_the_streamed_one(campaign, manager, window, monkeypatch):
    """The freeze hashes the tickets file in one SQL statement; past SQL_DIGEST_MAX_TICKETS it
    streams the file back and hashes it in Python. Both give the spec's digest."""
    add_entries(campaign, 30, start=window[0], consumers=[ConsumerFactory() for _ in range(4)])
    later = (window[0], window[1] + timedelta(days=1), window[2] + timedelta(days=1))
    in_sql = new_draw(campaign, manager, window, code="ZZ-SQL")
    streamed = new_draw(campaign, manager, later, code="ZZ-SQL-2")
    for draw in (in_sql, streamed):
        services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    with time_machine.travel(later[2]):
        in_sql = services.draw_freeze(draw=in_sql, actor=manager)
        monkeypatch.setattr(services, "SQL_DIGEST_MAX_TICKETS", 0)
        streamed = services.draw_freeze(draw=streamed, actor=manager)
    for draw in (in_sql, streamed):
        stored = DrawTicket.objects.filter(draw=draw).order_by("ticket_no")
        digest = engine.TicketsDigest()
        digest.add_many(stored.values_list("ticket_no", "entry_ref", "holder_ref"))
        assert draw.ticket_count == digest.count == 30
        assert draw.tickets_digest == digest.hexdigest()


# --- disqualification (spec §6) -------------------------------------------------------------


def test_disqualification_rules(campaign, manager, officer_a, officer_b, disqualifier, window):
    add_entries(campaign, 20, start=window[0])
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    winner = DrawWinner.objects.filter(draw=draw).first()
    with pytest.raises(DomainError):  # not yet published
        services.draw_disqualify(
            draw=draw, ticket_no=winner.ticket_no, reason="fraud", actor=disqualifier
        )
    draw = services.draw_publish(draw=draw, actor=manager)
    loser = (
        DrawTicket.objects.filter(draw=draw)
        .exclude(ticket_no__in=DrawWinner.objects.filter(draw=draw).values("ticket_no"))
        .first()
    )
    with pytest.raises(DrawError) as exc:
        services.draw_disqualify(
            draw=draw, ticket_no=loser.ticket_no, reason="fraud", actor=disqualifier
        )
    assert exc.value.code == "draw.not_a_winner"
    with pytest.raises(DrawError):
        services.draw_disqualify(
            draw=draw, ticket_no=winner.ticket_no, reason="bogus", actor=disqualifier
        )
    services.draw_disqualify(
        draw=draw, ticket_no=winner.ticket_no, reason="fraud", actor=disqualifier, note="核查"
    )
    with pytest.raises(DrawError) as exc:  # already disqualified
        services.draw_disqualify(
            draw=draw, ticket_no=winner.ticket_no, reason="fraud", actor=disqualifier
        )
    assert exc.value.code == "draw.not_a_winner"
    other = DrawWinner.objects.filter(draw=draw, disqualified=False).first()
    with time_machine.travel(draw.notice_ends_at), pytest.raises(DrawError) as exc:
        services.draw_disqualify(
            draw=draw, ticket_no=other.ticket_no, reason="fraud", actor=disqualifier
        )
    assert exc.value.code == "draw.notice_period_over"


def test_substitutes_follow_the_engine_incrementally(
    campaign, manager, officer_a, officer_b, disqualifier, window
):
    """Disqualifications processed one at a time in the notice period give exactly what the
    engine gives for all of them at once (and what the verifier recomputes)."""
    add_entries(campaign, 9, start=window[0], consumers=[ConsumerFactory() for _ in range(4)])
    draw = published_draw(campaign, manager, window, officer_a, officer_b)
    order = []
    while True:
        current = DrawWinner.objects.filter(draw=draw, disqualified=False).order_by("-counter")
        if not current.exists() or len(order) == 6:
            break
        ticket = current.first().ticket_no
        order.append(ticket)
        services.draw_disqualify(draw=draw, ticket_no=ticket, reason="fraud", actor=disqualifier)
    draw = PeriodicDraw.objects.get(pk=draw.pk)
    holder_of, holder_ticket_count = services.ticket_lookups(draw)
    key = engine.draw_key(
        bytes.fromhex(draw.revealed_seed), draw.tickets_digest, draw.public_randomness
    )
    winners = engine.select_winners(
        draw_key=key,
        ticket_count=draw.ticket_count,
        tiers=services.engine_tiers(draw),
        per_holder_limit=1,
        holder_of=holder_of,
        holder_ticket_count=holder_ticket_count,
    )
    at_once = engine.substitute(
        draw_key=key,
        ticket_count=draw.ticket_count,
        winners=winners,
        disqualified=[(t, "fraud") for t in order],
        per_holder_limit=1,
        holder_of=holder_of,
        holder_ticket_count=holder_ticket_count,
    )
    bundle = selectors.draw_bundle(draw)
    assert bundle["substitutes"] == [s.as_dict() for s in at_once.substitutes]
    assert [d["ticket_no"] for d in bundle["disqualified"]] == order
    assert draw.next_counter == at_once.next_counter


# --- the scheduled freeze ---------------------------------------------------------------------


def test_freeze_due_draws_task_freezes_committed_draws_past_their_cutoff(campaign, manager, window):
    add_entries(campaign, 3, start=window[0])
    due = new_draw(campaign, manager, window)
    services.draw_commit(draw=due, actor=manager, randomness_source=SOURCE)
    later = (window[0], window[1] + timedelta(days=5), window[2] + timedelta(days=5))
    not_due = new_draw(campaign, manager, later)
    services.draw_commit(draw=not_due, actor=manager, randomness_source=SOURCE)
    scheduled = new_draw(
        campaign, manager, (window[0] + timedelta(hours=1), window[1], window[2]), code="ZZ-S"
    )
    with time_machine.travel(window[2] + timedelta(hours=1)):
        assert freeze_due_draws.delay().get() == [due.code]
    assert PeriodicDraw.objects.get(pk=due.pk).status == DrawStatus.FROZEN
    assert PeriodicDraw.objects.get(pk=due.pk).ticket_count == 3
    assert PeriodicDraw.objects.get(pk=not_due.pk).status == DrawStatus.COMMITTED
    assert PeriodicDraw.objects.get(pk=scheduled.pk).status == DrawStatus.SCHEDULED
    frozen_step = DrawStatusChange.objects.get(draw=due, action="frozen")
    assert frozen_step.actor is None


def test_the_freeze_is_scheduled():
    (entry,) = [s for s in SCHEDULES if s.task == "apps.draws.tasks.freeze_due_draws"]
    assert entry.minute == "*"


def test_tickets_file_reads_back_identically_in_any_chunk_size(campaign, manager, window):
    add_entries(campaign, 23, start=window[0])
    draw = frozen_draw(campaign, manager, window)
    whole = b"".join(selectors.iter_ticket_chunks(draw))
    for size in (1, 7, 23, 1000):
        chunks = list(selectors.iter_ticket_chunks(draw, chunk=size))
        assert b"".join(chunks) == whole
        assert len(chunks) == -(-23 // size)
    digest = engine.TicketsDigest()
    digest.add_lines(whole)
    assert (digest.count, digest.hexdigest()) == (23, draw.tickets_digest)
    # Abandoning the stream half way leaves the connection usable.
    stream = selectors.iter_ticket_chunks(draw, chunk=5)
    next(stream)
    stream.close()
    assert DrawTicket.objects.filter(draw=draw).count() == 23
