"""Red-letter reversals: a red invoice in the feed withdraws the campaign entry of its blue one,
through `invoice_reverse`, with history, audit and a reason the consumer can read."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify
from apps.common.exceptions import InvalidTransition
from apps.invoices import feed
from apps.invoices.choices import InvoiceStatus, RegistryStatus
from apps.invoices.models import FeedImport, Invoice, TaxInvoiceRecord
from apps.invoices.reversals import invoice_reverse, red_state, registry_apply_reds
from tests.factories.core import InvoiceFactory, make_invoice_number
from tests.invoices.conftest import SELLER, submit

pytestmark = pytest.mark.django_db

HEADER = ",".join(feed.FEED_COLUMNS)


def red_line(number: str, blue: str, total: str) -> str:
    total_d = Decimal(total)
    tax = (total_d * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
    issued = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
    values = [
        number, "32", issued, SELLER, "郑州测试商贸有限公司", "张三", "",
        str(total_d - tax), str(tax), str(total_d), "self", "5211", "410105", blue,
    ]  # fmt: skip
    return ",".join(values)


def import_reds(*lines: str) -> FeedImport:
    data = ("\n".join([HEADER, *lines]) + "\n").encode()
    feed_import = FeedImport.objects.create(file_name="reds.csv")
    return feed.feed_import_run(feed_import=feed_import, stream=io.BytesIO(data))


_reds = iter(range(700_000, 800_000))


def red_number() -> str:
    return make_invoice_number(next(_reds))


@pytest.fixture
def entered(api, campaign, make_record):
    """An invoice of 200.00 accepted into the campaign through the consumer API."""

    def enter(total="200.00"):
        record, body = make_record(total=total)
        response = submit(api, body)
        assert response.status_code == 201, response.content
        invoice = Invoice.objects.get(uid=response.json()["invoice"]["uid"])
        assert invoice.status == InvoiceStatus.ACCEPTED
        return invoice, record

    return enter


def test_a_full_reversal_withdraws_the_entry_and_tells_the_consumer(api, entered):
    invoice, record = entered()
    result = import_reds(red_line(red_number(), record.number, "-200.00"))
    assert result.red_applied == 1 and result.entries_withdrawn == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REVERSED
    assert invoice.rejection_code == "invoice.red_flushed"
    step = invoice.history.last()
    assert (step.from_status, step.to_status, step.code) == (
        "accepted",
        "reversed",
        "invoice.red_flushed",
    )
    event = AuditEvent.objects.get(action="invoice.reversed", target_id=str(invoice.pk))
    assert event.before == {"status": "accepted"} and event.after["status"] == "reversed"
    assert audit_verify().ok
    record.refresh_from_db()
    assert record.status == RegistryStatus.RED_FLUSHED
    assert record.red_total == Decimal("200.00")
    body = api.get(f"/api/v1/invoices/{invoice.uid}/").json()
    assert body["status"] == "reversed"
    assert body["rejection_code"] == "invoice.red_flushed" and body["rejection_message"]
    assert body["history"][-1]["code"] == "invoice.red_flushed"


def test_a_reversed_entry_no_longer_counts_as_an_entry(api, entered):
    invoice, record = entered()
    assert len(api.get("/api/v1/entries/").json()["results"]) == 1
    import_reds(red_line(red_number(), record.number, "-200.00"))
    uids = [e["uid"] for e in api.get("/api/v1/entries/").json()["results"]]
    assert str(invoice.uid) not in uids


def test_a_partial_reversal_below_the_minimum_makes_it_ineligible(entered):
    invoice, record = entered("200.00")
    import_reds(red_line(red_number(), record.number, "-150.00"))  # 50.00 left, minimum 100
    invoice.refresh_from_db()
    record.refresh_from_db()
    assert record.status == RegistryStatus.PARTIALLY_RED_FLUSHED
    assert invoice.status == InvoiceStatus.REVERSED
    assert invoice.rejection_code == "invoice.red_flushed"
    assert "50.00" in invoice.history.last().note


def test_a_partial_reversal_above_the_minimum_keeps_the_entry(entered):
    invoice, record = entered("300.00")
    result = import_reds(red_line(red_number(), record.number, "-100.00"))  # 200.00 left
    assert result.entries_withdrawn == 0
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ACCEPTED and invoice.rejection_code == ""
    step = invoice.history.last()
    assert (step.from_status, step.to_status, step.code) == (
        "accepted",
        "accepted",
        "invoice.partially_red_flushed",
    )
    assert AuditEvent.objects.filter(
        action="invoice.partially_reversed", target_id=str(invoice.pk)
    ).exists()


def test_two_partial_reversals_add_up(entered):
    invoice, record = entered("300.00")
    import_reds(red_line(red_number(), record.number, "-100.00"))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ACCEPTED
    import_reds(red_line(red_number(), record.number, "-120.00"))  # 80.00 left
    record.refresh_from_db()
    assert record.red_total == Decimal("220.00")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REVERSED


def test_reimporting_the_red_invoice_changes_nothing(entered):
    invoice, record = entered()
    line = red_line(red_number(), record.number, "-200.00")
    import_reds(line)
    steps = invoice.history.count()
    events = AuditEvent.objects.count()
    again = import_reds(line)
    assert (again.red_applied, again.entries_withdrawn, again.unchanged) == (0, 0, 1)
    assert invoice.history.count() == steps
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("status", [InvoiceStatus.HELD, InvoiceStatus.PENDING])
def test_held_or_pending_invoices_of_a_red_flushed_invoice_are_rejected(
    campaign, make_record, status
):
    record, _body = make_record()
    invoice = InvoiceFactory(
        number=record.number, status=status, campaign=campaign, total=record.total
    )
    result = import_reds(red_line(red_number(), record.number, "-200.00"))
    assert result.entries_withdrawn == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REJECTED
    assert invoice.rejection_code == "invoice.red_flushed" and invoice.decided_at
    assert invoice.history.last().to_status == InvoiceStatus.REJECTED


def test_rejected_submissions_are_left_alone(campaign, make_record):
    record, _body = make_record()
    invoice = InvoiceFactory(
        number=record.number, status="rejected", rejection_code="invoice.name_mismatch"
    )
    import_reds(red_line(red_number(), record.number, "-200.00"))
    invoice.refresh_from_db()
    assert invoice.rejection_code == "invoice.name_mismatch"
    assert not invoice.history.exists()


def test_a_reversal_decided_by_staff_without_a_registry_record(campaign, admin_user):
    invoice = InvoiceFactory(status="accepted", campaign=campaign)
    invoice_reverse(invoice=invoice, reason_code="invoice.red_flushed", actor=admin_user)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REVERSED
    assert invoice.history.last().actor == admin_user
    event = AuditEvent.objects.get(action="invoice.reversed")
    assert event.actor_id == admin_user.pk


def test_invoice_reverse_checks_the_transition_table(campaign, monkeypatch):
    from apps.invoices import reversals

    invoice = InvoiceFactory(status="accepted", campaign=campaign)
    monkeypatch.setitem(reversals.INVOICE_TRANSITIONS, InvoiceStatus.ACCEPTED, frozenset())
    with pytest.raises(InvalidTransition):
        invoice_reverse(invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ACCEPTED


def test_registry_recompute_in_python_matches_the_rule(make_record):
    blue, _ = make_record(total="300.00")
    TaxInvoiceRecord.objects.create(
        number=red_number(),
        issued_at=timezone.now(),
        seller_uscc=SELLER,
        seller_name="x",
        amount=Decimal("-88.50"),
        tax=Decimal("-11.50"),
        total=Decimal("-100.00"),
        is_red=True,
        reverses_number=blue.number,
        last_synced_at=timezone.now(),
    )
    outcome = registry_apply_reds(blue_numbers=[blue.number], now=timezone.now())
    assert outcome.blues_changed == 1
    blue.refresh_from_db()
    assert (blue.status, blue.red_total) == (RegistryStatus.PARTIALLY_RED_FLUSHED, Decimal("100"))
    assert registry_apply_reds(blue_numbers=[blue.number], now=timezone.now()).blues_changed == 0


@pytest.mark.parametrize(
    ("total", "red_total", "state"),
    [
        ("200.00", "0.00", RegistryStatus.NORMAL),
        ("200.00", "0.01", RegistryStatus.PARTIALLY_RED_FLUSHED),
        ("200.00", "200.00", RegistryStatus.RED_FLUSHED),
        ("200.00", "250.00", RegistryStatus.RED_FLUSHED),
    ],
)
def test_red_state(total, red_total, state):
    assert red_state(Decimal(total), Decimal(red_total)) == state
