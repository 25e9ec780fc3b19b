"""Plain SQL of the hot paths (apps/common/queries.py) and the small-batch insert compiler
(lotteryinvoice/db/postgresql/compiler.py): what they store and read is what the ORM would."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Consumer
from apps.common.queries import insert_objects, model_row, row_with_one
from apps.invoices.choices import InvoiceStatus, IssuerKind, RegistryStatus
from apps.invoices.models import Invoice, InvoiceStatusChange, TaxInvoiceRecord
from apps.reporting.models import OutboxEvent
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    InvoiceFactory,
    MerchantFactory,
    UserFactory,
    make_invoice_number,
    make_resident_id,
)

pytestmark = pytest.mark.django_db

only_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (row locks, the project backend)"
)

# Differ between two rows holding the same values.
PER_ROW = {"id", "uid", "created_at", "updated_at"}
BUYER = "张三丰"


def concrete_values(obj, skip=frozenset()) -> dict:
    return {
        f.attname: getattr(obj, f.attname)
        for f in type(obj)._meta.concrete_fields
        if f.attname not in skip
    }


def assert_same_row(a, b, skip=frozenset()):
    """Every concrete field equal, and of the same Python type (Decimal stays Decimal...)."""
    left, right = concrete_values(a, skip), concrete_values(b, skip)
    assert left == right
    for name, value in left.items():
        assert type(value) is type(right[name]), name


def raw_column(model, column: str, pk):
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {q(column)} FROM {q(model._meta.db_table)} WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()[0]


def invoice_kwargs(number: str, **extra) -> dict:
    consumer = ConsumerFactory()
    merchant = MerchantFactory()
    values = {
        "number": number,
        "invoice_type": "32",
        "issue_date": date(2026, 3, 1),
        "issued_at": datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
        "seller_uscc": merchant.uscc,
        "seller_name": merchant.name,
        "buyer_name": BUYER,
        "buyer_tax_id": "",
        "amount": Decimal("176.99"),
        "tax": Decimal("23.01"),
        "total": Decimal("200.00"),
        "source_channel": "app",
        "consumer": consumer,
        "merchant": merchant,
        "campaign": CampaignFactory(),
        "status": InvoiceStatus.REJECTED,  # not live: two rows may share the number
        "rejection_code": "invoice.not_found",
        "submitted_at": datetime(2026, 3, 2, 8, 0, 0, 654321, tzinfo=UTC),
        "decided_at": datetime(2026, 3, 2, 8, 0, 1, tzinfo=UTC),
        "verification_attempts": 2,
        "device_hash": "d" * 64,
    }
    values.update(extra)
    return values


def outbox_event(stream: str, seq: int) -> OutboxEvent:
    return OutboxEvent(
        event_id=uuid.uuid4(),
        stream=stream,
        seq=seq,
        event_type="invoice.accepted",
        payload={"city": "郑州市", "seq": seq, "total": "200.00", "tags": [1, 2.5, None, True]},
        occurred_at=datetime(2026, 3, 2, 8, 0, seq % 60, 1000 * seq, tzinfo=UTC),
    )


# insert_objects ------------------------------------------------------------------------------


def test_insert_objects_stores_what_the_orm_would():
    kwargs = invoice_kwargs(make_invoice_number(910_001))
    before = timezone.now()
    ours = Invoice(**kwargs)
    insert_objects([ours])
    after = timezone.now()
    theirs = Invoice.objects.create(**kwargs)

    assert ours.pk is not None and ours.pk != theirs.pk
    assert ours._state.adding is False
    assert ours._state.db == connection.alias
    stored, reference = Invoice.objects.get(pk=ours.pk), Invoice.objects.get(pk=theirs.pk)
    assert_same_row(stored, reference, skip=PER_ROW)
    # ...and both hold the values given (not the same wrong ones).
    expected = {k: v for k, v in kwargs.items() if k not in {"consumer", "merchant", "campaign"}}
    assert {k: getattr(stored, k) for k in expected} == expected
    assert (stored.consumer_id, stored.merchant_id, stored.campaign_id) == (
        kwargs["consumer"].pk,
        kwargs["merchant"].pk,
        kwargs["campaign"].pk,
    )
    # Defaults and auto-now fields: set on the instance and stored as set.
    assert stored.uid == ours.uid
    assert before <= stored.created_at <= after
    assert before <= stored.updated_at <= after
    assert (ours.created_at, ours.updated_at) == (stored.created_at, stored.updated_at)


def test_insert_objects_fills_defaults_like_the_orm():
    consumer = ConsumerFactory()
    given = {
        "number": make_invoice_number(910_002),
        "issue_date": date(2026, 3, 1),
        "total": Decimal("88.00"),
        "consumer": consumer,
        "submitted_at": datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    }
    ours = Invoice(**given)
    insert_objects([ours])
    theirs = Invoice.objects.create(**(given | {"number": make_invoice_number(910_003)}))
    assert_same_row(
        Invoice.objects.get(pk=ours.pk), Invoice.objects.get(pk=theirs.pk), PER_ROW | {"number"}
    )
    assert Invoice.objects.get(pk=ours.pk).status == InvoiceStatus.PENDING


def test_insert_objects_encrypts_the_buyer_name_bound_to_the_row():
    invoice = Invoice(**invoice_kwargs(make_invoice_number(910_004)))
    insert_objects([invoice])

    raw = raw_column(Invoice, "buyer_name", invoice.pk)
    assert raw and BUYER not in raw
    field = Invoice._meta.get_field("buyer_name")
    assert field.decrypt_for(invoice, raw) == BUYER  # bound to this row's uid
    assert Invoice.objects.get(pk=invoice.pk).buyer_name == BUYER


def test_insert_objects_many_rows_in_one_statement_ids_in_order():
    invoice = InvoiceFactory()
    actor = UserFactory()
    at = timezone.now()
    steps = [("", "pending", ""), ("pending", "held", "risk.device"), ("held", "accepted", "")]
    changes = [
        InvoiceStatusChange(
            invoice=invoice, from_status=a, to_status=b, code=c, note=f"步骤{i}", actor=actor, at=at
        )
        for i, (a, b, c) in enumerate(steps)
    ]
    with CaptureQueriesContext(connection) as queries:
        insert_objects(changes)

    assert len(queries.captured_queries) == 1
    assert queries.captured_queries[0]["sql"].lstrip().upper().startswith("INSERT")
    ids = [c.pk for c in changes]
    assert None not in ids and ids == sorted(set(ids))
    assert all(c._state.adding is False for c in changes)
    stored = {c.pk: c for c in InvoiceStatusChange.objects.filter(invoice=invoice)}
    assert set(stored) == set(ids)
    for i, change in enumerate(changes):
        row = stored[change.pk]
        assert (row.from_status, row.to_status, row.code, row.note) == (*steps[i], f"步骤{i}")
        assert (row.actor_id, row.at) == (actor.pk, at)


def test_insert_objects_matches_bulk_create():
    invoice = InvoiceFactory()
    at = timezone.now()

    def build():
        return [
            InvoiceStatusChange(invoice=invoice, from_status="", to_status="pending", at=at),
            InvoiceStatusChange(
                invoice=invoice, from_status="pending", to_status="rejected", code="x", at=at
            ),
        ]

    ours, theirs = build(), build()
    insert_objects(ours)
    InvoiceStatusChange.objects.bulk_create(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert_same_row(
            InvoiceStatusChange.objects.get(pk=a.pk),
            InvoiceStatusChange.objects.get(pk=b.pk),
            {"id"},
        )


def test_insert_objects_outbox_json_payload_matches_bulk_create():
    ours = [outbox_event("ours", 1), outbox_event("ours", 2)]
    theirs = [outbox_event("theirs", 1), outbox_event("theirs", 2)]
    for mine, other in zip(ours, theirs, strict=True):
        other.occurred_at = mine.occurred_at
    insert_objects(ours)
    OutboxEvent.objects.bulk_create(theirs)

    for a, b in zip(ours, theirs, strict=True):
        stored, reference = OutboxEvent.objects.get(pk=a.pk), OutboxEvent.objects.get(pk=b.pk)
        assert_same_row(stored, reference, {"id", "event_id", "stream"})
        assert (stored.event_id, stored.stream) == (a.event_id, "ours")
        assert stored.payload == a.payload
        assert stored.status == "pending" and stored.attempts == 0
    assert [e.pk for e in OutboxEvent.objects.filter(stream="ours")] == [e.pk for e in ours]


def test_insert_objects_unique_violation_raises_integrity_error():
    number = make_invoice_number(910_005)
    InvoiceFactory(number=number, status=InvoiceStatus.PENDING)
    live = Invoice(**invoice_kwargs(number, status=InvoiceStatus.HELD, rejection_code=""))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_objects([live])
    # A rejected attempt with the same number is not live: it goes in.
    rejected = Invoice(**invoice_kwargs(number))
    insert_objects([rejected])
    assert Invoice.objects.filter(number=number).count() == 2


def test_insert_objects_unique_violation_within_one_batch_inserts_nothing():
    number = make_invoice_number(910_006)
    pair = [
        Invoice(**invoice_kwargs(number, status=InvoiceStatus.PENDING, rejection_code="")),
        Invoice(**invoice_kwargs(number, status=InvoiceStatus.ACCEPTED, rejection_code="")),
    ]
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_objects(pair)
    assert not Invoice.objects.filter(number=number).exists()


def test_insert_objects_of_nothing_runs_no_query():
    with CaptureQueriesContext(connection) as queries:
        insert_objects([])
    assert queries.captured_queries == []


# model_row -----------------------------------------------------------------------------------


def test_model_row_consumer_equals_the_orms():
    consumer = ConsumerFactory(
        real_name=BUYER, id_number=make_resident_id(4243), phone="13812345678"
    )
    got = model_row(Consumer, "id", consumer.pk)
    expected = Consumer.objects.get(pk=consumer.pk)

    assert isinstance(got, Consumer)
    assert got._state.adding is False
    assert got._state.db == connection.alias
    assert_same_row(got, expected)
    assert (got.real_name, got.id_number, got.phone) == (BUYER, consumer.id_number, "13812345678")
    assert isinstance(got.public_id, uuid.UUID) and got.public_id == consumer.public_id
    assert got.verified_at == consumer.verified_at and got.created_at == expected.created_at


def test_model_row_instance_saves_back_unchanged():
    consumer = ConsumerFactory(real_name=BUYER, phone="13812345679")
    got = model_row(Consumer, "id", consumer.pk)
    got.status = "frozen"
    got.save(update_fields=["status", "real_name", "real_name_index", "phone", "phone_index"])
    fresh = Consumer.objects.get(pk=consumer.pk)
    assert (fresh.status, fresh.real_name, fresh.phone) == ("frozen", BUYER, "13812345679")
    assert fresh.real_name_index == consumer.real_name_index
    assert fresh.phone_index == consumer.phone_index


def test_model_row_tax_record_equals_the_orms():
    number = make_invoice_number(920_001)
    TaxInvoiceRecord.objects.create(
        number=number,
        issued_at=datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC),
        seller_uscc="91410105MA00000001",
        seller_name="郑州测试商贸有限公司",
        buyer_name_index="a" * 64,
        amount=Decimal("176.99"),
        tax=Decimal("23.01"),
        total=Decimal("200.00"),
        issuer_kind=IssuerKind.SELF,
        industry_code="5211",
        area_code="410105",
        status=RegistryStatus.NORMAL,
        red_total=Decimal("12.30"),
        last_synced_at=datetime(2026, 3, 2, tzinfo=UTC),
    )
    got = model_row(TaxInvoiceRecord, "number", number)
    expected = TaxInvoiceRecord.objects.get(number=number)

    assert got._state.adding is False and got._state.db == connection.alias
    assert_same_row(got, expected)
    assert (got.amount, got.tax, got.total, got.red_total) == (
        Decimal("176.99"),
        Decimal("23.01"),
        Decimal("200.00"),
        Decimal("12.30"),
    )
    assert str(got.red_total) == "12.30"  # quantized as the ORM does, not a float
    assert got.issued_at == datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
    assert got.is_red is False


def test_model_row_invoice_with_date_decimal_and_encrypted_fields():
    invoice = Invoice.objects.create(**invoice_kwargs(make_invoice_number(920_002)))
    got = model_row(Invoice, "id", invoice.pk)
    assert_same_row(got, Invoice.objects.get(pk=invoice.pk))
    assert got.issue_date == date(2026, 3, 1) and type(got.issue_date) is date
    assert got.buyer_name == BUYER
    assert got.amount == Decimal("176.99")


def test_model_row_missing_is_none():
    assert model_row(Consumer, "id", 987_654_321) is None
    assert model_row(TaxInvoiceRecord, "number", make_invoice_number(929_999)) is None


def test_model_row_without_for_update_does_not_lock():
    consumer = ConsumerFactory()
    with CaptureQueriesContext(connection) as queries:
        model_row(Consumer, "id", consumer.pk)
    assert len(queries.captured_queries) == 1
    assert "FOR UPDATE" not in queries.captured_queries[0]["sql"].upper()


@only_postgresql
def test_model_row_for_update_issues_for_update():
    consumer = ConsumerFactory()
    with CaptureQueriesContext(connection) as queries:
        got = model_row(Consumer, "id", consumer.pk, for_update=True)
    assert got.pk == consumer.pk
    assert len(queries.captured_queries) == 1
    assert queries.captured_queries[0]["sql"].rstrip().upper().endswith("FOR UPDATE")


def _locked_elsewhere(pk) -> bool:
    """Whether another connection finds the consumer's row locked."""
    from django.db import connections

    result: list[bool] = []

    def other():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM accounts_consumer WHERE id = %s FOR UPDATE NOWAIT", [pk]
                )
            result.append(False)
        except OperationalError:
            result.append(True)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(10)
    return result[0]


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_model_row_for_update_locks_the_row():
    consumer = ConsumerFactory()
    with transaction.atomic():
        model_row(Consumer, "id", consumer.pk)
        assert _locked_elsewhere(consumer.pk) is False
    with transaction.atomic():
        model_row(Consumer, "id", consumer.pk, for_update=True)
        assert _locked_elsewhere(consumer.pk) is True
    assert _locked_elsewhere(consumer.pk) is False


