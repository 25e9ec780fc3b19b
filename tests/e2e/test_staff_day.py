"""Issue 12, "End-to-end browser tests": one staff day, end to end, in a browser.

Against the live server (a thread of this process) on PostgreSQL, every member of staff signs
in through the real pages with password and TOTP, each in a browser profile of their own:

1. a campaign administrator creates the campaign (rules, industries, area), makes it active,
   and configures an instant pool with a cash tier — all in the admin;
2. consumers submit invoices through the consumer API; three of them share one phone, so the
   third submission is held by the shared-device rule (apps/risk/rules.py, docs/risk.md);
3. an invoice reviewer opens the risk desk (`<admin>/riskdesk/`), reads the evidence and
   releases the held invoice into the campaign;
4. the administrator creates a periodic draw, commits, freezes after the cut-off, records the
   public randomness and starts it; a second administrator confirms (two-person rule); the
   first publishes and, after the notice period, finalises;
5. a citizen finds the masked winners on the public results page, downloads bundle.json and
   tickets.csv, and tools/verify_draw.py accepts them;
6. the winners claim their prizes in the app; a finance maker prepares the payout batch and a
   finance checker approves it: the payment sandbox on 127.0.0.1 pays every payout;
7. a consumer files a complaint in the app; a complaint handler takes it in the case desk
   (`<admin>/casework/`), answers and resolves it;
8. the auditor finds every one of these steps in the audit trail.

Steps that other browser tests prove in detail (the draw's refusals, the maker's refusal, the
case desk's keyboard) are done here in their plain form. The clock (of the test, and so of
the live server) jumps past the draw's cut-off and its notice period with time_machine.
Screenshots: docs/screenshots/staff-day-*.png.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditEvent
from apps.common.masking import mask_name
from apps.complaints.choices import CaseKind, CaseOutcome, CaseStatus
from apps.complaints.models import Case, CaseCategory, CaseQueue, CaseQueueMembership
from apps.draws.choices import DrawStatus
from apps.draws.models import DrawWinner, InstantPool, PeriodicDraw
from apps.invoices.choices import CampaignStatus, InvoiceStatus
from apps.invoices.models import Campaign, Invoice
from apps.prizes.choices import BatchStatus, PayoutStatus
from apps.prizes.models import Award, Fund, Payout, PayoutBatch
from tests.e2e.conftest import VIEWPORT, admin_url, screenshot, sign_in, staff_with_totp
from tests.e2e.staff_day_helpers import (
    add_inline_row,
    api_post,
    audit_search,
    consumer_api,
    fill_datetime,
    save_and_continue,
)
from tests.e2e.test_draw_lifecycle import VERIFIER, period_start, run_step, steps_offered
from tests.factories.core import funded_default_fund
from tests.invoices.conftest import make_record  # noqa: F401  (fixture)
from tests.prizes.helpers import payee, payout_account
from tests.prizes.test_api import AWARDS

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CAMPAIGN = "zz-2026-staff-day"
CAMPAIGN_NAME = "郑州市2026年冬季有奖发票活动"
POOL = "冬季即开奖池"
DRAW = "ZZ-2026-STAFF-DAY"
NAMES = ["张建军", "王秀英", "李志刚", "赵丽娟", "刘海波", "陈淑芬", "杨国庆", "黄晓燕"]
SHARED_PHONE = "android-shared-7f3a"
HELD = 2  # the third of the three consumers on the shared phone
TIERS = [("1", "一等奖", "800.00", "1"), ("2", "二等奖", "300.00", "2")]
SOURCE = "中国福利彩票 福彩3D 开奖号码（员工一日端到端测试）"
RANDOMNESS = "福彩3D 第2026320期: 7 2 9"


def role(code: str) -> Group:
    return Group.objects.get(name=ROLES_BY_CODE[code].group_name)


@pytest.fixture
def world(
    transactional_db,
    fast_passwords,
    payment_gateway_settings,
    identity_sandbox,
    settings,
):
    """The staff of the day (password + TOTP each), the consumers (verified, known to the
    identity register), and the complaints team's queue and category."""
    settings.PAYMENT_GATEWAY_TIMEOUT = 5.0  # the live server is a thread of this busy process
    queue = CaseQueue.objects.create(code="complaints", name="投诉处理组")
    CaseCategory.objects.create(
        code="service", name="服务投诉", kind=CaseKind.COMPLAINT, queue=queue
    )
    handler = staff_with_totp("zhao_handler", groups=[role("complaint_handler")])
    CaseQueueMembership.objects.create(queue=queue, user=handler[0])
    return {
        "sandbox": payment_gateway_settings,
        "identity": identity_sandbox,
        "consumers": [payee(identity_sandbox, real_name=name) for name in NAMES],
        "admin_a": staff_with_totp("zhang_admin", groups=[role("campaign_admin")]),
        "admin_b": staff_with_totp("li_admin", groups=[role("campaign_admin")]),
        "reviewer": staff_with_totp("chen_reviewer", groups=[role("invoice_reviewer")]),
        "maker": staff_with_totp("sun_maker", groups=[role("finance_maker")]),
        "checker": staff_with_totp("zhou_checker", groups=[role("finance_checker")]),
        "handler": handler,
        "auditor": staff_with_totp("wu_auditor", groups=[role("auditor")]),
    }


