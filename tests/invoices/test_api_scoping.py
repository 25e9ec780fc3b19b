"""The consumer API: scoping (BOLA), Idempotency-Key, throttling, pagination limits."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from apps.invoices.models import Invoice
from tests.factories.core import ConsumerFactory, InvoiceFactory
from tests.invoices.conftest import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_consumers_invoice(db):
    return InvoiceFactory(consumer=ConsumerFactory(real_name="李四"), status="accepted")


def test_a_consumer_never_sees_another_consumers_invoices(api, consumer, other_consumers_invoice):
    mine = InvoiceFactory(consumer=consumer, status="accepted")
    listed = api.get("/api/v1/invoices/").json()
    assert [i["uid"] for i in listed["results"]] == [str(mine.uid)]
    for query in (
        "?status=accepted",
        f"?number={other_consumers_invoice.number}",
        "?page_size=100",
    ):
        uids = {i["uid"] for i in api.get(f"/api/v1/invoices/{query}").json()["results"]}
        assert str(other_consumers_invoice.uid) not in uids
    detail = api.get(f"/api/v1/invoices/{other_consumers_invoice.uid}/")
    assert detail.status_code == 404 and detail.json()["code"] == "not_found"
    assert str(other_consumers_invoice.number) not in detail.content.decode()
    entries = api.get("/api/v1/entries/").json()["results"]
    assert [e["uid"] for e in entries] == [str(mine.uid)]


def test_no_write_verbs_on_existing_invoices(api, consumer):
    mine = InvoiceFactory(consumer=consumer, status="pending")
    for method in ("put", "patch", "delete"):
        response = getattr(api, method)(f"/api/v1/invoices/{mine.uid}/", {"status": "accepted"})
        assert response.status_code == 405
    mine.refresh_from_db()
    assert mine.status == "pending"


def test_anonymous_and_staff_without_consumer_are_refused(db):
    assert APIClient().get("/api/v1/invoices/").status_code in (401, 403)
    staff = APIClient()
    staff.force_authenticate(ConsumerFactory().user.__class__.objects.create(username="clerk"))
    response = staff.get("/api/v1/invoices/")
    assert response.status_code == 403


def test_detail_shows_the_history(api, consumer, campaign, make_record):
    _record, body = make_record()
    uid = submit(api, body).json()["invoice"]["uid"]
    detail = api.get(f"/api/v1/invoices/{uid}/").json()
    assert [s["to_status"] for s in detail["history"]] == ["pending", "accepted"]


def test_same_key_same_body_replays_the_first_reply(api, campaign, make_record):
    _record, body = make_record()
    first = submit(api, body, key="replay-key-0001")
    second = submit(api, body, key="replay-key-0001")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Invoice.objects.filter(number=body["number"]).count() == 1


def test_same_key_replays_an_error_too(api, campaign, make_record):
    _record, body = make_record(total="50.00")
    first = submit(api, body, key="replay-key-0002")
    second = submit(api, body, key="replay-key-0002")
    assert first.status_code == second.status_code == 422
    assert first.json() == second.json()
    assert Invoice.objects.filter(number=body["number"]).count() == 1


def test_same_key_other_body_is_refused(api, campaign, make_record):
    submit(api, make_record()[1], key="replay-key-0003")
    response = submit(api, make_record()[1], key="replay-key-0003")
    assert response.status_code == 422 and response.json()["code"] == "idempotency.key_reused"


def test_keys_are_per_user(api, campaign, make_record):
    submit(api, make_record()[1], key="shared-key-0004")
    other = APIClient()
    other.force_authenticate(ConsumerFactory(real_name="张三").user)
    response = submit(other, make_record()[1], key="shared-key-0004")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("key", "code"), [("", "idempotency.key_required"), ("short", "idempotency.key_invalid")]
)
def test_missing_or_bad_key(api, campaign, make_record, key, code):
    response = api.post(
        "/api/v1/invoices/", make_record()[1], format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400 and response.json()["code"] == code


@override_settings(
    API_THROTTLE_RATES={"invoice_submit": "3/min", "consumer": "100/min", "ip": "100/min"}
)
def test_submissions_are_throttled_with_429(api, campaign, make_record):
    codes = [submit(api, make_record()[1]).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    response = submit(api, make_record()[1])
    assert response.json()["code"] == "throttled" and "Retry-After" in response


def test_huge_page_size_is_capped(api, consumer):
    InvoiceFactory.create_batch(3, consumer=consumer)
    response = api.get("/api/v1/invoices/?page_size=100000000")
    assert response.status_code == 200 and len(response.json()["results"]) == 3


def test_deeply_nested_json_is_a_clean_400(api, campaign):
    body = "[" * 5000 + "]" * 5000
    response = api.post(
        "/api/v1/invoices/",
        body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="deep-json-01",
    )
    assert response.status_code == 400