# The PostgreSQL backend's insert compiler ----------------------------------------------------


@only_postgresql
def test_postgresql_backend_uses_the_project_compiler():
    assert connection.ops.compiler_module == "lotteryinvoice.db.postgresql.compiler"


def _bulk_insert_sql(objs) -> str:
    model = type(objs[0])
    with CaptureQueriesContext(connection) as queries:
        model.objects.bulk_create(objs)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith("INSERT")]
    assert len(inserts) == 1
    return inserts[0]


@only_postgresql
def test_small_batches_are_values_large_ones_unnest():
    from lotteryinvoice.db.postgresql.compiler import UNNEST_MIN_ROWS

    assert UNNEST_MIN_ROWS > 2
    small = [outbox_event("small", seq) for seq in range(UNNEST_MIN_ROWS - 1)]
    large = [outbox_event("large", seq) for seq in range(UNNEST_MIN_ROWS)]
    pair = [outbox_event("pair", seq) for seq in range(2)]

    for batch, unnest in ((pair, False), (small, False), (large, True)):
        sql = _bulk_insert_sql(batch)
        assert ("UNNEST" in sql.upper()) is unnest, sql[:200]
        if not unnest:
            assert "VALUES" in sql.upper()

    # Both forms store the same values.
    def stored(stream):
        return [
            (e.seq, e.event_type, e.payload, e.occurred_at, e.status, e.attempts, e.last_error)
            for e in OutboxEvent.objects.filter(stream=stream).order_by("seq")
        ]

    def built(batch):
        return [(e.seq, e.event_type, e.payload, e.occurred_at, "pending", 0, "") for e in batch]

    assert stored("small") == built(small)
    assert stored("large") == built(large)
    assert stored("large")[: len(small)] == stored("small")
    assert [e.pk for e in large] == [
        e.pk for e in OutboxEvent.objects.filter(stream="large").order_by("seq")
    ]


