"""Tickets partitioned by draw on PostgreSQL (migration 0003, issue 6).

The freeze writes a draw's tickets into a table of their own and attaches it as the draw's
partition; the partition must be as locked as the parent (statements naming it directly meet
the same immutability triggers), and winners must point at a ticket of their own draw.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from apps.draws import selectors, services
from apps.draws.models import DrawTicket, DrawWinner, PeriodicDraw
from tests.draws.conftest import SOURCE, add_entries, drawn_draw, frozen_draw, new_draw

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's"),
]


def _fetch(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _refused(sql, params=()):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_freeze_writes_each_draw_into_its_own_indexed_partition(campaign, manager, window):
    add_entries(campaign, 7, start=window[0])
    draw = frozen_draw(campaign, manager, window)
    name = services._ticket_partition_name(draw)
    # Every ticket of the draw is in the draw's partition, none in the default one.
    rows = _fetch(
        "SELECT tableoid::regclass::text, count(*) FROM draws_drawticket WHERE draw_id = %s "
        "GROUP BY 1",
        [draw.pk],
    )
    assert rows == [(name, 7)]
    bound = _fetch(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.relname = %s", [name]
    )
    assert bound == [(f"FOR VALUES IN ('{draw.pk}')",)]
    # The attach built the parent's keys on the partition.
    indexes = {
        definition.split(" USING ")[1]
        for (definition,) in _fetch("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [name])
    }
    assert indexes == {
        "btree (id, draw_id)",
        "btree (draw_id, ticket_no)",
        "btree (invoice_id, draw_id)",
    }
    # Ids are the draw's block: draw * 2³² + ticket number, above anything the identity
    # sequence (capped below 2³²) hands out for rows written through the parent.
    tickets = list(DrawTicket.objects.filter(draw=draw).order_by("ticket_no"))
    assert [t.ticket_no for t in tickets] == list(range(1, 8))
    assert [t.pk for t in tickets] == [services.ticket_id(draw.pk, n) for n in range(1, 8)]
    assert DrawTicket.objects.get(pk=tickets[3].pk).ticket_no == 4
    assert _fetch(
        "SELECT seqmax FROM pg_sequence WHERE seqrelid = "
        "pg_get_serial_sequence('draws_drawticket', 'id')::regclass"
    ) == [(2**32 - 1,)]
    # The stored list is what was hashed (the replay re-hashes it through the parent).
    report = selectors.draw_replay(PeriodicDraw.objects.get(pk=draw.pk))
    assert ("digest", True, draw.tickets_digest) in report.checks


def test_two_draws_two_partitions_and_a_ticket_per_draw(campaign, manager, window):
    add_entries(campaign, 3, start=window[0])
    first = frozen_draw(campaign, manager, window)
    services.draw_cancel(draw=first, reason="重复创建", actor=manager)
    second = frozen_draw(campaign, manager, window)
    assert services._ticket_partition_name(first) != services._ticket_partition_name(second)
    assert DrawTicket.objects.filter(draw=first).count() == 3
    assert DrawTicket.objects.filter(draw=second).count() == 3
    per_table = dict(
        _fetch(
            "SELECT tableoid::regclass::text, count(*) FROM draws_drawticket "
            "WHERE draw_id IN (%s, %s) GROUP BY 1",
            [first.pk, second.pk],
        )
    )
    assert per_table == {
        services._ticket_partition_name(first): 3,
        services._ticket_partition_name(second): 3,
    }


def test_statements_naming_the_partition_meet_the_immutability_triggers(campaign, manager, window):
    entries = add_entries(campaign, 4, start=window[0])
    draw = frozen_draw(campaign, manager, window)
    table = connection.ops.quote_name(services._ticket_partition_name(draw))
    _refused(f"UPDATE {table} SET holder_ref = '0000000000000000' WHERE ticket_no = 1")
    _refused(f"DELETE FROM {table} WHERE ticket_no = 2")
    _refused(
        f"INSERT INTO {table} (id, draw_id, ticket_no, invoice_id, entry_ref, holder_ref, "
        "eligible_at) VALUES (nextval(pg_get_serial_sequence('draws_drawticket', 'id')), %s, 5, "
        "%s, '0000000000000000', '0000000000000000', now())",
        [draw.pk, entries[0].pk],
    )
    # ... and so do statements through the parent and against the default partition.
    _refused(
        "UPDATE draws_drawticket SET holder_ref = '0000000000000000' WHERE draw_id = %s",
        [draw.pk],
    )
    _refused(
        "INSERT INTO draws_drawticket_default (id, draw_id, ticket_no, invoice_id, entry_ref, "
        "holder_ref, eligible_at) VALUES (nextval(pg_get_serial_sequence('draws_drawticket', "
        "'id')), %s, 9, %s, '0000000000000000', '0000000000000000', now())",
        [draw.pk, entries[1].pk],
    )
    assert DrawTicket.objects.filter(draw=draw).count() == 4


def test_a_winner_must_point_at_a_ticket_of_its_own_draw(
    campaign, manager, officer_a, officer_b, window
):
    add_entries(campaign, 6, start=window[0])
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    winner = DrawWinner.objects.filter(draw=draw).order_by("counter").first()
    # A winner row claiming a ticket number the draw does not have is refused at commit
    # (deferred), even though its ticket id exists.
    with pytest.raises(IntegrityError), transaction.atomic():
        DrawWinner.objects.create(
            draw=draw,
            tier=winner.tier,
            rank=winner.rank,
            slot=99,
            ticket=winner.ticket,
            ticket_no=1000,
            counter=10_000,
        )
        connection.check_constraints()  # SET CONSTRAINTS ALL IMMEDIATE


def test_tickets_written_through_the_parent_land_in_the_default_partition(
    campaign, manager, window
):
    """The portable path (and any draw that already has a partition) writes through the
    parent; those rows go to the default partition and stay just as locked."""
    add_entries(campaign, 3, start=window[0])
    draw = new_draw(campaign, manager, window)
    draw = services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    with time_machine.travel(window[2] + timedelta(minutes=1)):
        draw = services.draw_freeze(draw=draw, actor=manager, set_based=False)
    rows = _fetch(
        "SELECT tableoid::regclass::text, count(*) FROM draws_drawticket WHERE draw_id = %s "
        "GROUP BY 1",
        [draw.pk],
    )
    assert rows == [("draws_drawticket_default", 3)]
    _refused("DELETE FROM draws_drawticket_default WHERE draw_id = %s", [draw.pk])
