"""Staff rules, driven through the real back-office pages: reveals (burst and after hours, with
the automatic lock taking effect on the live session and its reversal), repeated refusals,
privilege changes, sign-in from a new network and dormant accounts — each with a case that
must raise an alert and one that must not."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User, UserSession
from apps.audit.models import AuditEvent
from apps.monitoring.choices import ResponseKind, ResponseStatus
from apps.monitoring.models import AutomaticResponse
from tests.accounts.helpers import (
    ADMIN_INDEX,
    MFA_URL,
    STRONG_PASSWORD,
    enable_totp,
    make_staff,
    post_login,
    sign_in_staff,
    totp_code,
)
from tests.factories.core import ConsumerFactory
from tests.monitoring.conftest import alerts, staff_in

pytestmark = pytest.mark.django_db

# Wednesday 4 March 2026, 10:00 in Shanghai (02:00 UTC): inside working hours.
WORKDAY_10 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
# Saturday 7 March 2026, 23:00 in Shanghai.
SATURDAY_23 = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)


def reveal(client, consumer):
    return client.post(
        reverse("admin:accounts_consumer_reveal", args=[consumer.pk]),
        {"field": "phone", "reason": "工单 2026-0001 核实"},
    )


# --- Reveals ---------------------------------------------------------------------------------


def test_reveal_burst_locks_the_account_at_once_and_the_lock_is_reversible(
    committed, set_rule, security_client
):
    set_rule("reveal_burst", threshold=3, window_minutes=10)
    with time_machine.travel(WORKDAY_10, tick=True):
        handler = staff_in("投诉处理员")
        client = sign_in_staff(Client(), handler)
        consumers = [ConsumerFactory(phone=f"1391234567{i}") for i in range(3)]
        for consumer in consumers[:2]:
            assert committed(reveal, client, consumer).status_code == 200
        assert not alerts("reveal_burst").exists()  # two are fine

        assert committed(reveal, client, consumers[2]).status_code == 200
        alert = alerts("reveal_burst").get()
        assert alert.subject_id == str(handler.pk)
        revealed = AuditEvent.objects.filter(action="personal_data.revealed")
        assert set(alert.evidence) == set(revealed.values_list("pk", flat=True))
        assert not alerts("reveal_after_hours").exists()

        # The lock takes effect at once: the account is inactive, its sessions are gone, and
        # the very session that revealed is signed out on its next request.
        response = AutomaticResponse.objects.get(alert=alert)
        assert response.kind == ResponseKind.LOCK_ACCOUNT
        assert response.status == ResponseStatus.ACTIVE
        handler.refresh_from_db()
        assert not handler.is_active
        assert not UserSession.objects.filter(user=handler).exists()
        after = client.get(ADMIN_INDEX)
        assert after.status_code == 302 and "login" in after["Location"]
        assert AuditEvent.objects.filter(action="monitoring.response_taken").exists()

        # Visible on the monitoring page, and reversible by the security administrator.
        overview = security_client.get(reverse("admin:monitoring_overview"))
        assert overview.status_code == 200 and alert.title in overview.content.decode()
        detail_url = reverse("admin:monitoring_alert_detail", args=[alert.pk])
        page = security_client.get(detail_url).content.decode()
        assert "rev-response_id" in page
        done = committed(
            security_client.post,
            detail_url,
            {"rev-response_id": response.pk, "rev-note": "已核实为批量工单处理"},
        )
        assert done.status_code == 302
        response.refresh_from_db()
        handler.refresh_from_db()
        assert response.status == ResponseStatus.REVERSED and handler.is_active
        assert response.reversed_by.username == "secadmin"
        assert AuditEvent.objects.filter(
            action="monitoring.response_reversed", actor_username="secadmin"
        ).exists()
        assert alert.history.filter(note__contains="已核实为批量工单处理").exists()
        # The old session stays ended: the handler signs in afresh.
        assert client.get(ADMIN_INDEX).status_code == 302


def test_reveals_spread_over_time_do_not_alert(committed, set_rule):
    set_rule("reveal_burst", threshold=3, window_minutes=10)
    with time_machine.travel(WORKDAY_10, tick=False) as clock:
        handler = staff_in("投诉处理员")
        client = sign_in_staff(Client(), handler)
        for _ in range(4):
            assert committed(reveal, client, ConsumerFactory()).status_code == 200
            clock.shift(timedelta(minutes=6))
            client = sign_in_staff(Client(), handler)
    assert not alerts("reveal_burst").exists()
    assert User.objects.get(pk=handler.pk).is_active


def test_reveal_outside_working_hours_alerts_but_inside_does_not(committed):
    with time_machine.travel(WORKDAY_10, tick=True):
        handler = staff_in("投诉处理员")
        client = sign_in_staff(Client(), handler)
        committed(reveal, client, ConsumerFactory())
    assert not alerts("reveal_after_hours").exists()
    with time_machine.travel(SATURDAY_23, tick=True):
        client = sign_in_staff(Client(), handler)
        committed(reveal, client, ConsumerFactory())
    alert = alerts("reveal_after_hours").get()
    assert alert.subject_id == str(handler.pk)
    assert alert.details["local_time"] == "2026-03-07 23:00"
    assert not AutomaticResponse.objects.exists()  # this rule only alerts by default


# --- Refusals --------------------------------------------------------------------------------


def test_repeated_permission_denied_alerts(committed, set_rule):
    set_rule("permission_denied", threshold=3, window_minutes=10)
    statistician = staff_in("数据分析")
    client = sign_in_staff(Client(), statistician)
    forbidden = reverse("admin:accounts_consumer_changelist")
    for _ in range(2):
        assert committed(client.get, forbidden).status_code == 403
    assert not alerts("permission_denied").exists()
    assert committed(client.get, forbidden).status_code == 403
    alert = alerts("permission_denied").get()
    assert alert.subject_id == str(statistician.pk)
    assert alert.details["last_path"] == forbidden


def test_pages_the_person_may_see_are_not_counted(committed, set_rule):
    set_rule("permission_denied", threshold=3, window_minutes=10)
    client = sign_in_staff(Client(), staff_in("数据分析"))
    for _ in range(5):
        assert committed(client.get, ADMIN_INDEX).status_code == 200
    assert not alerts("permission_denied").exists()


# --- Privilege changes -----------------------------------------------------------------------


def user_form(user, **changes):
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on",
        "groups": [str(g.pk) for g in user.groups.all()],
    }
    data.update(changes)
    return data


def test_group_change_in_the_admin_alerts(committed, security_client):
    officer = staff_in("审核员")
    auditor_group = Group.objects.get(name="审计员")
    url = reverse("admin:accounts_user_change", args=[officer.pk])
    groups = [str(g.pk) for g in officer.groups.all()] + [str(auditor_group.pk)]
    response = committed(security_client.post, url, user_form(officer, groups=groups))
    assert response.status_code == 302, response.context and response.context.get("errors")
    alert = alerts("privilege_change").get()
    assert alert.subject_id == str(officer.pk)
    assert alert.details["change"] == {"groups": ["审计员"]}
    assert alert.details["by"] == "secadmin"
    assert AuditEvent.objects.get(pk=alert.evidence[0]).action == "permission.groups_added"


def test_an_edit_without_privilege_change_does_not_alert(committed, security_client):
    officer = staff_in("审核员")
    url = reverse("admin:accounts_user_change", args=[officer.pk])
    response = committed(security_client.post, url, user_form(officer, first_name="Wang"))
    assert response.status_code == 302, response.context and response.context.get("errors")
    assert User.objects.get(pk=officer.pk).first_name == "Wang"
    assert not alerts("privilege_change").exists()


# --- Sign-in ---------------------------------------------------------------------------------


def sign_in(user, secret, ip: str) -> Client:
    """The real staff sign-in (password, then TOTP) from `ip`."""
    client = Client()
    first = post_login(client, user.username, STRONG_PASSWORD, ip=ip)
    assert first.status_code == 302 and first["Location"].startswith(MFA_URL)
    # A code taken in a 30-second window's last seconds may be checked in the next window (a
    # slow machine): wait for the next window instead.
    left = 30 - time.time() % 30
    if left < 5:
        time.sleep(left + 0.05)
    done = client.post(MFA_URL, {"code": totp_code(secret)}, REMOTE_ADDR=ip)
    assert done.status_code == 302
    return client


def test_sign_in_from_a_new_network_alerts_but_not_from_a_known_one(committed):
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=True):
        user = make_staff("netofficer", password_changed_at=start)
        secret = enable_totp(user)
        committed(sign_in, user, secret, "198.51.100.10")  # the first sign-in teaches
    with time_machine.travel(start + timedelta(minutes=1), tick=True):
        committed(sign_in, user, secret, "198.51.100.77")  # same /24
    assert not alerts("new_network_signin").exists()
    with time_machine.travel(start + timedelta(minutes=2), tick=True):
        committed(sign_in, user, secret, "203.0.113.5")
    alert = alerts("new_network_signin").get()
    assert alert.details["network"] == "203.0.113.0/24"
    assert alert.details["known_networks"] == ["198.51.100.0/24"]
    assert str(alert.source_ip) == "203.0.113.5"
    assert AuditEvent.objects.get(pk=alert.evidence[0]).action == "auth.login"


def test_dormant_account_signing_in_alerts(committed, set_rule):
    set_rule("dormant_account", params={"dormant_days": 60})
    now = datetime.now(UTC)
    sleeper = make_staff("sleeper", password_changed_at=now)
    User.objects.filter(pk=sleeper.pk).update(date_joined=now - timedelta(days=100))
    recent = make_staff("recent", password_changed_at=now)
    User.objects.filter(pk=recent.pk).update(date_joined=now - timedelta(days=10))
    committed(sign_in, recent, enable_totp(recent), "198.51.100.10")
    assert not alerts("dormant_account").exists()
    committed(sign_in, sleeper, enable_totp(sleeper), "198.51.100.11")
    alert = alerts("dormant_account").get()
    assert alert.subject_id == str(sleeper.pk) and alert.details["idle_days"] == 100


def test_a_sign_in_after_a_long_gap_alerts(committed):
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=True):
        user = make_staff("gap", password_changed_at=start)
        secret = enable_totp(user)
        committed(sign_in, user, secret, "198.51.100.10")
    with time_machine.travel(start + timedelta(days=30), tick=True):
        committed(sign_in, user, secret, "198.51.100.10")
    assert not alerts("dormant_account").exists()
    with time_machine.travel(start + timedelta(days=95), tick=True):
        committed(sign_in, user, secret, "198.51.100.10")
    # 65 days less the seconds the clock ticked between the two sign-ins.
    assert alerts("dormant_account").get().details["idle_days"] in (64, 65)


def test_require_reauthentication_ends_the_sessions_but_keeps_the_account(committed, set_rule):
    set_rule("reveal_burst", threshold=2, window_minutes=10, response=ResponseKind.REQUIRE_REAUTH)
    with time_machine.travel(WORKDAY_10, tick=True):
        handler = staff_in("投诉处理员")
        client = sign_in_staff(Client(), handler)
        other_session = sign_in_staff(Client(), handler)
        for _ in range(2):
            committed(reveal, client, ConsumerFactory())
        response = AutomaticResponse.objects.get(alert=alerts("reveal_burst").get())
        assert response.kind == ResponseKind.REQUIRE_REAUTH
        assert response.status == ResponseStatus.COMPLETED
        assert response.detail["sessions_revoked"] == 2
        assert User.objects.get(pk=handler.pk).is_active
        for session in (client, other_session):
            assert session.get(ADMIN_INDEX).status_code == 302
        assert sign_in_staff(Client(), handler).get(ADMIN_INDEX).status_code == 200
