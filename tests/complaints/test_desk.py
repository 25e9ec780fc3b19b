"""The staff case desk: who sees which case, one-click actions as POST forms, masked personal
data, and a number of queries that does not grow with the number of cases."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.complaints import services
from apps.complaints.choices import CaseChannel, CaseKind, CaseOutcome, CaseStatus
from apps.complaints.models import CannedReply, Case, CaseQueueMembership

from .conftest import staff_in_role

pytestmark = pytest.mark.django_db

MINE = reverse("complaints:mine")
QUEUE = reverse("complaints:queue")
AT_RISK = reverse("complaints:at_risk")


def detail(case):
    return reverse("complaints:case_detail", args=[case.reference])


def act(case, action):
    return reverse("complaints:case_action", args=[case.reference, action])


def test_the_desk_is_behind_the_admin_sign_in_and_the_second_factor(client, handlers):
    response = client.get(MINE)
    assert response.status_code == 302 and "login" in response["Location"]
    client.force_login(handlers[0])  # password only, no second factor
    response = client.get(MINE)
    assert response.status_code == 302 and "mine" not in response["Location"]


def test_staff_without_a_complaints_role_are_refused(staff_client, roles, open_case, handlers):
    statistician = staff_in_role("statistician")
    client = staff_client(statistician)
    assert client.get(MINE).status_code == 403
    assert client.get(detail(open_case())).status_code == 403


def test_a_handler_works_a_case_with_the_buttons(staff_client, open_case, handlers):
    case = open_case()
    handler = case.assignee
    client = staff_client(handler)
    assert case.reference in client.get(MINE).content.decode()
    page = client.get(detail(case))
    assert page.status_code == 200
    html = page.content.decode()
    for needle in ('accesskey="t"', 'accesskey="r"', 'accesskey="n"', 'accesskey="s"', "张*"):
        assert needle in html, needle
    assert "张三" not in html and "13912345678" not in html  # masked consumer
    assert client.post(act(case, "take")).status_code == 302
    CannedReply.objects.create(title="已收到", body="您好，已收到您的反映。")
    canned = CannedReply.objects.get()
    response = client.post(act(case, "reply"), {"reply-canned": canned.pk, "reply-body": ""})
    assert response.status_code == 302
    client.post(act(case, "note"), {"note-body": "内部：需核实"})
    client.post(
        act(case, "resolve"), {"resolve-outcome": CaseOutcome.ANSWERED, "resolve-summary": "已答复"}
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.first_responded_at is not None
    assert list(case.messages.values_list("body", flat=True)) == [
        "您好，已收到您的反映。",
        "内部：需核实",
    ]
    timeline = client.get(detail(case)).content.decode()
    assert "内部：需核实" in timeline and "已答复" in timeline


def test_an_invalid_form_shows_the_page_again_with_the_error(staff_client, open_case, handlers):
    case = open_case()
    response = staff_client(case.assignee).post(act(case, "reply"), {"reply-body": ""})
    assert response.status_code == 400
    assert "Write a reply" in response.content.decode() or "回复" in response.content.decode()


def test_a_handler_outside_the_queue_cannot_see_or_act(staff_client, open_case, handlers, outsider):
    case = open_case()
    client = staff_client(outsider)
    assert client.get(detail(case)).status_code == 404
    assert client.post(act(case, "take")).status_code == 404
    assert client.post(act(case, "note"), {"note-body": "x"}).status_code == 404
    assert case.reference not in client.get(QUEUE).content.decode()
    assert case.reference not in client.get(AT_RISK).content.decode()
    other_queue_id = CaseQueueMembership.objects.get(user=outsider).queue_id
    assert case.reference not in client.get(f"{QUEUE}?queue={case.queue_id}").content.decode()
    assert client.get(f"{QUEUE}?queue={other_queue_id}").status_code == 200
    case.refresh_from_db()
    assert case.status == CaseStatus.ASSIGNED and case.messages.count() == 0
    # Nor in the admin's case list.
    admin_list = client.get(reverse("admin:complaints_case_changelist"))
    assert case.reference not in admin_list.content.decode()


def test_handlers_see_their_queue_supervisors_see_the_team(
    staff_client, open_case, handlers, supervisor
):
    cases = [open_case(subject=f"第{i}件") for i in range(3)]
    assert {c.assignee for c in cases} == set(handlers)
    handler_view = staff_client(handlers[0]).get(QUEUE).content.decode()
    assert all(c.reference in handler_view for c in cases)
    assert "Team workload" not in handler_view and "团队工作量" not in handler_view
    mine = staff_client(handlers[0]).get(MINE).content.decode()
    assert cases[0].reference in mine and cases[1].reference not in mine
    team = staff_client(supervisor).get(QUEUE)
    html = team.content.decode()
    assert all(c.reference in html for c in cases)
    rows = team.context["team"]
    assert {r["membership"].user_id: r["open"] for r in rows} == {
        handlers[0].pk: 1,
        handlers[1].pk: 1,
        handlers[2].pk: 1,
        supervisor.pk: 0,
    }
    filtered = staff_client(supervisor).get(f"{QUEUE}?assignee={handlers[1].pk}")
    assert [c.pk for c in filtered.context["cases"]] == [cases[1].pk]


def test_only_supervisors_reassign_from_the_page(staff_client, open_case, handlers, supervisor):
    case = open_case()
    handler_page = staff_client(handlers[0]).get(detail(case)).content.decode()
    assert "reassign-assignee" not in handler_page
    response = staff_client(handlers[0]).post(
        act(case, "reassign"), {"reassign-assignee": handlers[1].pk}
    )
    assert response.status_code == 403
    response = staff_client(supervisor).post(
        act(case, "reassign"), {"reassign-assignee": handlers[2].pk, "reassign-reason": "x"}
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.assignee == handlers[2]


def test_escalate_and_availability_from_the_desk(staff_client, open_case, handlers, supervisor):
    case = open_case()
    client = staff_client(case.assignee)
    client.post(act(case, "escalate"), {"escalate-reason": "媒体关注"})
    case.refresh_from_db()
    assert case.escalated
    membership = CaseQueueMembership.objects.get(user=handlers[1])
    client = staff_client(handlers[1])
    client.post(reverse("complaints:availability"), {"membership": membership.pk, "available": "0"})
    membership.refresh_from_db()
    assert membership.available is False
    # Somebody else's availability is not mine to change.
    other = CaseQueueMembership.objects.get(user=handlers[2])
    client.post(reverse("complaints:availability"), {"membership": other.pk, "available": "0"})
    other.refresh_from_db()
    assert other.available is True


def test_staff_enter_a_hotline_case(staff_client, category, handlers):
    response = staff_client(handlers[0]).post(
        reverse("complaints:case_new"),
        {
            "channel": CaseChannel.HOTLINE,
            "category": category.pk,
            "subject": "热线来电：拒开发票",
            "caller_name": "王五",
            "caller_phone": "+86 139 0000 1111",
            "hotline_ticket": "ZZ12345-1",
        },
    )
    assert response.status_code == 302
    case = Case.objects.get(hotline_ticket="ZZ12345-1")
    assert case.caller_phone == "13900001111" and case.created_by == handlers[0]
    page = staff_client(handlers[0]).get(detail(case)).content.decode()
    assert "王*" in page and "139****1111" in page and "13900001111" not in page
    again = staff_client(handlers[0]).post(
        reverse("complaints:case_new"),
        {
            "channel": CaseChannel.HOTLINE,
            "category": category.pk,
            "subject": "重复",
            "caller_phone": "13900001111",
            "hotline_ticket": "ZZ12345-1",
        },
    )
    assert again.status_code == 200 and Case.objects.count() == 1


def test_oversight_roles_read_every_case_but_act_on_none(staff_client, open_case, handlers, roles):
    case = open_case()
    auditor = staff_in_role("auditor")
    client = staff_client(auditor)
    page = client.get(detail(case))
    assert page.status_code == 200 and 'accesskey="r"' not in page.content.decode()
    assert case.reference in client.get(QUEUE).content.decode()
    assert client.post(act(case, "note"), {"note-body": "x"}).status_code == 403
    assert client.get(reverse("complaints:case_new")).status_code == 403


@pytest.mark.parametrize("url", [MINE, QUEUE, AT_RISK])
def test_list_queries_do_not_grow_with_the_number_of_cases(
    url, staff_client, open_case, supervisor, handlers, category, django_assert_max_num_queries
):
    category.first_response_hours = 0  # every case is overdue: the at-risk list has them all
    category.save()
    # Everything goes to the supervisor, so "My cases" lists them all too.
    CaseQueueMembership.objects.exclude(user=supervisor).update(available=False)
    CaseQueueMembership.objects.filter(user=supervisor).update(available=True)
    client = staff_client(supervisor)
    counts = []
    for batch in (3, 30):
        for _ in range(batch - ((counts and 3) or 0)):
            open_case(kind=CaseKind.COMPLAINT)
        client.get(url)  # warm caches (settings row, content types)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        assert len(response.context["cases"]) == batch
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    with django_assert_max_num_queries(20):
        client.get(url)


def test_case_page_queries_do_not_grow_with_the_thread(staff_client, open_case, handlers):
    case = open_case()
    client = staff_client(case.assignee)
    counts = []
    for _ in range(2):
        for n in range(10):
            services.case_note(case=case, actor=case.assignee, body=f"note {n}")
        client.get(detail(case))
        with CaptureQueriesContext(connection) as queries:
            assert client.get(detail(case)).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_pagination(staff_client, open_case, supervisor, handlers):
    from apps.complaints import views

    CaseQueueMembership.objects.exclude(user=supervisor).update(available=False)
    CaseQueueMembership.objects.filter(user=supervisor).update(available=True)
    for _ in range(views.PAGE_SIZE + 3):
        open_case()
    client = staff_client(supervisor)
    first = client.get(MINE)
    second = client.get(MINE + "?page=2")
    assert len(first.context["cases"]) == views.PAGE_SIZE
    assert len(second.context["cases"]) == 3
    assert 'rel="next"' in first.content.decode()


def test_the_overdue_list_counts_at_most_its_cap(
    staff_client, open_case, supervisor, handlers, category, monkeypatch
):
    from apps.complaints import views

    category.first_response_hours = 0
    category.save()
    for _ in range(4):
        open_case()
    monkeypatch.setattr(views._CappedPaginator, "cap", 3)
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    response = staff_client(supervisor).get(AT_RISK)
    assert response.context["page"].paginator.count == 3
    assert response.context["page"].paginator.capped is True
