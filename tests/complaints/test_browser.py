"""Issue 8, "done means" 3: a complaint handler's day in a browser.

The handler signs in with password and TOTP, goes from the admin index to the case desk, opens
the team queue, opens a complaint filed in the app, takes it, replies with a canned reply (the
choice fills the reply box), and resolves it; the consumer then sees the reply — and not the
internal note — in the API. Screenshots: docs/screenshots/complaints-*.png.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.roles import ROLES_BY_CODE, sync_roles
from apps.complaints import services
from apps.complaints.choices import CaseChannel, CaseKind, CaseOutcome, CaseStatus
from apps.complaints.models import CannedReply, Case, CaseCategory, CaseQueue, CaseQueueMembership
from tests.e2e.conftest import (  # noqa: F401 - fixtures used by name
    browser,
    fast_passwords,
    new_context,
    screenshot,
    sign_in,
    staff_with_totp,
)
from tests.factories.core import ConsumerFactory

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desk(transactional_db, fast_passwords):  # noqa: F811
    sync_roles()
    queue = CaseQueue.objects.create(code="complaints", name="投诉处理组")
    category = CaseCategory.objects.create(
        code="service", name="服务投诉", kind=CaseKind.COMPLAINT, queue=queue
    )
    handler, secret = staff_with_totp(
        "handler_e2e",
        groups=[Group.objects.get(name=ROLES_BY_CODE["complaint_handler"].group_name)],
    )
    CaseQueueMembership.objects.create(queue=queue, user=handler)
    CannedReply.objects.create(title="已收到", body="您好，您反映的问题已收到，我们正在核实。")
    consumer = ConsumerFactory(real_name="张三丰", phone="13912345678")
    case = services.case_open(
        kind=CaseKind.COMPLAINT,
        category=category,
        channel=CaseChannel.API,
        consumer=consumer,
        subject="超市结账拒开发票",
        description="3月8日在某超市消费，要求开具发票被拒绝。",
    )
    services.case_note(case=case, actor=handler, body="内部：先电话联系商户")
    return handler, secret, case, consumer


def test_a_handler_takes_replies_and_resolves_in_the_browser(live_server, new_context, desk):  # noqa: F811
    handler, secret, case, consumer = desk
    base = live_server.url
    page = sign_in(new_context().new_page(), base, handler, secret)

    # Admin index → case desk → team queue.
    page.click(f"a[href='{reverse('admin:complaints_casedesk_changelist')}']")
    page.wait_for_url(f"**{reverse('complaints:mine')}")
    page.click(f"a[href='{reverse('complaints:queue')}']")
    page.wait_for_url(f"**{reverse('complaints:queue')}")
    row = page.locator("table.desk-table tbody tr")
    assert row.count() == 1 and case.reference in row.inner_text()
    screenshot(page, "complaints-desk-queue")
    # Keyboard: j focuses the first case of the list, Enter opens it.
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{reverse('complaints:case_detail', args=[case.reference])}")
    html = page.content()
    assert "张*丰" in html and "张三丰" not in html  # linked consumer, masked
    screenshot(page, "complaints-desk-case")

    # Take it.
    page.click(f"form[action$='/{case.reference}/take/'] button")
    page.wait_for_selector(".messagelist .success")
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_PROGRESS and case.assignee == handler

    # Reply with the canned reply (the select fills the box), then resolve.
    page.select_option("#id_reply-canned", label="已收到")
    assert page.input_value("#id_reply-body").startswith("您好，您反映的问题已收到")
    page.fill("#id_reply-body", page.input_value("#id_reply-body") + "预计两个工作日内答复。")
    page.click("#reply-form button[type=submit]")
    page.wait_for_selector(".messagelist .success")
    page.select_option("#id_resolve-outcome", value=CaseOutcome.SUBSTANTIATED)
    page.fill("#id_resolve-summary", "经核实情况属实，已责令商户补开发票。")
    page.click(f"form[action$='/{case.reference}/resolve/'] button[type=submit]")
    page.wait_for_selector(".messagelist .success")
    screenshot(page, "complaints-desk-resolved")
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.first_responded_at is not None
    assert case.outcome == CaseOutcome.SUBSTANTIATED

    # The consumer reads the reply in the app, never the note.
    api = APIClient()
    api.force_authenticate(consumer.user)
    detail = api.get(f"/api/v1/me/cases/{case.public_id}/").json()
    bodies = [m["body"] for m in detail["messages"]]
    assert len(bodies) == 1 and re.search("预计两个工作日内答复", bodies[0])
    assert "内部" not in str(detail) and detail["can_rate"] is True
    assert Case.objects.get(pk=case.pk).messages.count() == 2