def configure_campaign(page, base, t0) -> Campaign:
    """The administrator creates the campaign (a draft), then makes it active."""
    page.goto(admin_url(base, "invoices_campaign_add"))
    page.fill("#id_code", CAMPAIGN)
    page.fill("#id_name", CAMPAIGN_NAME)
    fill_datetime(page, "starts_at", t0 - timedelta(days=3))
    fill_datetime(page, "ends_at", t0 + timedelta(days=90))
    page.fill("#id_min_total", "100.00")
    page.fill("#id_max_prize_per_invoice", "800.00")
    page.check("input[name=allowed_invoice_types][value='32']")  # 数电普票
    page.fill("#id_cap_per_day", "3")
    add_inline_row(page, "industries", 0, {"code": "52", "label": "零售业"})
    add_inline_row(page, "areas", 0, {"code": "4101", "label": "郑州市"})
    save_and_continue(page)
    campaign = Campaign.objects.get(code=CAMPAIGN)
    assert campaign.status == CampaignStatus.DRAFT
    page.select_option("#id_status", CampaignStatus.ACTIVE)
    save_and_continue(page)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    assert list(campaign.industries.values_list("code", flat=True)) == ["52"]
    assert list(campaign.areas.values_list("code", flat=True)) == ["4101"]
    screenshot(page, "staff-day-campaign")
    return campaign


def configure_instant_pool(page, base, campaign, t0) -> InstantPool:
    page.goto(admin_url(base, "draws_instantpool_add"))
    page.select_option("#id_campaign", str(campaign.pk))
    page.fill("#id_name", POOL)
    page.select_option("#id_odds_mode", "fixed")
    fill_datetime(page, "active_from", t0 - timedelta(days=1))
    fill_datetime(page, "active_until", t0 + timedelta(days=30))
    add_inline_row(
        page,
        "tiers",
        0,
        {
            "name": "即开现金红包",
            "kind": "cash",
            "face_value": "5.00",
            "total_quantity": "100",
            "probability": "0.0001",
        },
    )
    save_and_continue(page)
    pool = InstantPool.objects.get(name=POOL)
    assert pool.campaign == campaign and pool.enabled
    tier = pool.tiers.get()
    assert (tier.total_quantity, tier.remaining, tier.face_value) == (100, 100, Decimal("5.00"))
    page.set_viewport_size({"width": 1900, "height": 900})  # the tier inline is wide
    screenshot(page, "staff-day-instant-pool")
    page.set_viewport_size(VIEWPORT)
    return pool


