"""The dashboard in the admin, its exports with small-cell suppression, and the partner pull
API with client credentials (scopes, expiry, revocation, rate limit, audit)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook
from rest_framework.test import APIClient

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditEvent
from apps.reporting import selectors, services
from apps.reporting.models import PartnerAPIKey, PartnerScope
from apps.reporting.selectors import Filters, Table, suppress
from tests.accounts.helpers import make_staff, sign_in_staff
from tests.factories.core import ConsumerFactory
from tests.reporting.helpers import submit, world

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

DASHBOARD = "/admin/reporting/dashboard/"


def staff_in(role: str, username: str):
    user = make_staff(username)
    user.groups.add(Group.objects.get(name=ROLES_BY_CODE[role].group_name))
    return sign_in_staff(Client(), type(user).objects.get(pk=user.pk)), user


@pytest.fixture
def activity():
    """Twelve entered invoices at one merchant, one at another (a small cell)."""
    consumers = [ConsumerFactory(real_name=f"张{'三四五六'[i % 4]}") for i in range(4)]
    w = world(consumers)
    for i in range(12):
        assert submit(consumers[i % 4], w.merchants[0], total=Decimal("200.00")) is not None
    assert submit(consumers[0], w.merchants[1], total=Decimal("300.00")) is not None
    return w


def test_suppression_hides_small_counts_and_their_rows_figures():
    table = Table(
        key="t",
        title="t",
        columns=[("code", "code"), ("n", "n"), ("m", "m"), ("money", "money")],
        rows=[
            ["a", 12, 3, Decimal("10.00")],
            ["b", 4, 0, Decimal("99.00")],
            ["c", 0, 0, Decimal("0")],
        ],
        counts=("n", "m"),
        base="n",
    )
    out = suppress(table, threshold=10)
    assert out.rows[0] == ["a", 12, None, Decimal("10.00")]  # one small count hidden
    assert out.rows[1] == ["b", None, None, None]  # a small row: all its figures
    assert out.rows[2] == ["c", 0, 0, Decimal("0")]  # zero reveals nobody
    assert "10" in str(out.note)


def test_dashboard_shows_the_rollups_to_the_statistician_in_chinese(activity):
    client, _user = staff_in("statistician", "stat1")
    today = timezone.localdate().isoformat()
    response = client.get(DASHBOARD, {"date_from": today, "date_to": today})
    assert response.status_code == 200
    page = response.content.decode()
    assert "统计" in page or "发票" in page  # rendered in the default language
    assert "vendor/echarts/echarts.min.js" in page
    panels = response.context["panels"]
    assert panels["today"]["rows"][0][:2] == [13, 13]  # submitted, entered
    areas = {row[0]: row[1] for row in panels["areas"]["rows"]}
    assert areas[activity.merchants[0].area_code] == 12
    top = response.context["panels"]["merchants"]["rows"][0]
    assert (top[0], top[2]) == (activity.merchants[0].name, 12)
    assert response.context["suppressed"] is False


def test_without_the_small_cell_permission_figures_are_suppressed(activity):
    client, user = staff_in("statistician", "stat2")
    user.groups.clear()
    user.user_permissions.add(
        *type(user)
        ._meta.apps.get_model("auth", "Permission")
        .objects.filter(codename="view_dashboard")
    )
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    assert response.context["suppressed"] is True
    industries = {row[0]: row for row in response.context["panels"]["industries"]["rows"]}
    assert industries[activity.merchants[0].industry_code[:2]][1] == 12
    assert industries[activity.merchants[1].industry_code[:2]][1] is None  # 1 invoice


def test_roles_without_the_dashboard_permission_are_refused(activity):
    client, _user = staff_in("complaint_handler", "handler1")
    assert client.get(DASHBOARD).status_code == 403
    anonymous = Client().get(DASHBOARD)
    assert anonymous.status_code == 302


def test_exports_csv_and_xlsx_audited_and_suppressed_for_publication(activity):
    client, user = staff_in("statistician", "stat3")
    export = reverse("admin:reporting_dashboard_export", args=["areas", "csv"])
    response = client.get(export)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    by_code = {r[0]: r for r in rows[1:]}
    assert by_code[activity.merchants[1].area_code][1] == "1"  # task force: exact
    published = client.get(export, {"publish": "1"})
    rows = list(csv.reader(io.StringIO(published.content.decode("utf-8-sig"))))
    by_code = {r[0]: r for r in rows[1:] if r}
    assert by_code[activity.merchants[1].area_code][1] == "<10"
    xlsx = client.get(reverse("admin:reporting_dashboard_export", args=["trend", "xlsx"]))
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[1][1] == 13  # today's submissions
    events = AuditEvent.objects.filter(action="reporting.exported", actor_id=user.pk)
    assert events.count() == 3
    assert {e.after["suppressed"] for e in events} == {False, True}
    assert (
        client.get(reverse("admin:reporting_dashboard_export", args=["nope", "csv"])).status_code
        == 404
    )


def test_every_panel_renders_for_every_filter(activity):
    filters = Filters.parse(
        {"campaign": str(activity.campaign.pk), "area": "4101", "industry": "52"}
    )
    for key in selectors.PANELS:
        table = selectors.panel(key, filters, suppressed=True)
        assert table.as_dict()["columns"], key
    assert Filters.parse({"date_from": "bad", "area": "41x01"}).area == "4101"


# --- The partner pull API -------------------------------------------------------------------------


def _key(scopes=(PartnerScope.INVOICES,), days=30):
    official = make_staff("keyofficer")
    return services.partner_key_issue(
        partner="郑好办",
        scopes=scopes,
        expires_at=timezone.now() + timedelta(days=days),
        actor=official,
    )


def _api(issued) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"PartnerKey {issued.key.key_id}:{issued.secret}")
    return client


def test_partner_api_returns_suppressed_figures_and_is_audited(activity):
    issued = _key()
    key = PartnerAPIKey.objects.get()
    assert issued.secret not in key.secret_hash and len(key.secret_hash) == 64
    response = _api(issued).get("/api/v1/partner/stats/invoices/")
    assert response.status_code == 200, response.content
    panels = response.json()["panels"]
    assert panels["today"]["rows"][0][0] == 13
    areas = {row[0]: row[1] for row in panels["areas"]["rows"]}
    assert areas[activity.merchants[1].area_code] is None  # small cell, never published
    assert AuditEvent.objects.filter(action="partner_api.read").count() == 1
    # Wrong scope, wrong secret, expired, revoked: refused with stable codes.
    assert _api(issued).get("/api/v1/partner/stats/awards/").json()["code"] == (
        "partner_auth.scope_missing"
    )
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"PartnerKey {key.key_id}:pks_{'x' * 43}")
    reply = forged.get("/api/v1/partner/stats/invoices/")
    assert reply.status_code == 401 and reply.json()["code"] == "partner_auth.bad_secret"
    assert APIClient().get("/api/v1/partner/stats/invoices/").status_code == 401
    PartnerAPIKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(1))
    assert _api(issued).get("/api/v1/partner/stats/invoices/").json()["code"] == (
        "partner_auth.key_expired"
    )
    PartnerAPIKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(1))
    services.partner_key_revoke(key=key, actor=None, reason="contract ended")
    assert _api(issued).get("/api/v1/partner/stats/invoices/").json()["code"] == (
        "partner_auth.key_revoked"
    )


def test_partner_api_is_rate_limited_per_key(activity):
    issued = _key(scopes=(PartnerScope.INVOICES, PartnerScope.AWARDS))
    with override_settings(REPORTING_PARTNER_RATE="3/min"):
        client = _api(issued)
        codes = [client.get("/api/v1/partner/stats/awards/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_partner_keys_need_scopes_and_a_future_expiry():
    from apps.reporting.exceptions import ReportingError

    with pytest.raises(ReportingError):
        services.partner_key_issue(
            partner="x", scopes=[], expires_at=timezone.now() + timedelta(1), actor=None
        )
    with pytest.raises(ReportingError):
        services.partner_key_issue(
            partner="x", scopes=["stats.invoices"], expires_at=timezone.now(), actor=None
        )


def test_officials_issue_partner_keys_and_see_the_secret_once():
    client, _user = staff_in("campaign_admin", "campadmin1")
    url = reverse("admin:reporting_partnerapikey_issue")
    response = client.post(
        url, {"partner": "郑好办", "scopes": ["stats.invoices"], "valid_days": "90"}
    )
    assert response.status_code == 200
    key = PartnerAPIKey.objects.get()
    secret = response.context["issued"].secret
    assert secret.startswith("pks_") and services.secret_matches(key, secret)
    assert (
        response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    )
    assert AuditEvent.objects.filter(action="partner_key.issued").exists()
    stat, _ = staff_in("statistician", "stat9")
    assert stat.get(url).status_code == 403


def test_exchange_pages_and_the_replay_action_in_the_admin(activity):
    from apps.reporting.models import OutboxEvent, OutboxStatus

    client, _user = staff_in("campaign_admin", "campadmin2")
    for name in ("outboxevent", "deliveryattempt", "partnerapikey"):
        assert client.get(reverse(f"admin:reporting_{name}_changelist")).status_code == 200
    assert client.get(DASHBOARD).status_code == 200
    dead = OutboxEvent.objects.order_by("id")[:2]
    OutboxEvent.objects.filter(pk__in=[e.pk for e in dead]).update(status=OutboxStatus.DEAD)
    response = client.post(
        reverse("admin:reporting_outboxevent_changelist"),
        {"action": "replay", "_selected_action": [str(e.pk) for e in dead]},
        follow=True,
    )
    assert response.status_code == 200
    assert not OutboxEvent.objects.filter(status=OutboxStatus.DEAD).exists()
    # The auditor reads the exchange but cannot replay.
    auditor, _ = staff_in("auditor", "auditor1")
    page = auditor.get(reverse("admin:reporting_outboxevent_changelist"))
    assert page.status_code == 200 and b'value="replay"' not in page.content
