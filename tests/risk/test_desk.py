"""The risk desk in the admin: who sees what, and every button calls its audited service."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.complaints.models import Case
from apps.invoices.models import Invoice
from apps.risk.models import RiskAlert, RiskConfigChange, WatchEntry
from apps.risk.services import device_fingerprint, risk_assessment_save
from tests.accounts.helpers import sign_in_staff
from tests.complaints.conftest import category, desk_settings, queue  # noqa: F401 - fixtures
from tests.factories.core import MerchantFactory

from .conftest import staff

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def held(campaign, past, consumer):
    from apps.risk.services import RiskDecision

    merchant = MerchantFactory()
    invoice = past(consumer, merchant, 1, status="held", device_hash=device_fingerprint("x"))
    risk_assessment_save(
        invoice=invoice,
        decision=RiskDecision(
            "hold",
            60,
            ("shared_device(+60)",),
            "risk.held",
            ({"rule": "shared_device", "points": 60, "detail": {"others": 2}},),
        ),
    )
    return invoice


def test_the_reviewer_sees_the_queue_and_the_evidence_and_releases(client, held):
    sign_in_staff(client, staff("审核员"))
    page = client.get(reverse("risk:queue"))
    assert page.status_code == 200 and held.number in page.content.decode()
    evidence = client.get(reverse("risk:invoice", args=[held.pk])).content.decode()
    assert "shared_device" in evidence and "others = 2" in evidence
    response = client.post(
        reverse("risk:invoice_action", args=[held.pk, "release"]), {"reason": "本人消费"}
    )
    assert response.status_code == 302
    held.refresh_from_db()
    assert held.status == "accepted"
    assert AuditEvent.objects.filter(action="invoice.released", target_id=str(held.pk)).exists()


def test_a_reason_is_required(client, held):
    sign_in_staff(client, staff("审核员"))
    client.post(reverse("risk:invoice_action", args=[held.pk, "reject"]), {"reason": ""})
    assert Invoice.objects.get(pk=held.pk).status == "held"


def test_the_analyst_cannot_release_but_blacklists_and_opens_a_case(
    client,
    held,
    category,  # noqa: F811
):
    sign_in_staff(client, staff("风控专员"))
    release = client.post(
        reverse("risk:invoice_action", args=[held.pk, "release"]), {"reason": "看起来没问题"}
    )
    assert release.status_code == 403 and Invoice.objects.get(pk=held.pk).status == "held"
    client.post(
        reverse("risk:invoice_action", args=[held.pk, "blacklist_consumer"]),
        {"reason": "身份农场"},
    )
    kinds = set(WatchEntry.objects.filter(active=True).values_list("kind", flat=True))
    assert kinds == {"consumer", "device"}
    assert AuditEvent.objects.filter(action="risk.watch_added").count() == 2
    client.post(reverse("risk:invoice_action", args=[held.pk, "case"]), {"reason": "调查刷单"})
    case = Case.objects.get()
    assert case.invoice_id == held.pk and case.subject == "调查刷单"
    assert AuditEvent.objects.filter(action="risk.case_opened").exists()


@pytest.mark.parametrize("group", ["数据分析", "财务经办"])
def test_other_roles_stay_out(client, held, group):
    sign_in_staff(client, staff(group))
    assert client.get(reverse("risk:queue")).status_code == 403
    assert client.get(reverse("risk:invoice", args=[held.pk])).status_code == 403


@pytest.fixture
def alert(campaign):
    from django.utils import timezone

    from apps.risk.models import BatchRun

    merchant = MerchantFactory(name="可疑商户")
    run = BatchRun.objects.create(
        campaign=campaign, as_of=timezone.now(), started_at=timezone.now()
    )
    return RiskAlert.objects.create(
        run=run,
        campaign=campaign,
        subject_kind="merchant",
        subject_key=str(merchant.pk),
        merchant=merchant,
        score=12,
        features=[{"feature": "red_rate", "value": 0.4, "peer_median": 0.01, "z": 12.0}],
    )


def test_alerts_and_the_merchant_profile(client, alert):
    sign_in_staff(client, staff("风控专员"))
    listing = client.get(reverse("risk:alerts")).content.decode()
    assert "可疑商户" in listing and "red_rate" in listing
    profile = client.get(reverse("risk:merchant", args=[alert.merchant_id]))
    assert profile.status_code == 200 and alert.merchant.uscc in profile.content.decode()
    client.post(reverse("risk:alert_action", args=[alert.pk, "blacklist"]), {"reason": "红冲套奖"})
    alert.merchant.refresh_from_db()
    assert alert.merchant.status == "blacklisted"
    client.post(reverse("risk:alert_action", args=[alert.pk, "confirm"]), {"reason": "已核实"})
    alert.refresh_from_db()
    assert alert.status == "confirmed" and alert.handled_by is not None
    assert AuditEvent.objects.filter(action="risk.alert_confirmed").exists()


def test_the_reviewer_reads_alerts_but_cannot_close_them(client, alert):
    sign_in_staff(client, staff("审核员"))
    assert client.get(reverse("risk:alert", args=[alert.pk])).status_code == 200
    response = client.post(
        reverse("risk:alert_action", args=[alert.pk, "dismiss"]), {"reason": "no"}
    )
    assert response.status_code == 403
    assert RiskAlert.objects.get(pk=alert.pk).status == "open"


def test_the_analyst_changes_a_rule_on_the_config_page(client):
    analyst = staff("风控专员")
    sign_in_staff(client, analyst)
    page = client.get(reverse("risk:config")).content.decode()
    assert "split_purchase" in page
    client.post(
        reverse("risk:config"),
        {
            "code": "split_purchase",
            "enabled": "on",
            "weight": "45",
            "params": json.dumps({"window_minutes": 20}),
            "reason": "节假日调整",
        },
    )
    change = RiskConfigChange.objects.get()
    assert change.actor == analyst and change.after["weight"] == 45
    assert change.after["params"]["window_minutes"] == 20
    assert "节假日调整" in client.get(reverse("risk:config")).content.decode()


def test_the_reviewer_cannot_change_rules(client):
    sign_in_staff(client, staff("审核员"))
    assert client.get(reverse("risk:config")).status_code == 403
    response = client.post(
        reverse("risk:config"),
        {"code": "split_purchase", "weight": "0", "params": "{}", "reason": "off"},
    )
    assert response.status_code == 403 and not RiskConfigChange.objects.exists()


# The configuration page's scoring fields, unchanged, posted with each setting under test.
SCORING_FORM = {
    "hold_score": "50",
    "block_score": "150",
    "feature_z": "3.5",
    "alert_z": "6",
    "alert_min_features": "2",
}


def test_the_analyst_changes_the_reversal_test_rate_on_the_config_page(client):
    from apps.risk.models import RiskSettings

    sign_in_staff(client, staff("风控专员"))
    page = client.get(reverse("risk:config")).content.decode()
    assert 'name="reversal_fdr"' in page
    values = {
        **SCORING_FORM,
        "reversal_fdr": "0.05",
        "reason": "更宽的红冲筛查",
    }
    client.post(reverse("risk:config"), values)
    assert str(RiskSettings.objects.get().reversal_fdr) == "0.050"
    client.post(reverse("risk:config"), {**values, "reversal_fdr": "0.9", "reason": "太宽"})
    assert str(RiskSettings.objects.get().reversal_fdr) == "0.050"  # refused: out of range


def test_the_analyst_changes_the_returner_link_and_large_share_on_the_config_page(client):
    from apps.risk.models import RiskSettings

    sign_in_staff(client, staff("风控专员"))
    page = client.get(reverse("risk:config")).content.decode()
    assert 'name="reversal_link_min"' in page and 'name="reversal_large_share"' in page
    values = {
        **SCORING_FORM,
        "reversal_link_min": "3",
        "reversal_large_share": "0.02",
        "reason": "只看更贵的退货",
    }
    client.post(reverse("risk:config"), values)
    row = RiskSettings.objects.get()
    assert row.reversal_link_min == 3 and str(row.reversal_large_share) == "0.020"
    client.post(reverse("risk:config"), {**values, "reversal_large_share": "0.9", "reason": "太宽"})
    assert str(RiskSettings.objects.get().reversal_large_share) == "0.020"  # refused