def submit_invoices(consumers, make_record) -> list[Invoice]:  # noqa: F811
    """Each consumer submits one invoice through the API; the first three from one phone."""
    invoices = []
    for i, consumer in enumerate(consumers):
        _record, body = make_record(buyer_name=str(consumer.real_name), total=f"{268 + 17 * i}.60")
        device = SHARED_PHONE if i <= HELD else f"phone-{i}"
        response = api_post(
            consumer_api(consumer), "/api/v1/invoices/", body | {"device_id": device}
        )
        assert response.status_code == 201, response.json()
        expected = InvoiceStatus.HELD if i == HELD else InvoiceStatus.ACCEPTED
        assert response.json()["invoice"]["status"] == expected, (i, response.json())
        invoices.append(Invoice.objects.get(uid=response.json()["invoice"]["uid"]))
    return invoices


def release_in_risk_desk(page, base, held: Invoice) -> None:
    page.goto(base + reverse("risk:index"))
    page.wait_for_url(f"**{reverse('risk:queue')}")
    page.click(f"a[href='{reverse('risk:invoice', args=[held.pk])}']")
    page.wait_for_url(f"**{reverse('risk:invoice', args=[held.pk])}")
    evidence = page.inner_text("#content")
    assert "shared_device" in evidence and "others = 2" in evidence
    screenshot(page, "staff-day-risk-evidence")
    release = page.locator(
        f"form[action='{reverse('risk:invoice_action', args=[held.pk, 'release'])}']"
    )
    release.locator("input[name=reason]").fill("已电话核实：家人共用手机，本人消费")
    release.locator("input[type=submit]").click()
    page.wait_for_selector(".messagelist .success")
    held.refresh_from_db()
    assert held.status == InvoiceStatus.ACCEPTED and held.entered_at is not None


def create_draw(page, base, campaign, window) -> PeriodicDraw:
    page.goto(admin_url(base, "draws_periodicdraw_add"))
    page.fill("#id_code", DRAW)
    page.fill("#id_name", "郑州市2026年冬季定期开奖（第一期）")
    page.select_option("#id_campaign", str(campaign.pk))
    for field, moment in (
        ("window_starts_at", window[0]),
        ("window_ends_at", window[1]),
        ("cutoff_at", window[1]),
    ):
        fill_datetime(page, field, moment)
    page.fill("#id_per_holder_limit", "1")
    page.fill("#id_notice_days", "1")
    for i, (rank, name, amount, count) in enumerate(TIERS):
        add_inline_row(
            page, "tiers", i, {"rank": rank, "name": name, "amount": amount, "count": count}
        )
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    draw = PeriodicDraw.objects.get(code=DRAW)
    assert draw.status == DrawStatus.SCHEDULED
    return draw


