"""Issue 6, "done means" 5: a periodic draw's whole lifecycle from the admin in a browser.

Two campaign administrators (the role that holds `draws.manage_draw` and `draws.execute_draw`)
and a risk analyst (`draws.disqualify_winner`) sign in with password and TOTP, each in their own
browser profile. Administrator A creates the draw with its tiers, commits, freezes, records the
public randomness and starts the draw; A's own confirmation is refused on screen; B confirms and
the draw is executed; A publishes; the risk analyst disqualifies a winner during the notice
period and a substitute takes the slot; A finalises. A citizen, not signed in, then finds masked
winners on /draws/, downloads bundle.json and tickets.csv, and the stand-alone verifier accepts
them. The clock (of the test and of the live server in it) jumps past the cut-off and the
notice period with time_machine, the way days pass for officials.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditEvent
from apps.common.masking import mask_name
from apps.draws.choices import DrawStatus
from apps.draws.exceptions import DrawError
from apps.draws.models import DrawWinner, PeriodicDraw
from apps.prizes.models import Award
from tests.draws.conftest import add_entries
from tests.e2e.conftest import TOTP_PERIOD, admin_url, screenshot, sign_in, staff_with_totp
from tests.factories.core import CampaignFactory, ConsumerFactory, funded_default_fund

# PostgreSQL only: a transactional test ends by emptying every table, and on SQLite the
# database triggers that keep a draw past scheduling from being deleted refuse that.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

VERIFIER = Path(settings.BASE_DIR) / "tools" / "verify_draw.py"
CODE = "ZZ-2026-E2E-A"
NAMES = [
    "张某三",
    "王小明",
    "李建国",
    "赵海燕",
    "刘德华",
    "陈晓东",
    "杨丽萍",
    "黄志强",
    "周美玲",
    "吴国平",
    "徐春花",
    "孙卫东",
]
TIERS = [
    ("1", "一等奖", "800.00", "1"),
    ("2", "二等奖", "300.00", "2"),
    ("3", "三等奖", "50.00", "3"),
]
SOURCE = "中国福利彩票 福彩3D 开奖号码（端到端测试）"
RANDOMNESS = "福彩3D 第2026199期: 3 8 5"


def local_parts(moment: datetime) -> tuple[str, str]:
    local = timezone.localtime(moment)
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")


def period_start(moment: datetime) -> datetime:
    """The start of the TOTP period containing `moment`, plus a second: jumps land there, so
    a sign-in right after one finds a fresh code."""
    seconds = moment.timestamp()
    return datetime.fromtimestamp(seconds - seconds % TOTP_PERIOD + 1, tz=moment.tzinfo)


def refusal_message() -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return str(DrawError("draw.same_person").message)


def success_message(page) -> str:
    return page.locator(".messagelist .success").inner_text()


def run_step(page, base, draw_pk, step, fields=None):
    """Open the step from the draw's page (its button), fill its form, submit; back on the
    draw's page with the step's success message."""
    change = reverse("admin:draws_periodicdraw_change", args=[draw_pk])
    if not page.url.endswith(change):
        page.goto(base + change)
    page.click(f"#content-main .object-tools a[href$='/step/{step}/']")
    page.wait_for_url(f"**/step/{step}/")
    for selector, value in (fields or {}).items():
        if page.locator(selector).evaluate("e => e.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)
    page.click("#content-main form input[type=submit].default")
    page.wait_for_load_state()
    if not page.url.endswith(change):  # the step page again, with the service's refusal
        errors = page.locator(".errorlist, .errornote").all_inner_texts()
        pytest.fail(f"step {step} refused: {errors or page.content()[:2000]}")
    assert success_message(page)


def steps_offered(page) -> set[str]:
    hrefs = page.locator("#content-main .object-tools a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    return {href.rstrip("/").rsplit("/", 1)[-1] for href in hrefs if "/step/" in href}


@pytest.fixture
def world(transactional_db, fast_passwords):
    """A campaign with a funded prize fund and twelve accepted entries of twelve consumers;
    two campaign administrators and a risk analyst, each with a password and TOTP."""
    campaign = CampaignFactory(code="zz-e2e", name="郑州市2026年有奖发票活动")
    funded_default_fund(campaign)
    consumers = [ConsumerFactory(real_name=name) for name in NAMES]
    add_entries(campaign, len(NAMES), start=timezone.now() - timedelta(days=9), consumers=consumers)
    admins = Group.objects.get(name=ROLES_BY_CODE["campaign_admin"].group_name)
    analysts = Group.objects.get(name=ROLES_BY_CODE["risk_analyst"].group_name)
    return {
        "campaign": campaign,
        "a": staff_with_totp("zhang_admin", groups=[admins]),
        "b": staff_with_totp("li_admin", groups=[admins]),
        "analyst": staff_with_totp("wang_risk", groups=[analysts]),
    }


def test_periodic_draw_lifecycle_in_the_browser(live_server, new_context, world, tmp_path):
    base = live_server.url
    campaign = world["campaign"]
    (officer_a, secret_a), (officer_b, secret_b) = world["a"], world["b"]
    analyst, secret_analyst = world["analyst"]
    t0 = period_start(timezone.now())

    with time_machine.travel(t0, tick=True) as clock:
        # --- A creates the draw with its tiers and commits (before the window closes).
        context_a = new_context()
        page_a = sign_in(context_a.new_page(), base, officer_a, secret_a, clock=clock)
        page_a.goto(admin_url(base, "draws_periodicdraw_add"))
        window = (t0 - timedelta(days=10), t0 + timedelta(minutes=10))
        page_a.fill("#id_code", CODE)
        page_a.fill("#id_name", "郑州市2026年端到端测试定期开奖")
        page_a.select_option("#id_campaign", str(campaign.pk))
        for field, moment in (
            ("window_starts_at", window[0]),
            ("window_ends_at", window[1]),
            ("cutoff_at", window[1]),
        ):
            day, clock_time = local_parts(moment)
            page_a.fill(f"#id_{field}_0", day)
            page_a.fill(f"#id_{field}_1", clock_time)
        page_a.fill("#id_per_holder_limit", "1")
        page_a.fill("#id_notice_days", "1")
        inline = page_a.locator("#tiers-group")
        for i, (rank, name, amount, count) in enumerate(TIERS):
            inline.locator(".add-row a").click()
            row = inline.locator(f"tr#tiers-{i}")
            row.locator("input[name$='-rank']").fill(rank)
            row.locator("input[name$='-name']").fill(name)
            row.locator("input[name$='-amount']").fill(amount)
            row.locator("input[name$='-count']").fill(count)
        page_a.click("input[name=_continue]")
        page_a.wait_for_url("**/change/")
        draw = PeriodicDraw.objects.get(code=CODE)
        assert draw.status == DrawStatus.SCHEDULED
        assert [(t.rank, t.name, str(t.amount), t.count) for t in draw.tiers.order_by("rank")] == [
            (int(r), n, a, int(c)) for r, n, a, c in TIERS
        ]
        assert steps_offered(page_a) == {"commit", "cancel"}

        run_step(page_a, base, draw.pk, "commit", {"textarea[name=randomness_source]": SOURCE})
        draw.refresh_from_db()
        assert draw.status == DrawStatus.COMMITTED and len(draw.seed_commitment) == 64
        assert steps_offered(page_a) == {"freeze", "cancel"}
        screenshot(page_a, "draw-admin-change")

        # --- The cut-off passes: freeze, record the public randomness, A starts the draw.
        clock.move_to(period_start(window[1] + timedelta(seconds=TOTP_PERIOD)))
        run_step(page_a, base, draw.pk, "freeze")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.FROZEN and draw.ticket_count == len(NAMES)
        run_step(page_a, base, draw.pk, "randomness", {"input[name=value]": RANDOMNESS})
        run_step(page_a, base, draw.pk, "start")
        draw.refresh_from_db()
        assert draw.started_by == officer_a and draw.status == DrawStatus.RANDOMNESS_RECORDED

        # --- Two-person rule: A is not offered the confirmation, and A's own try is refused.
        assert "confirm" not in steps_offered(page_a)
        page_a.goto(admin_url(base, "draws_periodicdraw_changelist"))
        page_a.check(f"input[name=_selected_action][value='{draw.pk}']")
        page_a.select_option("select[name=action]", "confirm_selected")
        page_a.click("#changelist-form button[name=index]")
        assert refusal_message() in page_a.locator(".messagelist .error").inner_text()
        page_a.goto(admin_url(base, "draws_periodicdraw_step", draw.pk, "confirm"))
        page_a.click("#content-main form input[type=submit].default")
        error = page_a.locator("#content-main .errorlist.nonfield")
        assert refusal_message() in error.inner_text()
        screenshot(page_a, "draw-two-person-refusal")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.RANDOMNESS_RECORDED and draw.confirmed_by is None
        assert AuditEvent.objects.filter(action="draw.confirm_refused").count() == 2

        # --- B, in a browser of their own, confirms: the draw is executed.
        page_b = sign_in(new_context().new_page(), base, officer_b, secret_b, clock=clock)
        page_b.goto(admin_url(base, "draws_periodicdraw_change", draw.pk))
        assert "confirm" in steps_offered(page_b) and "start" not in steps_offered(page_b)
        screenshot(page_b, "draw-admin-confirm")
        run_step(page_b, base, draw.pk, "confirm")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.DRAWN
        assert (draw.started_by, draw.confirmed_by) == (officer_a, officer_b)
        winners = list(DrawWinner.objects.filter(draw=draw).order_by("counter"))
        assert len(winners) == 6

        # --- A publishes; the notice period (one day) starts.
        run_step(page_a, base, draw.pk, "publish")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.PUBLISHED and draw.revealed_seed

        # --- During the notice period the risk analyst disqualifies a winner.
        page_r = sign_in(new_context().new_page(), base, analyst, secret_analyst, clock=clock)
        page_r.goto(admin_url(base, "draws_periodicdraw_change", draw.pk))
        assert steps_offered(page_r) == {"disqualify"}
        out = winners[-1]
        run_step(
            page_r,
            base,
            draw.pk,
            "disqualify",
            {
                "input[name=ticket_no]": str(out.ticket_no),
                "select[name=reason]": "red_flushed",
                "input[name=note]": "发票已红冲（端到端测试）",
            },
        )
        out.refresh_from_db()
        assert out.disqualified and out.disqualified_by == analyst
        substitute = DrawWinner.objects.get(draw=draw, substitute_for=out.ticket_no)
        assert (substitute.rank, substitute.slot) == (out.rank, out.slot)

        # --- The notice period is over: A signs in again (a day later) and finalises.
        clock.move_to(period_start(draw.notice_ends_at + timedelta(seconds=TOTP_PERIOD)))
        page_a = sign_in(context_a.new_page(), base, officer_a, secret_a, clock=clock)
        page_a.goto(admin_url(base, "draws_periodicdraw_change", draw.pk))
        assert "disqualify" not in steps_offered(page_a)
        run_step(page_a, base, draw.pk, "finalise")
        draw.refresh_from_db()
        assert draw.status == DrawStatus.FINALISED
        # Awards for the remaining winners (the substitute in, the disqualified one out).
        final = DrawWinner.objects.filter(draw=draw, disqualified=False)
        assert sorted(
            Award.objects.filter(draw_winner__draw=draw).values_list(
                "draw_winner__ticket_no", flat=True
            )
        ) == sorted(final.values_list("ticket_no", flat=True))

        # --- A citizen, not signed in: masked winners, the files, and the verifier.
        public = new_context().new_page()
        public.goto(base + reverse("draws:list"))
        public.click(f"a[href='{reverse('draws:detail', args=[CODE])}']")
        public.wait_for_url(f"**{reverse('draws:detail', args=[CODE])}")
        text = public.locator("main, body").first.inner_text()
        for winner in DrawWinner.objects.filter(draw=draw).select_related(
            "ticket__invoice__consumer"
        ):
            real_name = winner.ticket.invoice.consumer.real_name
            assert mask_name(real_name) in text
            assert real_name not in text
        assert str(substitute.ticket_no) in text
        screenshot(public, "draw-public-results")

        downloads = {}
        for name in ("bundle", "tickets"):
            url = reverse(f"draws:{name}", args=[CODE])
            with public.expect_download() as info:
                public.click(f"a.download[href='{url}']")
            download = info.value
            downloads[name] = tmp_path / download.suggested_filename
            download.save_as(downloads[name])
        assert {p.name for p in downloads.values()} == {"bundle.json", "tickets.csv"}

    result = subprocess.run(
        [sys.executable, str(VERIFIER), str(downloads["bundle"]), str(downloads["tickets"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().splitlines()[-1].startswith("VERIFIED")
    bundle = json.loads(downloads["bundle"].read_text("utf-8"))
    assert (bundle["draw_id"], bundle["ticket_count"]) == (CODE, len(NAMES))
    assert [(d["ticket_no"], d["reason"]) for d in bundle["disqualified"]] == [
        (out.ticket_no, "red_flushed")
    ]
    assert [(s["ticket_no"], s["substitute_for"]) for s in bundle["substitutes"]] == [
        (substitute.ticket_no, out.ticket_no)
    ]
