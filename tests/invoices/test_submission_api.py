"""The submission pipeline through the consumer API: every rejection code, with its HTTP status,
and proof that nothing entered."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.invoices.choices import InvoiceStatus, RegistryStatus
from apps.invoices.models import Invoice
from apps.invoices.services import invoice_recheck
from apps.merchants.choices import MerchantStatus
from apps.risk.services import RiskAction, RiskDecision
from tests.factories.core import ConsumerFactory, MerchantFactory, make_invoice_number
from tests.invoices.conftest import SELLER, submit

pytestmark = pytest.mark.django_db


def entered() -> int:
    return Invoice.objects.filter(status__in=[InvoiceStatus.ACCEPTED, InvoiceStatus.HELD]).count()


def assert_rejected(response, code: str, status: int):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"] and isinstance(body["detail"], dict)
    assert entered() == 0


def test_a_good_invoice_enters(api, campaign, make_record):
    _record, body = make_record()
    response = submit(api, body)
    assert response.status_code == 201, response.content
    invoice = response.json()["invoice"]
    assert invoice["status"] == "accepted" and invoice["campaign"] == "zz-test"
    assert response.json()["instant_prize"] is None
    stored = Invoice.objects.get(uid=invoice["uid"])
    assert stored.entered_at and stored.buyer_name == "张三"
    steps = list(stored.history.values_list("from_status", "to_status"))
    assert steps == [("", "pending"), ("pending", "accepted")]


def test_qr_payload_with_fullwidth_digits_enters(api, campaign, make_record):
    _record, body = make_record()
    qr = f"01,32,,{body['number']},{body['total']},{body['issue_date'].replace('-', '')},,AB12"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in qr)
    response = submit(api, {"qr": f"  {fullwidth} "})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"number": "2641100", "issue_date": "2026-11-01", "total": "200"},
            "invoice_number.invalid_length",
        ),
        (
            {"number": "2641100000000000000A", "issue_date": "2026-11-01", "total": "200"},
            "invoice_number.invalid_character",
        ),
        (
            {"number": "26991000000000000001", "issue_date": "2026-11-01", "total": "200"},
            "invoice_number.invalid_province",
        ),
        ({"qr": "01,32,,123"}, "invoice_qr.malformed"),
        ({"qr": "01,32,,26411000000000000001,abc,20261101,,X"}, "invoice_qr.invalid_amount"),
        ({"number": "26411000000000000001"}, "invoice.incomplete"),
        (
            {"number": "26411000000000000001", "issue_date": "2026-02-30", "total": "200"},
            "invoice.invalid_date",
        ),
        (
            {"number": "26411000000000000001", "issue_date": "2099-01-01", "total": "200"},
            "invoice.future_date",
        ),
        (
            {"number": "26411000000000000001", "issue_date": "2026-11-01", "total": "-5"},
            "invoice.invalid_total",
        ),
        (
            {"number": "26411000000000000001", "issue_date": "2026-11-01", "total": "1.234"},
            "invoice.invalid_total",
        ),
        (
            {"number": "26411000000000000001", "issue_date": "2026-11-01", "total": "1e5"},
            "invoice.invalid_total",
        ),
        (
            {"number": "26411000000000000001", "issue_date": "2026-11-01", "total": "' OR 1=1 --"},
            "invoice.invalid_total",
        ),
    ],
)
def test_malformed_input_is_a_400_with_a_code(api, campaign, body, code):
    assert_rejected(submit(api, body), code, 400)
    assert Invoice.objects.count() == 0


def test_duplicate_of_an_entered_invoice(api, campaign, make_record):
    _record, body = make_record()
    assert submit(api, body).status_code == 201
    other = APIClient()
    other.force_authenticate(ConsumerFactory(real_name="张三").user)
    response = submit(other, body)
    assert response.status_code == 409 and response.json()["code"] == "invoice.duplicate"
    assert entered() == 1
    assert (
        Invoice.objects.filter(status="rejected", rejection_code="invoice.duplicate").count() == 1
    )


def test_mismatched_total_is_rejected(api, campaign, make_record):
    _record, body = make_record(total="200.00")
    assert_rejected(submit(api, {**body, "total": "210.00"}), "invoice.mismatch", 422)


def test_someone_elses_invoice_is_rejected_and_never_blocks_the_buyer(api, campaign, make_record):
    _record, body = make_record(buyer_name="张三")
    intruder = APIClient()
    intruder.force_authenticate(ConsumerFactory(real_name="李四").user)
    assert_rejected(submit(intruder, body), "invoice.name_mismatch", 422)
    response = submit(api, body)
    assert response.status_code == 201 and response.json()["invoice"]["status"] == "accepted"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"buyer_tax_id": "91410105MA00000001"}, "invoice.enterprise_buyer"),
        ({"invoice_type": "31"}, "invoice.type_not_allowed"),
        ({"total": "99.99"}, "invoice.below_minimum"),
        ({"area_code": "110105"}, "invoice.seller_outside_area"),
        ({"industry_code": "9042"}, "invoice.industry_not_eligible"),
        ({"industry_code": "7211"}, "invoice.industry_not_eligible"),
        ({"status": RegistryStatus.RED_FLUSHED, "red_total": "200.00"}, "invoice.red_flushed"),
        (
            {"status": RegistryStatus.PARTIALLY_RED_FLUSHED, "red_total": "150.00"},
            "invoice.red_flushed",
        ),
        ({"issuer_kind": "agent"}, "invoice.agent_issued"),
    ],
)
def test_ineligible_invoices_are_rejected(api, campaign, make_record, fields, code):
    _record, body = make_record(**fields)
    assert_rejected(submit(api, body), code, 422)
    rejected = Invoice.objects.get(number=body["number"])
    assert rejected.status == "rejected" and rejected.rejection_code == code


def test_partial_reversal_above_the_minimum_still_enters(api, campaign, make_record):
    _record, body = make_record(status=RegistryStatus.PARTIALLY_RED_FLUSHED, red_total="50.00")
    assert submit(api, body).status_code == 201


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (MerchantStatus.BLACKLISTED, "invoice.seller_blacklisted"),
        (MerchantStatus.SUSPENDED, "invoice.seller_suspended"),
    ],
)
def test_blacklisted_or_suspended_seller(api, campaign, make_record, status, code):
    MerchantFactory(uscc=SELLER, status=status)
    _record, body = make_record()
    assert_rejected(submit(api, body), code, 422)


def test_no_campaign_for_the_issue_date(api, campaign, make_record):
    campaign.starts_at = timezone.now() - timedelta(days=1)
    campaign.save()
    _record, body = make_record(days_ago=10)
    assert_rejected(submit(api, body), "invoice.no_campaign", 422)


@pytest.mark.parametrize(
    ("caps", "code"),
    [
        ({"cap_per_day": 2}, "limit.daily_reached"),
        ({"cap_per_day": None, "cap_per_week": 2}, "limit.weekly_reached"),
        ({"cap_per_day": None, "cap_per_month": 2}, "limit.monthly_reached"),
        (
            {"cap_per_day": None, "cap_per_month": None, "cap_per_campaign": 2},
            "limit.campaign_reached",
        ),
    ],
)
def test_caps(api, campaign, make_record, caps, code):
    for field, value in caps.items():
        setattr(campaign, field, value)
    campaign.save()
    for _ in range(2):
        assert submit(api, make_record()[1]).status_code == 201
    response = submit(api, make_record()[1])
    assert response.status_code == 422 and response.json()["code"] == code
    assert response.json()["detail"]["limit"] == 2
    assert entered() == 2


def test_daily_cap_counts_in_shanghai_time(api, campaign, make_record):
    campaign.cap_per_day = 1
    campaign.save()
    # 23:30 on one Shanghai day, then 00:30 the next: two different days for the cap
    # (15:30 and 16:30 UTC).
    day = timezone.localdate() - timedelta(days=3)
    with time_machine.travel(f"{day.isoformat()}T15:30:00+00:00", tick=False):
        assert submit(api, make_record(days_ago=5)[1]).status_code == 201
    with time_machine.travel(f"{day.isoformat()}T16:30:00+00:00", tick=False):
        assert submit(api, make_record(days_ago=5)[1]).status_code == 201
        assert submit(api, make_record(days_ago=5)[1]).json()["code"] == "limit.daily_reached"


def test_risk_block_and_hold_are_honoured(api, campaign, make_record, monkeypatch):
    decision = {"value": RiskDecision(RiskAction.BLOCK, 90, ("test rule",), "risk.test")}
    monkeypatch.setattr(
        "apps.invoices.services.risk_assess_submission", lambda **kw: decision["value"]
    )
    assert_rejected(submit(api, make_record()[1]), "risk.blocked", 422)
    decision["value"] = RiskDecision(RiskAction.HOLD, 60, ("test rule",), "risk.test")
    response = submit(api, make_record()[1])
    assert response.status_code == 201 and response.json()["invoice"]["status"] == "held"
    assert not Invoice.objects.filter(status="accepted").exists()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            {"verification_status": VerificationStatus.UNVERIFIED, "verified_at": None},
            "consumer.not_verified",
        ),
        ({"status": ConsumerStatus.FROZEN}, "consumer.frozen"),
    ],
)
def test_consumers_who_may_not_submit(api, consumer, campaign, make_record, change, code):
    if "verification_status" in change:
        change["id_number"] = ""
    for field, value in change.items():
        setattr(consumer, field, value)
    consumer.save()
    assert_rejected(submit(api, make_record()[1]), code, 403)


def test_not_found_yet_is_pending_then_entered_when_the_registry_catches_up(
    api, campaign, make_record
):
    number = make_invoice_number(777_001)
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = submit(api, {"number": number, "issue_date": day, "total": "200.00"})
    assert response.status_code == 201 and response.json()["invoice"]["status"] == "pending"
    invoice = Invoice.objects.get(number=number)
    assert invoice.next_check_at > timezone.now()
    invoice_recheck(invoice_id=invoice.pk)  # still unknown: back-off grows
    invoice.refresh_from_db()
    assert invoice.status == "pending" and invoice.verification_attempts == 1
    make_record(number=number, days_ago=1)
    assert invoice_recheck(invoice_id=invoice.pk).status == "accepted"
    steps = list(invoice.history.values_list("to_status", flat=True))
    assert steps == ["pending", "pending", "accepted"]


def test_not_found_past_the_deadline_is_rejected(api, campaign, settings):
    number = make_invoice_number(777_002)
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    submit(api, {"number": number, "issue_date": day, "total": "200.00"})
    invoice = Invoice.objects.get(number=number)
    with time_machine.travel(
        timezone.now() + timedelta(hours=settings.INVOICE_PENDING_MAX_HOURS + 1)
    ):
        result = invoice_recheck(invoice_id=invoice.pk)
    assert result.status == "rejected" and result.rejection_code == "invoice.not_found"
    assert entered() == 0


def test_mass_assignment_is_ignored(api, consumer, campaign, make_record):
    other = ConsumerFactory()
    _record, body = make_record(total="150.00")
    response = submit(
        api,
        {
            **body,
            "status": "accepted",
            "consumer": other.pk,
            "amount": "1.00",
            "campaign": 999,
            "verified": True,
            "is_staff": True,
            "uid": "x",
        },
    )
    assert response.status_code == 201
    invoice = Invoice.objects.get(number=body["number"])
    assert invoice.consumer_id == consumer.pk and invoice.total == 150
    assert not consumer.user.is_staff