def test_a_staff_day_in_the_browser(live_server, new_context, world, make_record, tmp_path):  # noqa: F811
    base = live_server.url
    consumers = world["consumers"]
    t0 = period_start(timezone.now())

    with time_machine.travel(t0, tick=True) as clock:
        # --- 1. The campaign administrator configures the campaign and its instant pool.
        admin_a, secret_a = world["admin_a"]
        context_a = new_context()
        page_a = sign_in(context_a.new_page(), base, admin_a, secret_a, clock=clock)
        campaign = configure_campaign(page_a, base, t0)
        funded_default_fund(campaign, Decimal("100000.00"))  # the treasury's deposit
        Fund.objects.filter(campaign=campaign).update(name="郑州市级有奖发票奖金")
        configure_instant_pool(page_a, base, campaign, t0)

        # --- 2. Consumers submit through the API; the third on the shared phone is held.
        invoices = submit_invoices(consumers, make_record)
        held = invoices[HELD]
        assert held.risk_assessment.action == "hold"

        # --- 3. The invoice reviewer releases it in the risk desk.
        reviewer, secret_r = world["reviewer"]
        page_r = sign_in(new_context().new_page(), base, reviewer, secret_r, clock=clock)
        release_in_risk_desk(page_r, base, held)

        # --- 4. The draw: created and committed before the cut-off ...
        window = (t0 - timedelta(days=1), t0 + timedelta(minutes=10))
        draw = create_draw(page_a, base, campaign, window)
        run_step(page_a, base, draw.pk, "commit", {"textarea[name=randomness_source]": SOURCE})

        # ... frozen after it, the public randomness recorded, started by A ...
        clock.move_to(period_start(window[1] + timedelta(seconds=60)))  # A is still signed in
        run_step(page_a, base, draw.pk, "freeze")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.FROZEN and draw.ticket_count == len(NAMES)
        run_step(page_a, base, draw.pk, "randomness", {"input[name=value]": RANDOMNESS})
        run_step(page_a, base, draw.pk, "start")
        assert "confirm" not in steps_offered(page_a)  # the starter never confirms

        # ... confirmed by B (the two-person rule), published by A.
        admin_b, secret_b = world["admin_b"]
        page_b = sign_in(new_context().new_page(), base, admin_b, secret_b, clock=clock)
        page_b.goto(admin_url(base, "draws_periodicdraw_change", draw.pk))
        assert "confirm" in steps_offered(page_b)
        run_step(page_b, base, draw.pk, "confirm")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.DRAWN
        assert (draw.started_by, draw.confirmed_by) == (admin_a, admin_b)
        page_a.reload()  # A's page still shows the steps from before B's confirmation
        run_step(page_a, base, draw.pk, "publish")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.PUBLISHED and draw.notice_ends_at
        screenshot(page_a, "staff-day-draw-published")

        # --- 5. A citizen: masked winners, the files, the verifier.
        public = new_context().new_page()
        public.goto(base + reverse("draws:list"))
        detail = reverse("draws:detail", args=[DRAW])
        public.click(f"a[href='{detail}']")
        public.wait_for_url(f"**{detail}")
        text = public.locator("body").inner_text()
        winners = list(
            DrawWinner.objects.filter(draw=draw).select_related("ticket__invoice__consumer")
        )
        assert len(winners) == 3
        for winner in winners:
            real_name = str(winner.ticket.invoice.consumer.real_name)
            assert mask_name(real_name) in text and real_name not in text
        screenshot(public, "staff-day-public-results")
        files = {}
        for name in ("bundle", "tickets"):
            with public.expect_download() as info:
                public.click(f"a.download[href='{reverse(f'draws:{name}', args=[DRAW])}']")
            files[name] = tmp_path / info.value.suggested_filename
            info.value.save_as(files[name])
        verified = subprocess.run(
            [sys.executable, str(VERIFIER), str(files["bundle"]), str(files["tickets"])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.rstrip().splitlines()[-1].startswith("VERIFIED")
        bundle = json.loads(files["bundle"].read_text("utf-8"))
        assert (bundle["draw_id"], bundle["ticket_count"]) == (DRAW, len(NAMES))

        # --- The notice period passes: A finalises; the winners claim in the app.
        clock.move_to(period_start(draw.notice_ends_at + timedelta(seconds=60)))
        page_a = sign_in(context_a.new_page(), base, admin_a, secret_a, clock=clock)
        run_step(page_a, base, draw.pk, "finalise")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.FINALISED
        awards = Award.objects.filter(draw_winner__draw=draw).select_related("consumer")
        assert awards.count() == 3
        for award in awards:
            account = payout_account(world["identity"], award.consumer)
            claimed = api_post(
                consumer_api(award.consumer),
                f"{AWARDS}{award.public_id}/claim/",
                {"account": str(account.public_id)},
            )
            assert claimed.status_code in (200, 201), claimed.json()
        assert Payout.objects.filter(award__in=awards).count() == 3

        # --- 6. Finance: the maker prepares the batch, the checker approves, the sandbox pays.
        maker, secret_m = world["maker"]
        page_m = sign_in(new_context().new_page(), base, maker, secret_m, clock=clock)
        page_m.goto(admin_url(base, "prizes_payoutbatch_changelist"))
        page_m.click("#content-main .object-tools a[href$='/prepare/']")
        page_m.wait_for_url("**/prepare/")
        page_m.select_option("select[name=campaign]", str(campaign.pk))
        page_m.click("#content-main form input[type=submit].default")
        page_m.wait_for_selector(".messagelist .success")
        batch = PayoutBatch.objects.get()
        assert (batch.status, batch.payout_count) == (BatchStatus.SUBMITTED, 3)

        checker, secret_c = world["checker"]
        page_c = sign_in(new_context().new_page(), base, checker, secret_c, clock=clock)
        page_c.goto(admin_url(base, "prizes_payoutbatch_changelist"))
        page_c.check(f"input[name=_selected_action][value='{batch.pk}']")
        page_c.select_option("select[name=action]", "approve_selected")
        page_c.click("#changelist-form button[name=index]")
        page_c.wait_for_selector(".messagelist .success")
        batch.refresh_from_db()
        assert (batch.status, batch.created_by, batch.approved_by) == (
            BatchStatus.COMPLETED,
            maker,
            checker,
        )
        payouts = Payout.objects.filter(batch=batch)
        assert {p.status for p in payouts} == {PayoutStatus.PAID}
        assert sorted(world["sandbox"].executions) == sorted(p.request_no for p in payouts)
        page_c.goto(admin_url(base, "prizes_payoutbatch_change", batch.pk))
        assert all(p.request_no in page_c.inner_text("#content-main") for p in payouts)
        screenshot(page_c, "staff-day-payout-batch")

        # --- 7. A consumer complains in the app; the handler takes, answers and resolves.
        filed = api_post(
            consumer_api(consumers[0]),
            "/api/v1/me/cases/",
            {
                "kind": CaseKind.COMPLAINT,
                "category": "service",
                "subject": "商户拒开发票",
                "description": "12月1日在二七区某超市消费268元，收银员以系统故障为由拒开发票。",
            },
        )
        assert filed.status_code == 201, filed.json()
        case = Case.objects.get()
        handler, secret_h = world["handler"]
        page_h = sign_in(new_context().new_page(), base, handler, secret_h, clock=clock)
        page_h.click(f"a[href='{reverse('admin:complaints_casedesk_changelist')}']")
        page_h.wait_for_url(f"**{reverse('complaints:mine')}")
        page_h.goto(base + reverse("complaints:queue"))
        page_h.click(f"a[href='{reverse('complaints:case_detail', args=[case.reference])}']")
        page_h.wait_for_url(f"**{reverse('complaints:case_detail', args=[case.reference])}")
        page_h.click(f"form[action$='/{case.reference}/take/'] button")
        page_h.wait_for_selector(".messagelist .success")
        page_h.fill("#id_reply-body", "您好，您反映的情况已转交税务稽查人员，商户已补开发票。")
        page_h.click("#reply-form button[type=submit]")
        page_h.wait_for_selector(".messagelist .success")
        page_h.select_option("#id_resolve-outcome", value=CaseOutcome.SUBSTANTIATED)
        page_h.fill("#id_resolve-summary", "经核实属实，已责令商户补开发票并予以警告。")
        page_h.click(f"form[action$='/{case.reference}/resolve/'] button[type=submit]")
        page_h.wait_for_selector(".messagelist .success")
        case.refresh_from_db()
        assert case.status == CaseStatus.RESOLVED and case.assignee == handler
        screenshot(page_h, "staff-day-case-resolved")

        # --- 8. The auditor sees the whole day in the audit trail.
        auditor, secret_x = world["auditor"]
        page_x = sign_in(new_context().new_page(), base, auditor, secret_x, clock=clock)
        page_x.goto(admin_url(base, "audit_auditevent_changelist"))
        expected = {
            "campaign.created": admin_a,
            "campaign.changed": admin_a,
            "instant_pool.created": admin_a,
            "instant_tier.saved": admin_a,
            "invoice.released": reviewer,
            "draw.started": admin_a,
            "draw.drawn": admin_b,
            "draw.published": admin_a,
            "payout_batch.approved": checker,
            "case.resolved": handler,
        }
        for action, actor in expected.items():
            rows = audit_search(page_x, action)
            assert any(action in row and actor.username in row for row in rows), (action, rows)
            assert AuditEvent.objects.filter(action=action, actor_username=actor.username)
        audit_search(page_x, "")
        page_x.set_viewport_size({"width": 1680, "height": 1000})  # every column in view
        screenshot(page_x, "staff-day-audit-trail", full_page=False)
