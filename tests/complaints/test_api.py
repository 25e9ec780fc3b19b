"""The consumer API: file a case (linking only my own records), list mine, read the public
thread, reply, rate, reopen, attach; FAQ and categories. Another consumer's case is a 404 and
internal notes never appear."""

from __future__ import annotations

import pytest

from apps.complaints import services
from apps.complaints.choices import CaseOutcome, CaseStatus
from apps.complaints.models import Case, FaqArticle
from tests.factories.core import ConsumerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db

_keys = iter(range(10_000, 99_999))


def post(api, url, data, **extra):
    return api.post(url, data, format="json", HTTP_IDEMPOTENCY_KEY=f"key-{next(_keys)}", **extra)


def file_case(api, **data):
    data.setdefault("kind", "complaint")
    data.setdefault("subject", "商户拒绝开票")
    data.setdefault("description", "在某超市购物后要求开票被拒")
    return post(api, "/api/v1/me/cases/", data)


def test_file_list_and_read_my_case(api, consumer, category, handlers):
    invoice = InvoiceFactory(consumer=consumer)
    response = file_case(api, invoice=str(invoice.uid))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["reference"].startswith("ZX") and body["status"] == CaseStatus.ASSIGNED
    assert body["invoice"] == str(invoice.uid)
    assert body["category"]["code"] == category.code
    listed = api.get("/api/v1/me/cases/").json()
    assert [c["id"] for c in listed["results"]] == [body["id"]]
    detail = api.get(f"/api/v1/me/cases/{body['id']}/").json()
    assert detail["messages"] == [] and detail["can_rate"] is False
    for private in ("assignee", "queue", "first_response_due", "escalated", "caller_phone"):
        assert private not in detail


def test_create_needs_an_idempotency_key_and_replays(api, category, handlers):
    data = {"kind": "complaint", "subject": "重复提交"}
    assert api.post("/api/v1/me/cases/", data, format="json").json()["code"] == (
        "idempotency.key_required"
    )
    first = api.post("/api/v1/me/cases/", data, format="json", HTTP_IDEMPOTENCY_KEY="same-key-1")
    again = api.post("/api/v1/me/cases/", data, format="json", HTTP_IDEMPOTENCY_KEY="same-key-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Case.objects.filter(subject="重复提交").count() == 1


def test_bad_input_has_the_error_shape(api, category):
    response = file_case(api, kind="gossip")
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "detail"}
    response = file_case(api, category="no-such-category")
    assert response.status_code == 400 and response.json()["code"] == "case.category_invalid"


def test_linking_somebody_elses_invoice_or_award_is_a_404(api, category):
    theirs = InvoiceFactory(consumer=ConsumerFactory(real_name="李四"))
    response = file_case(api, invoice=str(theirs.uid))
    assert response.status_code == 404
    assert response.json()["code"] == "case.link_not_yours"
    assert response.json()["detail"] == {"field": "invoice"}
    import uuid

    response = file_case(api, award=str(uuid.uuid4()))
    assert response.status_code == 404
    assert not Case.objects.exists()


def test_another_consumers_case_is_a_404_everywhere(api, open_case, handlers):
    theirs = open_case(consumer=ConsumerFactory(real_name="李四"))
    base = f"/api/v1/me/cases/{theirs.public_id}/"
    assert api.get(base).status_code == 404
    assert api.get("/api/v1/me/cases/").json()["results"] == []
    assert post(api, base + "messages/", {"body": "hi"}).status_code == 404
    assert post(api, base + "rating/", {"score": 5}).status_code == 404
    assert post(api, base + "reopen/", {}).status_code == 404
    assert theirs.messages.count() == 0


def test_internal_notes_never_reach_the_consumer(api, open_case, consumer, handlers):
    case = open_case()
    services.case_note(case=case, actor=case.assignee, body="内部备注：疑似职业投诉人")
    services.case_reply(case=case, actor=case.assignee, body="您好，已收到")
    response = api.get(f"/api/v1/me/cases/{case.public_id}/")
    text = response.content.decode()
    assert "疑似职业投诉人" not in text and "internal_note" not in text
    assert [m["kind"] for m in response.json()["messages"]] == ["public_reply"]


def test_reply_resumes_a_waiting_case_then_rate_after_resolution(api, open_case, handlers):
    case = open_case()
    services.case_reply(case=case, actor=case.assignee, body="请补充小票", await_consumer=True)
    base = f"/api/v1/me/cases/{case.public_id}/"
    response = post(api, base + "messages/", {"body": "小票照片见附件"})
    assert response.status_code == 201 and response.json()["from_me"] is True
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_PROGRESS
    too_early = post(api, base + "rating/", {"score": 5})
    assert too_early.status_code == 409 and too_early.json()["code"] == "case.not_resolved"
    services.case_resolve(
        case=case, actor=case.assignee, outcome=CaseOutcome.ANSWERED, summary="已处理"
    )
    closed = post(api, base + "messages/", {"body": "还有问题"})
    assert closed.status_code == 409 and closed.json()["code"] == "case.closed_for_messages"
    rated = post(api, base + "rating/", {"score": 4, "comment": "满意"})
    assert rated.status_code == 200 and rated.json()["rating"] == 4
    assert post(api, base + "rating/", {"score": 4}).status_code == 409
    assert post(api, base + "rating/", {"score": 9}).status_code == 400
    reopened = post(api, base + "reopen/", {"reason": "又出现了"})
    assert reopened.status_code == 200 and reopened.json()["status"] == CaseStatus.ASSIGNED


def test_staff_and_anonymous_cannot_use_the_consumer_case_api(client, category):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/me/cases/").status_code == 401
    staff = APIClient()
    from tests.accounts.helpers import make_staff

    staff.force_authenticate(make_staff("clerk"))
    response = staff.get("/api/v1/me/cases/")
    assert response.status_code == 403 and response.json()["code"] == "consumer.required"


def test_faq_lists_published_articles_only_and_is_public(client, category):
    FaqArticle.objects.create(
        slug="pub", title="公开", body="答案", is_published=True, category=category
    )
    FaqArticle.objects.create(slug="draft", title="草稿", body="未发布")
    listed = client.get("/api/v1/faq/").json()
    assert [a["slug"] for a in listed["results"]] == ["pub"]
    assert client.get("/api/v1/faq/pub/").json()["body"] == "答案"
    assert client.get("/api/v1/faq/draft/").status_code == 404
    categories = client.get("/api/v1/case-categories/").json()
    assert [c["code"] for c in categories] == [category.code]


def test_the_case_endpoints_are_in_the_openapi_schema(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path in (
        "/api/v1/me/cases/",
        "/api/v1/me/cases/{public_id}/",
        "/api/v1/me/cases/{public_id}/messages/",
        "/api/v1/me/cases/{public_id}/rating/",
        "/api/v1/me/cases/{public_id}/attachments/",
        "/api/v1/faq/",
    ):
        assert path in schema["paths"], path