@only_postgresql
def test_small_and_large_status_history_batches_store_the_same_rows():
    from lotteryinvoice.db.postgresql.compiler import UNNEST_MIN_ROWS

    invoice = InvoiceFactory()
    at = timezone.now() - timedelta(minutes=5)

    def batch(n, code):
        return [
            InvoiceStatusChange(
                invoice=invoice,
                from_status="pending",
                to_status="held",
                code=code,
                note=f"{i}",
                at=at,
            )
            for i in range(n)
        ]

    small, large = batch(UNNEST_MIN_ROWS - 1, "small"), batch(UNNEST_MIN_ROWS, "large")
    assert "UNNEST" not in _bulk_insert_sql(small).upper()
    assert "UNNEST" in _bulk_insert_sql(large).upper()

    def rows(code):
        return list(
            InvoiceStatusChange.objects.filter(code=code)
            .order_by("id")
            .values_list("invoice_id", "from_status", "to_status", "note", "actor_id", "at")
        )

    expected = [(invoice.pk, "pending", "held", f"{i}", None, at) for i in range(UNNEST_MIN_ROWS)]
    assert rows("small") == expected[:-1]
    assert rows("large") == expected


# --- row_with_one -----------------------------------------------------------------------------


def test_row_with_one_equals_select_related_and_links_both_ways():
    consumer = ConsumerFactory()
    user_model = type(consumer.user)
    expected = user_model.objects.select_related("consumer").get(pk=consumer.user_id)
    with CaptureQueriesContext(connection) as queries:
        user = row_with_one(user_model, consumer.user_id, "consumer")
        assert_same_row(user, expected)
        assert_same_row(user.consumer, expected.consumer)
        assert user.consumer.user is user
    assert len(queries) == 1  # the profile and the way back were read with the user
    assert user._state.adding is False and user.consumer._state.adding is False


