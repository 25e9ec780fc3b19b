"""Writes sent together in one round trip (apps/common/queries.py: `pipelined`,
`batched_writes`, `write_later`, `insert_objects(…, later=True)`, `model_row(…, prelude=…)`)
and what the submission path builds on them: the idempotency reply stored in the decision's
transaction (apps/common/idempotency.py) and the new entry's instant draw record written once,
with its outcome (apps/draws/services.py)."""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from apps.accounts.models import Consumer
from apps.common import queries
from apps.common.models import IdempotencyRecord
from apps.common.queries import (
    GENERIC_PLANS,
    batched_writes,
    fused_writes,
    insert_objects,
    model_row,
    next_ids_query,
    pipelined,
    write_later,
)
from apps.draws.models import (
    InstantAward,
    InstantDrawResult,
)
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import Invoice, InvoiceStatusChange
from apps.invoices.services import _consumer_lock, _locked, _new_id, invoice_review
from apps.reporting.models import RollupChange
from tests.common.test_hot_queries import (
    BUYER,
    PER_ROW,
    assert_same_row,
    invoice_kwargs,
    raw_column,
)
from tests.factories.core import (
    ConsumerFactory,
    InvoiceFactory,
    UserFactory,
    make_invoice_number,
)

# The intake's fixtures, for the tests that submit through the API.
from tests.invoices.conftest import api, campaign, consumer, make_record, submit  # noqa: F401
from tests.invoices.test_submission_querycount import (
    RoundTrips,
    counted_round_trips,
    instant_pool,
    spy_psycopg_commands,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

KIND = 77  # a rollup-queue kind nobody else writes: the rows of these tests only
ROLLUP_TABLE = RollupChange._meta.db_table
IDEMPOTENCY_TABLE = IdempotencyRecord._meta.db_table
DRAW_TABLE = InstantDrawResult._meta.db_table
_subjects = itertools.count(1)
_keys = itertools.count(1)


# Every statement of a block, with whether it was sent in psycopg's pipeline mode.
watched = counted_round_trips


@pytest.fixture
def pipelines(monkeypatch):
    """How many pipelines `batched_writes` opened."""
    opened = []
    real = queries.pipelined

    @contextmanager
    def counting():
        opened.append(1)
        with real():
            yield

    monkeypatch.setattr(queries, "pipelined", counting)
    return opened


def queue_row(subject: int) -> None:
    write_later(
        f"INSERT INTO {ROLLUP_TABLE} (kind, subject_id) VALUES (%s, %s)",
        [KIND, subject],
    )


def rows() -> list[int]:
    """Subjects of this test's queued rows, in the order they were written (ids ascend)."""
    return list(
        RollupChange.objects.filter(kind=KIND).order_by("id").values_list("subject_id", flat=True)
    )


def mine(statements: RoundTrips) -> list[tuple[int, str, bool]]:
    return statements.matching(f"INSERT INTO {ROLLUP_TABLE}")


def show_plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


# write_later / batched_writes ----------------------------------------------------------------


def test_write_later_outside_a_batch_runs_at_once():
    subject = next(_subjects)
    with watched() as statements:
        queue_row(subject)
        assert len(mine(statements)) == 1
        assert mine(statements)[0][2] is False  # a plain statement, no pipeline
    assert rows() == [subject]
    # Inside a transaction without a batch: at once as well.
    with transaction.atomic():
        queue_row(subject + 1000)
        assert rows() == [subject, subject + 1000]


def test_a_batch_runs_its_writes_at_the_end_in_order_in_one_pipeline(pipelines):
    subjects = [next(_subjects) for _ in range(4)]
    with watched() as statements:
        with transaction.atomic(), batched_writes():
            for subject in subjects:
                queue_row(subject)
            assert mine(statements) == []  # nothing sent yet
            assert rows() == []
        sent = mine(statements)
    assert len(sent) == len(subjects)
    assert all(piped for _i, _sql, piped in sent)
    # One after the other, nothing in between: one pipeline, one round trip.
    assert [i for i, _sql, _piped in sent] == list(range(sent[0][0], sent[0][0] + len(sent)))
    assert pipelines == [1]
    assert rows() == subjects  # written in the order queued


def test_an_empty_batch_sends_nothing(pipelines):
    with watched() as statements, transaction.atomic(), batched_writes():
        pass
    assert pipelines == []
    assert [sql for sql, _piped in statements.seen if "INSERT" in sql or "UPDATE" in sql] == []


def test_an_exception_drops_the_batch_and_propagates(pipelines):
    subject = next(_subjects)
    with watched() as statements:
        with pytest.raises(ZeroDivisionError), transaction.atomic(), batched_writes():
            queue_row(subject)
            queue_row(subject + 1)
            1 / 0  # noqa: B018
        assert mine(statements) == []
    assert pipelines == []
    assert rows() == []
    # The batch is gone: the next write outside any batch runs at once.
    queue_row(subject + 2)
    assert rows() == [subject + 2]


def test_a_write_in_a_savepoint_inside_the_batch_runs_at_once_and_is_undone_with_it():
    first, inner, kept_inner, outer, last = (next(_subjects) for _ in range(5))
    with watched() as statements:
        with transaction.atomic(), batched_writes():
            queue_row(first)
            try:
                with transaction.atomic():  # a savepoint opened after the batch
                    queue_row(inner)
                    assert [s for s in rows() if s == inner] == [inner]  # written now
                    raise LookupError("undo the savepoint")
            except LookupError:
                pass
            with transaction.atomic():
                queue_row(kept_inner)  # at once too; kept as the savepoint is released
            assert sorted(rows()) == [kept_inner]
            with transaction.atomic(savepoint=False):  # no savepoint: batched
                queue_row(outer)
            queue_row(last)
            assert sorted(rows()) == [kept_inner]
            piped_so_far = [piped for _i, _sql, piped in mine(statements)]
            assert piped_so_far == [False, False]  # inner and kept_inner, sent alone
        batched = [piped for _i, _sql, piped in mine(statements)][2:]
    assert batched == [True, True, True]
    assert rows() == [kept_inner, first, outer, last]


def test_a_failing_batched_statement_raises_djangos_integrity_error():
    taken = RollupChange.objects.create(kind=KIND, subject_id=next(_subjects))
    subject = next(_subjects)
    with pytest.raises(IntegrityError) as raised, transaction.atomic(), batched_writes():
        queue_row(subject)
        write_later(
            f"INSERT INTO {ROLLUP_TABLE} (id, kind, subject_id) VALUES (%s, %s, %s)",
            [taken.pk, KIND, subject + 1],
        )
    assert type(raised.value) is IntegrityError  # Django's, not psycopg's
    assert not isinstance(raised.value, psycopg.Error)
    assert isinstance(raised.value.__cause__, psycopg.errors.UniqueViolation)
    # The transaction rolled back and the connection goes on.
    assert rows() == [taken.subject_id]
    queue_row(subject + 2)
    assert rows() == [taken.subject_id, subject + 2]


# fused_writes: a batch's writes of different tables in one statement -------------------------


def test_fused_writes_joins_consecutive_plain_writes_of_different_tables():
    a = ('INSERT INTO "t_a" ("x") VALUES (%s)', [1])
    b = ('INSERT INTO "t_b" ("x", "y") VALUES (%s, %s), (%s, %s)', [2, 3, 4, 5])
    c = ('UPDATE "t_c" SET "x" = %s WHERE "id" = %s', [6, 7])
    assert fused_writes([a, b, c]) == [
        (f"WITH w0 AS ({a[0]}), w1 AS ({b[0]}) {c[0]}", [1, 2, 3, 4, 5, 6, 7])
    ]
    assert fused_writes([a]) == [a]
    # A second write of a table starts a new group (rows of one table in the order queued;
    # never two clauses meeting one row).
    a2 = ('INSERT INTO "t_a" ("x") VALUES (%s)', [8])
    c2 = ('UPDATE "t_c" SET "x" = %s WHERE "id" = %s', [9, 7])
    assert fused_writes([a, b, a2, c, c2]) == [
        (f"WITH w0 AS ({a[0]}) {b[0]}", [1, 2, 3, 4, 5]),
        (f"WITH w0 AS ({a2[0]}) {c[0]}", [8, 6, 7]),
        c2,
    ]


@pytest.mark.parametrize(
    "other",
    [
        'RELEASE SAVEPOINT "s1"',
        'INSERT INTO "t_d" ("x") VALUES (%s) RETURNING "id"',
        'INSERT INTO "t_d" ("x") VALUES (%s) ON CONFLICT DO NOTHING',
        'INSERT INTO "t_d" ("x") SELECT "x" FROM "t_a"',
        'UPDATE "t_d" SET "x" = "t_a"."x" FROM "t_a" WHERE "t_d"."id" = %s',
        'UPDATE "t_d" SET "x" = (SELECT max("x") FROM "t_a")',
        'WITH q AS (SELECT 1) INSERT INTO "t_d" ("x") SELECT 1 FROM q',
        'DELETE FROM "t_d" WHERE "id" = %s',
    ],
    ids=[
        "release",
        "returning",
        "on-conflict",
        "insert-select",
        "update-from",
        "sub-select",
        "with",
        "delete",
    ],
)
def test_fused_writes_sends_anything_else_alone_and_it_ends_the_group(other):
    a = ('INSERT INTO "t_a" ("x") VALUES (%s)', [1])
    b = ('INSERT INTO "t_b" ("x") VALUES (%s)', [2])
    assert fused_writes([a, (other, []), b]) == [a, (other, []), b]


def _history_row(invoice, code: str = "test.fused") -> InvoiceStatusChange:
    from django.utils import timezone

    return InvoiceStatusChange(
        invoice=invoice, from_status="", to_status="pending", code=code, note="", at=timezone.now()
    )


def _drawn_id(model) -> int:
    with connection.cursor() as cursor:
        cursor.execute(*next_ids_query(model))
        return cursor.fetchone()[0]


def test_a_batch_writes_different_tables_in_one_statement_foreign_keys_and_all():
    subject = next(_subjects)
    invoice = Invoice(**invoice_kwargs(make_invoice_number(930_010)))
    with watched() as statements:
        with transaction.atomic(), batched_writes():
            invoice.pk = _drawn_id(Invoice)
            insert_objects([invoice], later=True)
            # Its history refers to it (a deferred foreign key: checked at the commit).
            insert_objects([_history_row(invoice)], later=True)
            queue_row(subject)
        writes = statements.matching("INSERT INTO")
    assert len(writes) == 1 and writes[0][2]
    assert writes[0][1].startswith(f'WITH w0 AS (INSERT INTO "{Invoice._meta.db_table}"')
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    assert list(InvoiceStatusChange.objects.filter(invoice_id=invoice.pk).values_list("code")) == [
        ("test.fused",)
    ]
    assert rows() == [subject]


def test_a_fused_statement_that_fails_writes_nothing_and_names_the_constraint():
    live = InvoiceFactory(status=InvoiceStatus.ACCEPTED)
    taken = Invoice(**invoice_kwargs(live.number, status=InvoiceStatus.ACCEPTED))
    subject = next(_subjects)
    with pytest.raises(IntegrityError) as raised, transaction.atomic(), batched_writes():
        taken.pk = _drawn_id(Invoice)
        insert_objects([taken], later=True)
        insert_objects([_history_row(taken)], later=True)
        queue_row(subject)
    diag = raised.value.__cause__.diag
    assert diag.constraint_name == "invoice_number_live_unique"
    assert not Invoice.objects.filter(pk=taken.pk).exists()
    assert not InvoiceStatusChange.objects.filter(invoice_id=taken.pk).exists()
    assert rows() == []


# insert_objects(…, later=True) ---------------------------------------------------------------


def test_insert_objects_later_goes_with_the_batch_encrypted_as_usual():
    kwargs = invoice_kwargs(make_invoice_number(930_001))
    reference = Invoice(**kwargs)
    insert_objects([reference])
    ours = Invoice(**kwargs)
    with watched() as statements:
        with transaction.atomic(), batched_writes():
            insert_objects([ours], later=True)
            assert ours.pk is None  # the row's id never comes back
            assert ours._state.adding is False and ours._state.db == connection.alias
            assert not Invoice.objects.filter(uid=ours.uid).exists()  # not written yet
        inserts = statements.matching(f'INSERT INTO "{Invoice._meta.db_table}"')
    assert [piped for _i, _sql, piped in inserts] == [True]
    stored = Invoice.objects.get(uid=ours.uid)
    assert_same_row(stored, Invoice.objects.get(pk=reference.pk), PER_ROW)
    assert stored.buyer_name == BUYER
    raw = raw_column(Invoice, "buyer_name", stored.pk)
    assert raw and BUYER not in raw
    assert Invoice._meta.get_field("buyer_name").decrypt_for(ours, raw) == BUYER


def test_insert_objects_later_outside_a_batch_sets_the_ids():
    kwargs = invoice_kwargs(make_invoice_number(930_002))
    outside = Invoice(**kwargs)
    insert_objects([outside], later=True)
    assert outside.pk is not None
    assert Invoice.objects.get(pk=outside.pk).buyer_name == BUYER
    with transaction.atomic():  # a transaction without a batch: as usual too
        inside = Invoice(**kwargs)
        insert_objects([inside], later=True)
        assert inside.pk is not None and Invoice.objects.filter(pk=inside.pk).exists()


# model_row(…, prelude=…) ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_model_row_prelude_sets_generic_plans_for_the_transaction_only():
    someone = ConsumerFactory(real_name=BUYER, phone="13812345670")
    plain = model_row(Consumer, "id", someone.pk)
    assert show_plan_cache_mode() == "auto"
    with transaction.atomic():
        with watched() as statements:
            got = model_row(Consumer, "id", someone.pk, for_update=True, prelude=[GENERIC_PLANS])
        # The transaction's BEGIN, the prelude and the read: one round trip (psycopg would
        # have sent the BEGIN alone and waited for it).
        assert [sql for sql, _piped in statements.seen[:2]] == ["BEGIN", GENERIC_PLANS]
        assert len(statements.seen) == 3 and all(piped for _sql, piped in statements.seen)
        assert show_plan_cache_mode() == "force_generic_plan"
    assert show_plan_cache_mode() == "auto"
    assert_same_row(got, plain)
    assert (got.real_name, got.phone) == (BUYER, "13812345670")


@pytest.mark.django_db(transaction=True)
def test_the_consumer_lock_sets_generic_plans_and_draws_the_invoice_id_in_its_statement():
    someone = ConsumerFactory(real_name=BUYER, phone="13812345671")
    plain = model_row(Consumer, "id", someone.pk)
    first = _drawn_id(Invoice)
    with transaction.atomic():
        with watched() as statements, _consumer_lock(someone.pk, new_invoice=True) as lock:
            got, new_id = _locked(lock), _new_id(lock)
        # The transaction's BEGIN and one statement: the row, the setting and the id.
        assert [piped for _sql, piped in statements.seen] == [True, True]
        assert statements.seen[0][0] == "BEGIN" and "FOR UPDATE" in statements.seen[1][0]
        assert show_plan_cache_mode() == "force_generic_plan"
        with _consumer_lock(someone.pk) as again:  # a pending invoice's decision: no new id
            assert _locked(again).pk == someone.pk and _new_id(again) is None
    assert show_plan_cache_mode() == "auto"
    assert_same_row(got, plain)
    assert new_id > first


# The transaction's BEGIN and COMMIT in the pipelines ------------------------------------------


@pytest.fixture
def commands(monkeypatch):
    return spy_psycopg_commands(monkeypatch)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_opened_by_a_pipeline_sends_its_begin_in_it(commands):
    with transaction.atomic(), connection.cursor() as cursor:
        with watched() as statements, pipelined():
            cursor.execute("SELECT %s::int", [7])
        assert cursor.fetchone() == (7,)
        assert statements.seen == [("BEGIN", True), ("SELECT %s::int", True)]
        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        queue_row(next(_subjects))  # later statements: in the same transaction
    assert "BEGIN" not in commands  # psycopg sent no BEGIN of its own (a round trip)
    assert commands == ["COMMIT"]
    # In autocommit, no BEGIN at all.
    with watched() as statements, pipelined(), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert statements.seen == [("SELECT 1", True)]


@pytest.mark.django_db(transaction=True)
def test_the_pipelines_begin_keeps_the_connections_isolation_level():
    connection.ensure_connection()
    raw = connection.connection
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            with watched() as statements, pipelined():
                cursor.execute("SHOW transaction_isolation")
            assert cursor.fetchone() == ("repeatable read",)
        assert statements.seen[0] == ("BEGIN ISOLATION LEVEL REPEATABLE READ", True)
    finally:
        raw.isolation_level = None


@pytest.mark.django_db(transaction=True)
def test_a_batch_with_commit_sends_the_commit_in_its_round_trip(pipelines, commands):
    subjects = [next(_subjects) for _ in range(2)]
    ran = []
    with watched() as statements, transaction.atomic(), batched_writes(commit=True):
        for subject in subjects:
            queue_row(subject)
        transaction.on_commit(lambda: ran.append(rows()))
    assert [(sql.split()[0], piped) for sql, piped in statements.seen[:4]] == [
        ("BEGIN", True),
        ("INSERT", True),
        ("INSERT", True),
        ("COMMIT", True),
    ]
    assert len(pipelines) == 1  # BEGIN, the writes and COMMIT: one round trip
    assert commands == []  # the atomic found the transaction committed: no second COMMIT
    assert ran == [subjects]  # on_commit hooks ran, after the commit
    assert rows() == subjects
    assert not connection.in_atomic_block and connection.get_autocommit()


@pytest.mark.django_db(transaction=True)
def test_a_failing_commit_in_the_batch_raises_and_rolls_back():
    subject = next(_subjects)
    table = connection.ops.quote_name(InvoiceStatusChange._meta.db_table)
    ran = []
    with pytest.raises(IntegrityError), transaction.atomic(), batched_writes(commit=True):
        queue_row(subject)
        # A history row of no invoice: the deferred foreign key fails at the COMMIT.
        write_later(
            f"INSERT INTO {table} (invoice_id, from_status, to_status, code, note, at) "
            "VALUES (%s, '', 'pending', '', '', now())",
            [2**62],
        )
        transaction.on_commit(lambda: ran.append(1))
    assert rows() == [] and ran == []
    assert not connection.in_atomic_block and connection.get_autocommit()
    with transaction.atomic(), batched_writes(commit=True):  # the connection works on
        queue_row(subject)
    assert rows() == [subject]


def test_a_batch_with_commit_inside_another_transaction_leaves_the_commit_to_it(pipelines):
    subject = next(_subjects)
    with watched() as statements, transaction.atomic(), batched_writes(commit=True):
        queue_row(subject)
    sent = [sql.split()[0] for sql, _piped in statements.seen]
    assert sent == ["SAVEPOINT", "INSERT", "RELEASE"]  # the atomic is a savepoint here
    assert rows() == [subject]
    assert connection.in_atomic_block  # the test's own transaction goes on


# pipelined elsewhere than PostgreSQL -----------------------------------------------------------


def test_pipelined_is_a_no_op_elsewhere_than_postgresql(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pipelined(), connection.cursor() as cursor:
        assert not connection.connection.pgconn.pipeline_status
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)  # read at once
    subjects = [next(_subjects) for _ in range(2)]
    with watched() as statements:
        with transaction.atomic(), batched_writes():
            for subject in subjects:
                queue_row(subject)
            assert mine(statements) == []
        assert [piped for _i, _sql, piped in mine(statements)] == [False, False]
    assert rows() == subjects


# The submission path ----------------------------------------------------------------------------


def fresh_key() -> str:
    return f"batched-{next(_keys):08d}"


def test_an_accepted_submission_stores_its_reply_in_the_decision_transaction(
    api,  # noqa: F811
    consumer,  # noqa: F811
    campaign,  # noqa: F811
    make_record,  # noqa: F811
):
    _record, body = make_record()
    key = fresh_key()
    with watched() as statements:
        response = submit(api, body, key=key)
    assert response.status_code == 201, response.content
    assert response.json()["invoice"]["status"] == "accepted"
    stored = IdempotencyRecord.objects.get(user=consumer.user, key=key)
    assert stored.state == IdempotencyRecord.State.COMPLETED
    assert (stored.response_status, stored.response_body) == (201, response.json())
    # One UPDATE of the record, sent in the decision's pipeline, before its release.
    updates = statements.matching("UPDATE", IDEMPOTENCY_TABLE)
    assert len(updates) == 1
    index, _sql, piped = updates[0]
    assert piped
    after = next(sql for sql, piped in statements.seen[index + 1 :] if not piped)
    assert after.startswith("RELEASE SAVEPOINT")
    # A retry with the same key gets the same reply, without a second invoice.
    replay = submit(api, body, key=key)
    assert replay.status_code == 201
    assert replay.json() == response.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert Invoice.objects.filter(number=body["number"]).count() == 1


def test_a_rejected_submission_still_stores_its_error_reply(
    api,  # noqa: F811
    consumer,  # noqa: F811
    campaign,  # noqa: F811
    make_record,  # noqa: F811
):
    _record, body = make_record()
    assert submit(api, body, key=fresh_key()).status_code == 201
    key = fresh_key()
    with watched() as statements:
        response = submit(api, body, key=key)
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "invoice.duplicate"
    stored = IdempotencyRecord.objects.get(user=consumer.user, key=key)
    assert stored.state == IdempotencyRecord.State.COMPLETED
    assert (stored.response_status, stored.response_body) == (409, response.json())
    updates = statements.matching("UPDATE", IDEMPOTENCY_TABLE)
    assert [piped for _i, _sql, piped in updates] == [False]  # the decorator's own, after
    replay = submit(api, body, key=key)
    assert (replay.status_code, replay.json()) == (409, response.json())
    assert replay["Idempotent-Replayed"] == "true"


def test_a_new_entry_that_wins_writes_one_draw_record_marked_won(
    api,  # noqa: F811
    campaign,  # noqa: F811
    make_record,  # noqa: F811
):
    tier = instant_pool(campaign)
    _record, body = make_record()
    with watched() as statements:
        response = submit(api, body)
    assert response.status_code == 201, response.content
    assert response.json()["instant_prize"]["tier"] == "20元现金"
    invoice = Invoice.objects.get(number=body["number"])
    assert list(
        InstantDrawResult.objects.filter(invoice=invoice).values_list("won", flat=True)
    ) == [True]
    assert InstantAward.objects.filter(invoice=invoice, tier=tier).count() == 1
    # Written once, with the outcome, among the batched writes (no claim, no UPDATE).
    assert [piped for _i, _sql, piped in statements.matching("INSERT", DRAW_TABLE)] == [True]
    assert statements.matching(f'UPDATE "{DRAW_TABLE}"') == []


@pytest.mark.parametrize(
    ("probability", "remaining"), [("0", 10), ("1", 0)], ids=["no-odds", "no-stock"]
)
def test_a_new_entry_that_cannot_win_writes_one_draw_record_marked_lost(
    api,  # noqa: F811
    campaign,  # noqa: F811
    make_record,  # noqa: F811
    probability,
    remaining,
):
    tier = instant_pool(campaign, probability=probability, remaining=remaining)
    _record, body = make_record()
    response = submit(api, body)
    assert response.status_code == 201, response.content
    assert response.json()["instant_prize"] is None
    invoice = Invoice.objects.get(number=body["number"])
    assert invoice.status == InvoiceStatus.ACCEPTED
    assert list(
        InstantDrawResult.objects.filter(invoice=invoice).values_list("won", flat=True)
    ) == [False]
    assert not InstantAward.objects.filter(invoice=invoice).exists()
    tier.refresh_from_db()
    assert tier.remaining == remaining


def test_a_released_entry_claims_its_draw_and_marks_it_won(campaign):  # noqa: F811
    tier = instant_pool(campaign)
    held = InvoiceFactory(status=InvoiceStatus.HELD, campaign=campaign)
    with watched() as statements:
        invoice_review(
            invoice=held, accept=True, actor=UserFactory(is_staff=True), reason="人工核实无误"
        )
    assert list(InstantDrawResult.objects.filter(invoice=held).values_list("won", flat=True)) == [
        True
    ]
    assert InstantAward.objects.filter(invoice=held, tier=tier).count() == 1
    # Claimed first (INSERT … ON CONFLICT), then marked won: both at once, not batched.
    claims = statements.matching("INSERT", DRAW_TABLE, "ON CONFLICT")
    marks = statements.matching("UPDATE", DRAW_TABLE)
    assert [piped for _i, _sql, piped in claims + marks] == [False, False]
    assert claims[0][0] < marks[0][0]
    # Released again by mistake: the recorded outcome, no second draw.
    from apps.draws.services import instant_draw_for_entry

    held.refresh_from_db()
    assert instant_draw_for_entry(invoice=held)["tier"] == "20元现金"
    assert InstantDrawResult.objects.filter(invoice=held).count() == 1
    assert InstantAward.objects.filter(invoice=held).count() == 1


# read_ahead / fetch_one ----------------------------------------------------------------------


def test_a_read_ahead_travels_with_the_next_fetch_one_in_one_pipeline(pipelines):
    queries.fetch_one("SELECT 1")  # the test's transaction has begun
    pipelines.clear()
    lock = "SELECT id FROM accounts_user WHERE id = %s FOR UPDATE"  # kept apart: a lock
    with watched() as statements, queries.read_ahead("SELECT %s::int + 1", [41]) as ahead:
        assert queries.fetch_one(lock, [0]) is None
        assert ahead.row() == (42,)
    assert [piped for _sql, piped in statements.seen] == [True, True]
    assert len(pipelines) == 1
    assert queries._pending_reads() == []


def test_reads_that_travel_together_are_one_statement():
    queries.fetch_one("SELECT 1")  # the test's transaction has begun
    taken = RollupChange.objects.create(kind=KIND, subject_id=next(_subjects))
    claim = (
        f"INSERT INTO {ROLLUP_TABLE} (id, kind, subject_id) VALUES (%s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    with (
        watched() as statements,
        queries.read_ahead(claim, [taken.pk, KIND, 1]) as conflict,
        queries.read_ahead("SELECT %s::int + 1, %s::text", [41, "x"]) as two_columns,
        queries.read_ahead("SELECT 1 WHERE false") as no_row,
        queries.read_ahead("SELECT NULL::int") as null_row,
    ):
        assert queries.fetch_one("SELECT %s::text", ["b"]) == ("b",)
        assert two_columns.row() == (42, "x")
        assert conflict.row() is None  # the INSERT's RETURNING gave no row
        assert no_row.row() is None
        assert null_row.row() == (None,)
    assert len(statements.seen) == 1 and statements.seen[0][1] is False
    assert statements.seen[0][0].startswith(f"WITH r0 AS (INSERT INTO {ROLLUP_TABLE}")
    # A read that writes is kept apart from a read of its table (none could see its row).
    count_sql = f"SELECT count(*) FROM {ROLLUP_TABLE} WHERE kind = %s"
    with watched() as statements, queries.read_ahead(claim, [taken.pk + 10_000, KIND, 2]) as new:
        count = queries.fetch_one(count_sql, [KIND])
        assert new.row() == (taken.pk + 10_000,)
    assert count == (2,) and len(statements.seen) == 2
    # Named parameters: statements of their own too.
    with watched() as statements, queries.read_ahead("SELECT %(a)s::int", {"a": 3}) as named:
        assert queries.fetch_one("SELECT 4") == (4,) and named.row() == (3,)
    assert len(statements.seen) == 2


def test_a_read_ahead_nothing_took_along_is_sent_alone_when_read():
    queries.fetch_one("SELECT 1")  # the test's transaction has begun
    with watched() as statements, queries.read_ahead("SELECT %s::int * 2", [21]) as ahead:
        assert ahead.row() == (42,)
    assert [piped for _sql, piped in statements.seen] == [False]
    assert queries._pending_reads() == []


def test_an_exception_drops_a_queued_read():
    with pytest.raises(RuntimeError), queries.read_ahead("SELECT 1"):
        raise RuntimeError("on the way")
    assert queries._pending_reads() == []
    queries.fetch_one("SELECT 1")  # the test's transaction has begun
    with watched() as statements:
        assert queries.fetch_one("SELECT 2") == (2,)
    assert [sql for sql, _piped in statements.seen] == ["SELECT 2"]


@pytest.mark.django_db(transaction=True)
def test_a_read_that_opens_a_transaction_carries_its_begin(commands):
    with transaction.atomic():
        with watched() as statements:
            assert queries.fetch_one("SELECT %s::int", [5]) == (5,)
        assert statements.seen == [("BEGIN", True), ("SELECT %s::int", True)]
        with watched() as statements:  # the transaction is open now: a plain statement
            assert queries.fetch_one("SELECT 6") == (6,)
        assert statements.seen == [("SELECT 6", False)]
    assert "BEGIN" not in commands  # psycopg sent no BEGIN of its own (a round trip)
    # In autocommit, no BEGIN and no pipeline.
    with watched() as statements:
        assert queries.fetch_one("SELECT 7") == (7,)
    assert statements.seen == [("SELECT 7", False)]


def test_a_remote_verifier_is_not_asked_about_a_number_already_entered(
    api,  # noqa: F811
    consumer,  # noqa: F811
    campaign,  # noqa: F811
    make_record,  # noqa: F811
    monkeypatch,
):
    """The duplicate check travels with a local (registry) look-up, but a verifier whose calls
    cost a quota is asked only about a number nobody holds."""
    from apps.invoices import services
    from apps.invoices.verification import RegistryTaxVerifier

    _record, body = make_record()
    assert submit(api, body, key=fresh_key()).status_code == 201
    asked = []

    class Remote(RegistryTaxVerifier):
        local = False

        def _verify(self, **kwargs):
            asked.append(kwargs["number"])
            return super()._verify(**kwargs)

    monkeypatch.setattr(services, "get_tax_verifier", lambda **kw: Remote())
    response = submit(api, body, key=fresh_key())
    assert response.status_code == 409 and response.json()["code"] == "invoice.duplicate"
    assert asked == []
    _record, other = make_record()
    assert submit(api, other, key=fresh_key()).status_code == 201
    assert asked == [other["number"]]
