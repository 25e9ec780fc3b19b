"""The back office of the case desk: configuration pages for the roles that own them, the case
desk entry on the admin index, cases read-only and scoped, category import and export."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.complaints.models import CaseCategory, CaseSettings, WorkCalendarDay

from .conftest import staff_in_role

pytestmark = pytest.mark.django_db

CONFIG_MODELS = (
    "casequeue",
    "casecategory",
    "workcalendarday",
    "cannedreply",
    "faqarticle",
    "casesettings",
)


@pytest.mark.parametrize(
    "role", ["campaign_admin", "auditor", "complaint_supervisor", "complaint_handler"]
)
def test_admin_pages_render_for_the_roles(
    role, roles, staff_client, open_case, handlers, calendar_2026
):
    case = open_case()
    user = staff_in_role(role)
    client = staff_client(user)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert reverse("admin:complaints_casedesk_changelist") in index.content.decode()
    desk = client.get(reverse("admin:complaints_casedesk_changelist"))
    assert desk.status_code == 302 and desk["Location"] == reverse("complaints:mine")
    for model in CONFIG_MODELS:
        response = client.get(reverse(f"admin:complaints_{model}_changelist"), follow=True)
        assert response.status_code == 200, (role, model)
    response = client.get(reverse("admin:complaints_case_changelist"))
    assert response.status_code == 200
    visible = case.reference in response.content.decode()
    assert visible == (role in ("campaign_admin", "auditor"))  # the others are in no queue
    if visible:
        page = client.get(reverse("admin:complaints_case_change", args=[case.pk]))
        assert page.status_code == 200
        html = page.content.decode()
        assert reverse("complaints:case_detail", args=[case.reference]) in html
        assert 'name="status"' not in html  # read-only


def test_staff_without_a_complaints_role_do_not_see_the_desk_entry(roles, staff_client):
    client = staff_client(staff_in_role("finance_maker"))
    assert "casedesk" not in client.get(reverse("admin:index")).content.decode()
    assert client.get(reverse("admin:complaints_casedesk_changelist")).status_code == 403


def test_campaign_admin_edits_the_calendar_and_it_is_audited(roles, staff_client):
    client = staff_client(staff_in_role("campaign_admin"))
    response = client.post(
        reverse("admin:complaints_workcalendarday_add"),
        {"date": "2027-01-01", "is_workday": "", "note": "元旦"},
    )
    assert response.status_code == 302
    assert WorkCalendarDay.objects.get(date="2027-01-01").is_workday is False
    assert AuditEvent.objects.filter(action="workcalendarday.added").exists()
    settings_page = client.get(reverse("admin:complaints_casesettings_changelist"))
    assert settings_page.status_code == 302  # straight to the single row
    response = client.post(
        reverse("admin:complaints_casesettings_change", args=[1]),
        {
            "workday_start": "08:30",
            "workday_end": "17:30",
            "break_start": "12:00",
            "break_end": "13:30",
            "timezone": "Asia/Shanghai",
            "reopen_window_days": 7,
            "warning_hours": "2",
            "attachment_max_bytes": 5242880,
            "attachments_per_case": 10,
            "reference_prefix": "ZX",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert str(CaseSettings.load().workday_start) == "08:30:00"
    bad = client.post(
        reverse("admin:complaints_casesettings_change", args=[1]),
        {
            "workday_start": "08:30",
            "workday_end": "17:30",
            "break_start": "12:00",
            "break_end": "",
            "timezone": "Mars/Olympus",
            "reopen_window_days": 7,
            "warning_hours": "2",
            "attachment_max_bytes": 5242880,
            "attachments_per_case": 10,
            "reference_prefix": "ZX",
        },
    )
    assert bad.status_code == 200  # refused with errors


def test_categories_import_through_the_service_and_export(roles, staff_client, queue):
    client = staff_client(staff_in_role("campaign_admin"))
    CaseCategory.objects.create(code="old", name="旧分类", kind="complaint", queue=queue)
    content = (
        "代码,名称,类型,队列,优先级,首次响应时限,办结时限,排序,启用\n"
        "refusal,商户拒开发票,拒开发票,complaints,3,4,5,10,1\n"
        "old,旧分类（改名）,complaint,complaints,,,,,\n"
        "bad,坏行,nonsense,complaints,2,4,5,10,1\n"
        "bad2,坏行2,complaint,no-such-queue,2,4,5,10,1\n"
    ).encode("utf-8-sig")
    url = reverse("admin:complaints_casecategory_import")
    preview = client.post(
        url,
        {"import_file": SimpleUploadedFile("c.csv", content), "format": "0", "resource": "0"},
    )
    assert preview.status_code == 200
    assert not CaseCategory.objects.filter(code="refusal").exists()  # dry run wrote nothing
    confirm = preview.context["confirm_form"]
    response = client.post(
        reverse("admin:complaints_casecategory_process_import"),
        {**confirm.initial, "resource": "0"},
    )
    assert response.status_code in (200, 302)
    refusal = CaseCategory.objects.get(code="refusal")
    assert refusal.kind == "merchant_refusal" and refusal.default_priority == 3
    assert str(refusal.first_response_hours) == "4.00" and refusal.sort_order == 10
    assert CaseCategory.objects.get(code="old").name == "旧分类（改名）"
    assert not CaseCategory.objects.filter(code__in=["bad", "bad2"]).exists()
    imported = AuditEvent.objects.get(action="case_category.imported")
    assert imported.after["invalid_lines"] == [4, 5]
    export = client.post(
        reverse("admin:complaints_casecategory_export"),
        {
            "format": "0",
            "resource": "0",
            **{
                f"casecategoryresource_{f}": "on"
                for f in (
                    "code",
                    "name",
                    "kind",
                    "queue",
                    "default_priority",
                    "first_response_hours",
                    "resolution_days",
                    "sort_order",
                    "active",
                )
            },
        },
    )
    assert export.status_code == 200
    text = b"".join(export.streaming_content).decode("utf-8-sig")
    first_line = io.StringIO(text).readline()
    assert first_line.startswith("code,name,kind,queue") and "refusal" in text
    assert AuditEvent.objects.filter(action="data.exported").exists()