def test_row_with_one_without_the_profile_raises_like_select_related():
    user = UserFactory()
    loaded = row_with_one(type(user), user.pk, "consumer")
    assert loaded.pk == user.pk
    with CaptureQueriesContext(connection) as queries, pytest.raises(Consumer.DoesNotExist):
        loaded.consumer  # noqa: B018 - the attribute read is the test
    assert len(queries) == 0


def test_row_with_one_missing_row_is_none():
    assert row_with_one(type(UserFactory()), 10**9, "consumer") is None


def test_insert_objects_takes_ids_of_related_objects_saved_after_assignment():
    invoice = Invoice(**invoice_kwargs("24410000000000009999"))
    change = InvoiceStatusChange(
        invoice=invoice, from_status="", to_status="pending", at=timezone.now()
    )
    insert_objects([invoice])  # saved after it was assigned to the change
    insert_objects([change])
    assert InvoiceStatusChange.objects.get(pk=change.pk).invoice_id == invoice.pk


def test_insert_objects_refuses_an_unsaved_related_object_and_saved_instances():
    invoice = Invoice(**invoice_kwargs("24410000000000009998"))
    with pytest.raises(ValueError):
        insert_objects([InvoiceStatusChange(invoice=invoice, from_status="", to_status="pending")])
    insert_objects([invoice])
    with pytest.raises(ValueError):
        insert_objects([invoice])  # already has a primary key
