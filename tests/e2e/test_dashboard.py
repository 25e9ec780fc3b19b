"""Issue 10, "done means" 4: the statistics dashboard renders in a browser, in Chinese, with
real demo data (the demo seed, then the rollups rebuilt as `seed_demo` does), charts drawn by
the vendored Apache ECharts; a panel's data downloads as XLSX. Screenshot:
docs/screenshots/reporting-dashboard.png.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from openpyxl import load_workbook

from apps.accounts.roles import ROLES_BY_CODE
from apps.common.demo import CAMPAIGN_CODE, DemoOptions, reference_time, seed_demo
from apps.draws.demo import seed_draws_demo
from apps.invoices.models import Campaign
from apps.reporting.demo import rebuild_for_demo
from apps.reporting.models import DailyRollup
from tests.e2e.conftest import admin_url, screenshot, sign_in, staff_with_totp

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(db):
    options = DemoOptions(merchants=120, consumers=90, invoices=700, seed=2026)
    seed_demo(options)
    campaign = Campaign.objects.get(code=CAMPAIGN_CODE)
    now = reference_time(options, campaign)
    seed_draws_demo(now=now, seed=2026)
    rebuild_for_demo()
    return campaign, now


def test_dashboard_in_the_browser_with_demo_data(
    live_server, new_context, demo, fast_passwords, tmp_path
):
    campaign, now = demo
    assert DailyRollup.objects.filter(submitted__gt=0).exists()
    user, secret = staff_with_totp(
        "tongji", groups=[Group.objects.get(name=ROLES_BY_CODE["statistician"].group_name)]
    )
    page = new_context().new_page()
    sign_in(page, live_server.url, user, secret)
    start = (now - timedelta(days=60)).date().isoformat()
    url = admin_url(live_server.url, "reporting_dashboard_changelist")
    page.goto(f"{url}?campaign={campaign.pk}&date_from={start}&date_to={now.date().isoformat()}")
    page.wait_for_selector("#chart-trend canvas")
    page.wait_for_selector("#chart-funnel canvas")
    body = page.inner_text("body")
    for label in ("统计", "漏斗", "地区", "行业"):
        assert label in body, label
    assert page.locator(".rp-chart canvas").count() >= 6
    screenshot(page, "reporting-dashboard")
    with page.expect_download() as download:
        page.click("#panel-areas a[data-fmt=xlsx]:not([data-publish])")
    path = tmp_path / "areas.xlsx"
    download.value.save_as(path)
    rows = list(load_workbook(path).active.iter_rows(values_only=True))
    assert len(rows) > 2 and isinstance(rows[1][1], int)
