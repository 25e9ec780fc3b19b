"""Session limits and revocation.

Checklist 4: idle 15 min, absolute expiry, logout → session dead server-side; cookies HttpOnly,
SameSite (Secure in production: tests/project/test_settings.py runs `check --deploy`).
Checklist 13: deactivated staff account → all its sessions revoked at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import User, UserSession
from apps.accounts.services import AccountError, user_deactivate
from apps.audit.models import AuditEvent
from tests.accounts.helpers import (
    ADMIN_INDEX,
    LOGIN_URL,
    STRONG_PASSWORD,
    clear_cache,
    enable_totp,
    login_with_totp,
    make_staff,
    sign_in_staff,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
MINUTE = 60
API_ROOT = reverse("api:root")


@pytest.fixture(autouse=True)
def _fast_and_clean(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def frozen():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def officer():
    return make_staff("officer", is_superuser=True)


def session_key(client: Client) -> str:
    return client.cookies[django_session_cookie()].value


def django_session_cookie() -> str:
    from django.conf import settings

    return settings.SESSION_COOKIE_NAME


def alive(key: str) -> bool:
    return Session.objects.filter(session_key=key).exists()


def sent_to_login(response) -> bool:
    """Redirected to sign in: allauth's login, or the admin's (which forwards to it)."""
    return response.status_code == 302 and response["Location"].startswith(
        (LOGIN_URL, reverse("admin:login"))
    )


def test_real_sign_in_sets_safe_cookie_and_tracks_the_session(client, officer, frozen):
    secret = enable_totp(officer)
    response = login_with_totp(client, officer, STRONG_PASSWORD, secret)
    cookie = response.cookies[django_session_cookie()]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["max-age"] and not cookie["expires"]  # a browser-session cookie
    key = session_key(client)
    assert alive(key)
    assert UserSession.objects.filter(user=officer, session_key=key).exists()


def test_idle_for_15_minutes_ends_the_session(client, officer, frozen):
    sign_in_staff(client, officer)
    key = session_key(client)
    for _ in range(3):  # activity keeps it alive well past 15 minutes in total
        frozen.shift(14 * MINUTE)
        assert client.get(ADMIN_INDEX).status_code == 200
    frozen.shift(15 * MINUTE + 1)
    assert sent_to_login(client.get(ADMIN_INDEX))
    assert not alive(key)  # dead server-side, not only forgotten by the browser

    # Replaying the old cookie does not bring it back.
    replay = Client()
    replay.cookies[django_session_cookie()] = key
    assert sent_to_login(replay.get(ADMIN_INDEX))
    assert AuditEvent.objects.filter(action="auth.session_expired").exists()


def test_idle_api_session_answers_401(client, officer, frozen):
    sign_in_staff(client, officer)
    assert client.get(API_ROOT).status_code == 200
    frozen.shift(16 * MINUTE)
    response = client.get(API_ROOT)
    assert response.status_code == 401
    body = json.loads(response.content)
    assert body["code"] == "auth.session_expired" and body["detail"] == {"reason": "idle"}


def test_absolute_limit_ends_even_a_busy_session(client, officer, frozen, settings):
    assert settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS == 8 * 3600 == settings.SESSION_COOKIE_AGE
    sign_in_staff(client, officer)
    key = session_key(client)
    elapsed = 0
    while elapsed + 10 * MINUTE < 8 * 3600:
        frozen.shift(10 * MINUTE)
        elapsed += 10 * MINUTE
        assert client.get(API_ROOT).status_code == 200, elapsed
    frozen.shift(8 * 3600 - elapsed + 1)
    response = client.get(API_ROOT)
    assert response.status_code == 401
    assert json.loads(response.content)["detail"] == {"reason": "absolute"}
    assert not alive(key)


def test_logout_kills_the_session_server_side(client, officer, frozen):
    sign_in_staff(client, officer)
    key = session_key(client)
    assert client.post(reverse("account_logout")).status_code == 302
    assert not alive(key)
    replay = Client()
    replay.cookies[django_session_cookie()] = key
    assert sent_to_login(replay.get(ADMIN_INDEX))


def test_deactivation_revokes_every_session_of_the_user_at_once(officer, frozen):
    secret = enable_totp(officer)
    browsers = [Client(), Client()]
    login_with_totp(browsers[0], officer, STRONG_PASSWORD, secret)
    frozen.shift(30)  # a fresh TOTP step for the second sign-in
    login_with_totp(browsers[1], officer, STRONG_PASSWORD, secret)
    keys = [session_key(b) for b in browsers]
    assert all(alive(k) for k in keys) and keys[0] != keys[1]

    colleague = make_staff("colleague", is_superuser=True)
    other = sign_in_staff(Client(), colleague)
    other_key = session_key(other)

    admin_user = make_staff("secadmin", is_superuser=True)
    with CaptureQueriesContext(connection) as queries:
        user_deactivate(user=officer, actor=admin_user, reason="left the task force")
    # Found through the user's own session list: no scan of everybody's sessions.
    session_sql = [q["sql"] for q in queries if "django_session" in q["sql"]]
    assert session_sql and all("session_key" in sql.split("WHERE", 1)[-1] for sql in session_sql)
    assert all("WHERE" in sql for sql in session_sql)

    assert not any(alive(k) for k in keys)
    assert not UserSession.objects.filter(user=officer).exists()
    for browser in browsers:
        assert sent_to_login(browser.get(ADMIN_INDEX))
    assert alive(other_key)
    assert other.get(ADMIN_INDEX).status_code == 200

    officer.refresh_from_db()
    assert officer.is_active is False
    event = AuditEvent.objects.get(action="user.deactivated")
    assert event.category == "security"
    assert event.target_id == str(officer.pk)
    assert event.actor_id == admin_user.pk
    assert event.reason == "left the task force"
    assert event.after == {"is_active": False, "sessions_revoked": 2}

    # And the account cannot sign in again.
    post = Client().post(LOGIN_URL, {"login": "officer", "password": STRONG_PASSWORD})
    assert post.status_code == 200
    assert SESSION_KEY not in post.client.session


def test_deactivation_needs_a_reason(officer):
    with pytest.raises(AccountError) as exc:
        user_deactivate(user=officer, actor=None, reason="  ")
    assert exc.value.code == "account.reason_required"
    officer.refresh_from_db()
    assert officer.is_active


def test_deactivation_by_any_other_means_still_ends_the_session(client, officer, frozen):
    """No service call (e.g. a bulk update): the backend refuses the user, the guard flushes."""
    sign_in_staff(client, officer)
    key = session_key(client)
    User.objects.filter(pk=officer.pk).update(is_active=False)
    assert sent_to_login(client.get(ADMIN_INDEX))
    leftover = Session.objects.filter(session_key=key).first()
    assert leftover is None or SESSION_KEY not in leftover.get_decoded()
    # Reactivated later, the old session does not come back to life.
    User.objects.filter(pk=officer.pk).update(is_active=True)
    assert sent_to_login(client.get(ADMIN_INDEX))


def test_session_key_change_on_password_change_stays_tracked(client, officer, frozen):
    sign_in_staff(client, officer)
    old_key = session_key(client)
    new_password = "Harbour-9-Lantern!"
    response = client.post(
        reverse("account_change_password"),
        {"oldpassword": STRONG_PASSWORD, "password1": new_password, "password2": new_password},
    )
    assert response.status_code == 302
    new_key = session_key(client)
    assert new_key != old_key
    assert list(UserSession.objects.filter(user=officer).values_list("session_key", flat=True)) == [
        new_key
    ]
    user_deactivate(user=officer, actor=None, reason="test")
    assert not alive(new_key)
