"""The response side: the alert workflow and rule editing on the security administrator's
pages, notifications (e-mail and the signed webhook, against a receiver on 127.0.0.1), the
nightly summary, the audit-stream consumer — and the two finance/configuration rules, through
the admin pages where those changes are made."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import audit_record
from apps.monitoring import services, state, tasks
from apps.monitoring.choices import AlertStatus, ResponseKind, ResponseStatus
from apps.monitoring.models import (
    Alert,
    AutomaticResponse,
    MonitorCursor,
    MonitoringRule,
    MonitoringRuleChange,
)
from apps.prizes.choices import BatchStatus
from apps.prizes.models import PayoutBatch
from tests.accounts.helpers import sign_in_staff
from tests.draws.conftest import campaign, make_staff, window  # noqa: F401  (fixtures)
from tests.draws.test_admin import VIEW_DRAWS, management_data, split
from tests.factories.core import CampaignFactory, UserFactory
from tests.monitoring.conftest import alerts, staff_in
from tests.monitoring.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db


def sample_alert(committed, **kwargs):
    return committed(
        services.alert_raise,
        rule_code=kwargs.pop("rule_code", "permission_denied"),
        subject_type="user",
        subject_id=kwargs.pop("subject_id", "4242"),
        subject_repr="someone",
        source_ip="203.0.113.1",
        evidence=kwargs.pop("evidence", []),
        **kwargs,
    )


# --- Workflow --------------------------------------------------------------------------------


def test_acknowledge_then_resolve_with_notes_and_history(committed, security_client):
    event = audit_record(action="test.evidence")
    alert = sample_alert(committed, evidence=[event.pk])
    url = reverse("admin:monitoring_alert_detail", args=[alert.pk])
    page = security_client.get(url)
    assert page.status_code == 200 and f'<span class="evidence">{event.seq}</span>' in (
        page.content.decode()
    )
    assert (
        security_client.post(url, {"act-action": "acknowledge", "act-note": "查看中"}).status_code
        == 302
    )
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by.username == "secadmin"

    # Resolving needs a note.
    refused = security_client.post(url, {"act-action": "resolve", "act-note": ""}, follow=True)
    assert Alert.objects.get(pk=alert.pk).status == AlertStatus.ACKNOWLEDGED
    assert refused.status_code == 200
    security_client.post(url, {"act-action": "note", "act-note": "联系了本人"})
    security_client.post(url, {"act-action": "resolve", "act-note": "误报：测试账号"})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_by.username == "secadmin"
    history = list(alert.history.values_list("from_status", "to_status", "note"))
    assert history == [
        ("open", "open", ""),
        ("open", "acknowledged", "查看中"),
        ("acknowledged", "acknowledged", "联系了本人"),
        ("acknowledged", "resolved", "误报：测试账号"),
    ]
    actions = set(
        AuditEvent.objects.filter(target_id=str(alert.pk)).values_list("action", flat=True)
    )
    assert {"monitoring.alert_acknowledged", "monitoring.alert_resolved"} <= actions
    # A resolved alert cannot be acknowledged again; the same finding opens a new alert.
    security_client.post(url, {"act-action": "acknowledge", "act-note": ""})
    assert Alert.objects.get(pk=alert.pk).status == AlertStatus.RESOLVED
    again = sample_alert(committed)
    assert again.pk != alert.pk and again.status == AlertStatus.OPEN


def test_a_repeat_adds_to_the_live_alert(committed):
    first = sample_alert(committed, evidence=[1])
    second = sample_alert(committed, evidence=[2])
    assert first.pk == second.pk
    alert = Alert.objects.get(pk=first.pk)
    assert alert.occurrences == 2 and alert.evidence == [1, 2]


def test_only_the_security_administrator_sees_and_works_alerts(committed):
    alert = sample_alert(committed)
    outsider = sign_in_staff(Client(), staff_in("审计员"))
    assert outsider.get(reverse("admin:monitoring_overview")).status_code == 403
    url = reverse("admin:monitoring_alert_detail", args=[alert.pk])
    assert outsider.get(url).status_code == 403
    assert outsider.post(url, {"act-action": "resolve", "act-note": "x"}).status_code == 403
    assert Alert.objects.get(pk=alert.pk).status == AlertStatus.OPEN


# --- Rule editing ----------------------------------------------------------------------------


def rule_form(rule, **changes):
    data = {
        "enabled": "on" if rule.enabled else "",
        "severity": rule.severity,
        "threshold": rule.threshold,
        "window_minutes": rule.window_minutes,
        "params": "{}",
        "response": rule.response,
        "notify": "on",
        "change_reason": "",
        "changes-TOTAL_FORMS": 0,
        "changes-INITIAL_FORMS": 0,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""} | {
        "change_reason": changes.get("change_reason", "")
    }


def test_security_administrator_edits_a_threshold_with_history(committed, security_client):
    rule = MonitoringRule.objects.get(code="reveal_burst")
    url = reverse("admin:monitoring_monitoringrule_change", args=[rule.pk])
    page = security_client.get(url)
    assert page.status_code == 200
    prefix = re.search(r'name="([\w-]+)-TOTAL_FORMS"', page.content.decode()).group(1)
    data = rule_form(rule, threshold=5, change_reason="节假日值班加强")
    data[f"{prefix}-TOTAL_FORMS"] = data.pop("changes-TOTAL_FORMS")
    data[f"{prefix}-INITIAL_FORMS"] = data.pop("changes-INITIAL_FORMS")
    response = committed(security_client.post, url, data)
    assert response.status_code == 302, (
        response.context and response.context["adminform"].form.errors
    )
    assert state.rule("reveal_burst").threshold == 5
    change = MonitoringRuleChange.objects.get(rule=rule)
    assert change.before["threshold"] == 20 and change.after["threshold"] == 5
    assert change.reason == "节假日值班加强" and change.actor.username == "secadmin"
    assert AuditEvent.objects.get(action="monitoring.rule_changed").actor_username == "secadmin"

    # Parameters the rule does not have, or a response that does not fit it, are refused.
    bad = dict(data, params='{"nonsense": 1}', change_reason="x")
    assert security_client.post(url, bad).status_code == 200
    wrong = dict(data, response="suspend_key", change_reason="x")
    assert security_client.post(url, wrong).status_code == 200
    assert MonitoringRuleChange.objects.filter(rule=rule).count() == 1


def test_other_staff_cannot_edit_rules():
    client = sign_in_staff(Client(), staff_in("系统管理员"))
    rule = MonitoringRule.objects.get(code="reveal_burst")
    url = reverse("admin:monitoring_monitoringrule_change", args=[rule.pk])
    assert client.post(url, {"threshold": 1000, "change_reason": "x"}).status_code == 403
    assert MonitoringRule.objects.get(pk=rule.pk).threshold == 20


# --- Notifications ---------------------------------------------------------------------------


def test_alert_is_mailed_and_posted_to_the_signed_webhook(committed, settings, security_admin):
    with WebhookReceiver("s3cret-webhook") as receiver:
        settings.MONITORING_WEBHOOK_URL = receiver.url
        settings.MONITORING_WEBHOOK_SECRET = "s3cret-webhook"
        settings.MONITORING_ALERT_EMAILS = ["soc@example.org"]
        alert = sample_alert(committed)
    (message,) = mail.outbox
    assert sorted(message.to) == ["sec@example.org", "soc@example.org"]
    assert alert.title in message.subject
    assert reverse("admin:monitoring_alert_detail", args=[alert.pk]) in message.body
    (posted,) = receiver.received
    assert receiver.refused == []
    assert posted["event"] == "alert.raised" and posted["data"]["id"] == alert.pk
    assert posted["data"]["rule"] == "permission_denied"
    assert Alert.objects.get(pk=alert.pk).notified_at is not None


def test_a_wrong_secret_is_refused_by_the_receiver(settings):
    from apps.monitoring import notify

    with WebhookReceiver("the-real-secret") as receiver:
        settings.MONITORING_WEBHOOK_URL = receiver.url
        settings.MONITORING_WEBHOOK_SECRET = "a-forged-secret"
        with pytest.raises(notify.WebhookError):
            notify.post_webhook("alert.raised", {"id": 1})
    assert receiver.received == [] and len(receiver.refused) == 1


def test_nightly_summary_is_mailed(committed, security_admin):
    sample_alert(committed)
    summary = tasks.nightly_summary()
    assert summary["alerts"] == 1 and summary["by_rule"] == {"permission_denied": 1}
    assert summary["by_severity"]["medium"] == 1
    message = mail.outbox[-1]
    assert message.to == ["sec@example.org"] and "permission_denied: 1" in message.body
    assert AuditEvent.objects.filter(action="monitoring.summary_sent").exists()


# --- The audit-stream consumer ---------------------------------------------------------------


def test_each_event_is_evaluated_once(committed, set_rule):
    set_rule("privilege_change", enabled=True)
    user = UserFactory(is_staff=True)
    actor = UserFactory(is_staff=True)
    event = audit_record(
        action="permission.groups_added", category="permission", target=user, actor=actor
    )
    assert services.events_process() == 1
    # The second run reads only the alert's own audit record, which no rule looks at.
    assert services.events_process() == 1
    assert services.events_process() == 0
    assert alerts("privilege_change").count() == 1
    assert alerts("privilege_change").get().evidence == [event.pk]
    head = AuditChainHead.objects.get(pk=1)
    assert MonitorCursor.objects.get(pk=1).last_seq == head.seq


def test_a_disabled_rule_raises_nothing(set_rule):
    set_rule("privilege_change", enabled=False)
    user, actor = UserFactory(is_staff=True), UserFactory(is_staff=True)
    audit_record(action="permission.groups_added", category="permission", target=user, actor=actor)
    services.events_process()
    assert not alerts("privilege_change").exists()


# --- Configuration near a cut-off ------------------------------------------------------------


def add_draw(client, campaign, start, end, cutoff, code):  # noqa: F811
    url = reverse("admin:draws_periodicdraw_add")
    page = client.get(url)
    data = {
        **management_data(page.content.decode()),
        "code": code,
        "name": "定期开奖",
        "campaign": campaign.pk,
        "window_starts_at_0": split(start)[0],
        "window_starts_at_1": split(start)[1],
        "window_ends_at_0": split(end)[0],
        "window_ends_at_1": split(end)[1],
        "cutoff_at_0": split(cutoff)[0],
        "cutoff_at_1": split(cutoff)[1],
        "per_holder_limit": 1,
        "notice_days": 7,
        "randomness_source": "",
        "tiers-TOTAL_FORMS": 1,
        "tiers-INITIAL_FORMS": 0,
        "tiers-0-rank": 1,
        "tiers-0-name": "一等奖",
        "tiers-0-amount": "800.00",
        "tiers-0-count": 1,
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context.get("errors")


def test_draw_configured_close_to_its_cutoff_alerts(committed, campaign):  # noqa: F811
    manager = make_staff("cfg_manager", "draws.manage_draw", *VIEW_DRAWS)
    client = sign_in_staff(Client(), manager)
    now = timezone.now()
    committed(
        add_draw,
        client,
        campaign,
        now - timedelta(days=5),
        now + timedelta(hours=1),
        now + timedelta(hours=2),
        "ZZ-NEAR-1",
    )
    alert = alerts("config_near_cutoff").get()
    assert alert.details["action"] == "draw.created" and alert.details["by"] == "cfg_manager"
    assert 100 <= alert.details["minutes_before_cutoff"] <= 120


def test_draw_configured_well_before_its_cutoff_does_not_alert(committed, campaign, window):  # noqa: F811
    manager = make_staff("cfg_manager", "draws.manage_draw", *VIEW_DRAWS)
    client = sign_in_staff(Client(), manager)
    now = timezone.now()
    committed(
        add_draw,
        client,
        campaign,
        now - timedelta(days=5),
        now + timedelta(days=2),
        now + timedelta(days=3),
        "ZZ-FAR-1",
    )
    assert not alerts("config_near_cutoff").exists()


# --- Maker/checker pairs ---------------------------------------------------------------------


def finance(role, username):
    user = UserFactory(is_staff=True, username=username)
    user.groups.add(Group.objects.get(name=ROLES_BY_CODE[role].group_name))
    return type(user).objects.get(pk=user.pk)


def history(campaign, pairs):  # noqa: F811
    """Batches approved earlier this month by these (maker, checker) pairs."""
    now = timezone.now()
    for i, (maker, checker) in enumerate(pairs):
        PayoutBatch.objects.create(
            reference=f"HIST-{i:04d}",
            campaign=campaign,
            status=BatchStatus.COMPLETED,
            created_by=maker,
            approved_by=checker,
            approved_at=now - timedelta(days=i + 1),
        )


def approve_in_admin(committed, checker, batch):
    client = sign_in_staff(Client(), checker)
    url = reverse("admin:prizes_payoutbatch_changelist")
    data = {"action": "approve_selected", "_selected_action": [str(batch.pk)]}
    response = committed(client.post, url, data, follow=True)
    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status in (BatchStatus.APPROVED, BatchStatus.COMPLETED)


@pytest.fixture
def team(db):
    return {
        "m1": finance("finance_maker", "maker1"),
        "m2": finance("finance_maker", "maker2"),
        "c1": finance("finance_checker", "checker1"),
        "c2": finance("finance_checker", "checker2"),
    }


def test_one_pair_approving_most_batches_alerts(committed, set_rule, team):
    set_rule("maker_checker_pair", threshold=60, params={"min_batches": 5})
    campaign = CampaignFactory()  # noqa: F811
    history(campaign, [(team["m1"], team["c1"])] * 4 + [(team["m2"], team["c2"])])
    batch = PayoutBatch.objects.create(
        reference="NEW-0001", campaign=campaign, created_by=team["m1"], submitted_at=timezone.now()
    )
    approve_in_admin(committed, team["c1"], batch)
    alert = alerts("maker_checker_pair").get()
    assert alert.details == {"pair_batches": 5, "all_batches": 6, "share_percent": 83}
    assert alert.subject_repr == "maker1 → checker1"


def test_rotating_pairs_do_not_alert(committed, set_rule, team):
    set_rule("maker_checker_pair", threshold=60, params={"min_batches": 5})
    campaign = CampaignFactory()  # noqa: F811
    history(
        campaign,
        [(team["m1"], team["c1"])] * 2
        + [(team["m2"], team["c1"])] * 2
        + [(team["m1"], team["c2"])],
    )
    batch = PayoutBatch.objects.create(
        reference="NEW-0002",
        campaign=campaign,
        created_by=team["m1"],
        submitted_at=timezone.now(),
        total_amount=Decimal("0.00"),
    )
    approve_in_admin(committed, team["c1"], batch)
    assert not alerts("maker_checker_pair").exists()


def test_housekeeping_catches_up_the_stream_and_ends_expired_blocks(set_rule):
    """The beat job: events whose trigger was lost are evaluated; blocks past their end are
    marked expired and the address is let through."""
    user, actor = UserFactory(is_staff=True), UserFactory(is_staff=True)
    audit_record(action="permission.groups_added", category="permission", target=user, actor=actor)
    alert = alerts("privilege_change")
    assert not alert.exists()  # the request's trigger never ran (no commit in this test)
    result = tasks.housekeeping()
    assert result["events"] >= 1 and alert.count() == 1
    block = AutomaticResponse.objects.create(
        alert=alert.get(),
        kind=ResponseKind.BLOCK_SOURCE,
        status=ResponseStatus.ACTIVE,
        target_type="ip",
        target_id="203.0.113.9",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert tasks.housekeeping()["expired"] == 1
    assert AutomaticResponse.objects.get(pk=block.pk).status == ResponseStatus.EXPIRED
    assert Client().get("/draws/verify/", REMOTE_ADDR="203.0.113.9").status_code == 200
