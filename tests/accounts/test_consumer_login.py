"""Consumers sign in to the app API with their phone and an SMS code (allauth headless, app
client), through the real endpoints, with codes delivered by the SMS gateway sandbox.

Covers: sign-up by the first confirmed code (encrypted phone, no password), the same consumer
for every spelling of a phone, attempts and rate limits, the session token (header only, idle
and absolute limits, signed out, forged), staff kept out of the app door (axes still counting),
no personal data or code in the logs, and the city app's claim mapping.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from apps.accounts.adapters import (
    SocialAccountAdapter,
    city_identity_from_claims,
)
from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.accounts.models import Consumer, User, UserSession
from apps.accounts.phone import normalize_phone, validate_mainland_mobile
from apps.audit.models import AuditEvent
from tests.accounts.helpers import (
    STRONG_PASSWORD,
    enable_totp,
    make_staff,
    post_login,
)
from tests.factories.core import ConsumerFactory, make_resident_id
from tools.sandbox import SMSSandbox

pytestmark = pytest.mark.django_db

APP = "/_allauth/app/v1"
CODE_REQUEST = f"{APP}/auth/code/request"
CODE_CONFIRM = f"{APP}/auth/code/confirm"
SESSION = f"{APP}/auth/session"
PASSWORD_LOGIN = f"{APP}/auth/login"
ME = "/api/v1/me/"
PHONE = "13912345678"
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


# --- Helpers (also used by test_consumer_permissions) -------------------------------------------


@pytest.fixture
def sms(settings):
    """The SMS gateway sandbox on 127.0.0.1, wired in through the real HTTP backend."""
    with SMSSandbox() as sandbox:
        settings.SMS_BACKEND = "apps.accounts.sms.HttpSMSBackend"
        settings.SMS_GATEWAY_URL = sandbox.base_url
        settings.SMS_GATEWAY_CLIENT_ID = sandbox.client_id
        settings.SMS_GATEWAY_SECRET = sandbox.secret
        settings.SMS_GATEWAY_TIMEOUT = 2.0
        yield sandbox


def post_json(client: Client, url: str, data: dict, token: str | None = None, **extra):
    if token:
        extra["HTTP_X_SESSION_TOKEN"] = token
    return client.post(url, data, content_type="application/json", **extra)


def request_code(client: Client, phone: str, **extra):
    return post_json(client, CODE_REQUEST, {"phone": phone}, **extra)


def pending_token(response) -> str:
    body = response.json()
    assert response.status_code == 401, body
    assert {"id": "login_by_code", "is_pending": True} in body["data"]["flows"], body
    return body["meta"]["session_token"]


def sign_in(client: Client, sms: SMSSandbox, phone: str = PHONE, *, sent_to: str | None = None):
    """The whole app sign-in; returns the session token of the signed-in consumer."""
    token = pending_token(request_code(client, phone))
    code = sms.last_code(sent_to or phone)
    assert code and re.fullmatch(r"\d{6}", code)
    confirmed = post_json(client, CODE_CONFIRM, {"code": code}, token)
    assert confirmed.status_code == 200, confirmed.content
    body = confirmed.json()
    assert body["meta"]["is_authenticated"] is True
    return body["meta"]["session_token"]


def me(client: Client, token: str | None, **extra):
    if token:
        extra["HTTP_X_SESSION_TOKEN"] = token
    return client.get(ME, **extra)


def session_user(client: Client, token: str):
    response = client.get(SESSION, HTTP_X_SESSION_TOKEN=token)
    return response


# --- Sign-up and sign-in by code ---------------------------------------------------------------


def test_first_confirmed_code_creates_the_consumer(client, sms):
    token = pending_token(request_code(client, PHONE))
    (message,) = sms.messages_to(PHONE)
    assert message.template == "login_code" and re.fullmatch(r"\d{6}", message.params["code"])
    assert not Consumer.objects.exists() and not User.objects.exists()  # nothing before proof

    confirmed = post_json(client, CODE_CONFIRM, {"code": message.params["code"]}, token)
    assert confirmed.status_code == 200, confirmed.content
    new_token = confirmed.json()["meta"]["session_token"]
    assert new_token != token  # the pre-sign-in session's key was cycled

    session = session_user(client, new_token)
    assert session.status_code == 200
    assert session.json()["meta"]["is_authenticated"] is True

    consumer = Consumer.objects.select_related("user").get()
    user = consumer.user
    assert re.fullmatch(r"c_[0-9a-f]{12}", user.username)
    assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert consumer.verification_status == VerificationStatus.UNVERIFIED
    assert consumer.status == ConsumerStatus.ACTIVE
    assert consumer.phone == PHONE
    assert AuditEvent.objects.filter(action="consumer.registered").count() == 1
    assert session.json()["data"]["user"]["id"] == user.pk


def test_phone_is_stored_encrypted_and_nowhere_else(client, sms):
    sign_in(client, sms)
    with connection.cursor() as cursor:
        cursor.execute("SELECT phone, phone_index FROM accounts_consumer")
        ((phone_column, index_column),) = cursor.fetchall()
        cursor.execute("SELECT username, email, first_name, last_name FROM accounts_user")
        user_row = cursor.fetchone()
    assert PHONE not in phone_column and PHONE[-8:] not in phone_column
    assert index_column and PHONE not in index_column
    assert not any(PHONE[-8:] in (value or "") for value in user_row)
    assert Consumer.objects.get().phone == PHONE


def test_every_spelling_of_a_phone_is_one_consumer(client, sms):
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in PHONE)
    spellings = [f"+86 {fullwidth[:3]} {fullwidth[3:7]}-{fullwidth[7:]}", f"0086{PHONE}", PHONE]
    tokens = []
    with time_machine.travel(T0, tick=False) as traveller:
        for spelling in spellings:
            tokens.append(sign_in(Client(), sms, spelling, sent_to=PHONE))
            # One code a minute per phone, whatever its spelling.
            assert request_code(Client(), spelling).status_code == 429
            traveller.shift(timedelta(seconds=61))
        first, second, third = tokens
        assert Consumer.objects.count() == 1
        ids = {session_user(client, t).json()["data"]["user"]["id"] for t in (first, second, third)}
    assert ids == {Consumer.objects.get().user_id}


def test_an_existing_phone_signs_in_to_its_consumer(client, sms):
    consumer = ConsumerFactory(phone=PHONE)
    token = sign_in(client, sms)
    assert Consumer.objects.count() == 1 and User.objects.count() == 1
    body = me(client, token).json()
    assert body["public_id"] == str(consumer.public_id)
    assert body["verification_status"] == "verified"


def test_known_and_unknown_phones_get_the_same_answer(client, sms):
    ConsumerFactory(phone=PHONE)
    known = request_code(Client(), PHONE)
    unknown = request_code(Client(), "13700000001")
    for response in (known, unknown):
        response.json()["meta"].pop("session_token")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert sms.last_code(PHONE) and sms.last_code("13700000001")  # both really got a code


@pytest.mark.parametrize(
    "phone", ["12345678901", "1381234567", "138123456789", "+1 2025550123", "abc"]
)
def test_not_a_mainland_mobile_is_refused_with_a_clear_code(client, sms, phone):
    response = request_code(client, phone)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["code"] == "phone.invalid" and error["param"] == "phone"
    assert sms.messages == []


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("13812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("0086-138-1234-5678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("（138）12345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("\u3000138 1234 5678\u3000", "13812345678"),
    ],
)
def test_phone_normalisation(typed, normalised):
    assert validate_mainland_mobile(typed) == normalised
    assert normalize_phone(typed) == normalised


def test_a_wrong_code_five_times_ends_the_attempt(client, sms):
    token = pending_token(request_code(client, PHONE))
    code = sms.last_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = post_json(client, CODE_CONFIRM, {"code": wrong}, token)
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "incorrect_code"
    # The pending sign-in is gone: even the right code no longer works; a new code is needed.
    assert post_json(client, CODE_CONFIRM, {"code": code}, token).status_code == 409
    assert not Consumer.objects.exists()


def test_a_code_expires_after_five_minutes(client, sms):
    with time_machine.travel(T0, tick=False) as traveller:
        token = pending_token(request_code(client, PHONE))
        traveller.shift(timedelta(minutes=5, seconds=1))
        expired = post_json(client, CODE_CONFIRM, {"code": sms.last_code(PHONE)}, token)
    assert expired.status_code == 410  # the pending sign-in's token is gone with its code
    assert not Consumer.objects.exists()


def test_code_requests_per_phone_are_rate_limited(client, sms):
    with time_machine.travel(T0, tick=False) as traveller:
        pending_token(request_code(client, PHONE))
        again = request_code(client, PHONE)  # within the same minute
        assert again.status_code == 429
        for _ in range(4):
            traveller.shift(timedelta(seconds=61))
            pending_token(request_code(client, PHONE))
        traveller.shift(timedelta(seconds=61))
        sixth = request_code(client, PHONE)  # the 6th within the hour
        assert sixth.status_code == 429
        assert len(sms.messages_to(PHONE)) == 5
        traveller.shift(timedelta(hours=1))
        pending_token(request_code(client, PHONE))  # the hour is over
    assert len(sms.messages_to(PHONE)) == 6


def test_code_requests_per_client_address_are_rate_limited(sms):
    for n in range(30):
        pending_token(request_code(Client(), f"1370000{n:04d}", REMOTE_ADDR="198.51.100.7"))
    refused = request_code(Client(), "13799999999", REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 429
    assert sms.last_code("13799999999") is None
    pending_token(request_code(Client(), "13799999999", REMOTE_ADDR="198.51.100.8"))


def test_gateway_failure_is_a_clear_503(client, sms, settings):
    settings.SMS_GATEWAY_SECRET = "not-the-gateway-secret-at-all"
    response = request_code(client, PHONE)
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "sms.unavailable"


def test_browser_code_form_texts_nobody(client, sms):
    ConsumerFactory(phone=PHONE)
    client.post("/accounts/login/code/", {"phone": PHONE})
    assert sms.messages == []


# --- The session token -----------------------------------------------------------------------


def test_me_shows_the_consumer_masked_and_is_never_cached(client, sms):
    token = sign_in(client, sms)
    response = me(client, token)
    assert response.status_code == 200
    consumer = Consumer.objects.get()
    assert response.json() == {
        "public_id": str(consumer.public_id),
        "masked_name": "",
        "masked_phone": "139****5678",
        "verification_status": "unverified",
        "status": "active",
    }
    assert "no-store" in response["Cache-Control"]
    assert PHONE.encode() not in response.content


def test_no_token_forged_token_and_token_in_the_url_are_401(client, sms):
    token = sign_in(client, sms)
    missing = me(client, None)
    assert missing.status_code == 401 and missing.json()["code"] == "auth.not_authenticated"
    assert missing["WWW-Authenticate"].startswith("X-Session-Token")
    forged = me(client, uuid.uuid4().hex)
    assert forged.status_code == 401 and forged.json()["code"] == "auth.token_invalid"
    # Never from the query string (it would end up in logs and browser history).
    for name in ("X-Session-Token", "session_token", "token"):
        in_url = client.get(ME, {name: token})
        assert in_url.status_code == 401
        assert client.get(SESSION, {name: token}).status_code == 401
    assert me(client, token).status_code == 200


def test_signed_out_token_is_dead(client, sms):
    token = sign_in(client, sms)
    signed_out = client.delete(SESSION, HTTP_X_SESSION_TOKEN=token)
    assert signed_out.status_code == 401
    assert me(client, token).status_code == 401


def test_deactivated_consumers_token_is_dead(client, sms):
    token = sign_in(client, sms)
    User.objects.update(is_active=False)
    assert me(client, token).status_code == 401


def test_another_users_token_shows_only_that_user(client, sms):
    mine = sign_in(client, sms, PHONE)
    theirs = sign_in(Client(), sms, "13700000002")
    assert me(client, mine).json()["masked_phone"] == "139****5678"
    assert me(client, theirs).json()["masked_phone"] == "137****0002"


def test_app_session_ends_after_seven_idle_days(client, sms):
    with time_machine.travel(T0, tick=False) as traveller:
        token = sign_in(client, sms)
        traveller.shift(timedelta(days=6, hours=23))
        assert me(client, token).status_code == 200  # activity moves the idle limit on
        traveller.shift(timedelta(days=6, hours=23))
        assert me(client, token).status_code == 200
        traveller.shift(timedelta(days=7, seconds=1))
        expired = me(client, token)
        assert expired.status_code == 401 and expired.json()["code"] == "auth.token_invalid"
        assert client.get(SESSION, HTTP_X_SESSION_TOKEN=token).status_code == 410  # allauth: gone


def test_app_session_ends_thirty_days_after_sign_in_however_busy(client, sms):
    with time_machine.travel(T0, tick=False) as traveller:
        token = sign_in(client, sms)
        for _ in range(4):
            traveller.shift(timedelta(days=6))
            assert me(client, token).status_code == 200
        traveller.shift(timedelta(days=6, seconds=1))  # 30 days and a second
        assert me(client, token).status_code == 401
        assert client.get(SESSION, HTTP_X_SESSION_TOKEN=token).status_code == 410
    assert not Session.objects.filter(session_key=token).exists()
    event = AuditEvent.objects.get(action="auth.session_expired")
    assert event.after == {"reason": "absolute", "channel": "app"}


def test_token_requests_leave_no_cookie_session_behind(client, sms):
    token = sign_in(client, sms)
    sessions, tracked = Session.objects.count(), UserSession.objects.count()
    response = me(Client(), token)
    assert response.status_code == 200
    assert "sessionid" not in response.cookies
    assert Session.objects.count() == sessions and UserSession.objects.count() == tracked
    (tracked_row,) = UserSession.objects.all()
    assert tracked_row.session_key == token  # deactivation finds the app session too


def test_no_code_and_no_full_phone_in_the_logs(client, sms, caplog):
    caplog.set_level(logging.DEBUG)
    token = sign_in(client, sms)
    me(client, token)
    code = sms.last_code(PHONE)
    logged = "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith("tools.")
    )
    assert PHONE not in logged and code not in logged
    assert "139****5678" in logged  # the masked phone is what identifies the message


# --- Staff stay out of the app door ----------------------------------------------------------


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def password_login(client: Client, username: str, password: str, **extra):
    return post_json(client, PASSWORD_LOGIN, {"username": username, "password": password}, **extra)


@pytest.mark.parametrize("with_totp", [False, True])
def test_staff_cannot_sign_in_through_the_app(client, fast_hashing, with_totp):
    staff = make_staff("officer")
    if with_totp:
        enable_totp(staff)
    right = password_login(client, "officer", STRONG_PASSWORD)
    wrong = password_login(Client(), "officer", "Wrong-Password-123")
    assert right.status_code == wrong.status_code == 400
    assert right.json()["errors"] == wrong.json()["errors"]  # reads like a wrong password
    assert "session_token" not in right.json().get("meta", {})
    # Both count as failed attempts for axes, against the login name.
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == 2
    assert AuditEvent.objects.filter(action="auth.app_sign_in_refused").count() == 1


def test_failures_at_the_app_door_lock_the_staff_browser_login(client, fast_hashing):
    make_staff("officer")
    for i in range(5):
        password_login(Client(), "officer", "Wrong-Password-123", REMOTE_ADDR=f"203.0.113.{i}")
    locked = post_login(client, "officer", STRONG_PASSWORD, ip="203.0.113.99")
    assert locked.status_code == 200  # the form again, not on to the second factor
    assert SESSION_KEY not in client.session


def test_staff_with_a_consumer_profile_cannot_use_a_code(client, sms):
    staff = make_staff("officer")
    ConsumerFactory(user=staff, phone=PHONE)
    token = pending_token(request_code(client, PHONE))
    refused = post_json(client, CODE_CONFIRM, {"code": sms.last_code(PHONE)}, token)
    assert refused.status_code == 401
    assert refused.json()["meta"]["is_authenticated"] is False
    assert Consumer.objects.count() == 1  # no second consumer for the phone either


def test_a_staff_session_is_no_app_token(client, fast_hashing):
    staff = make_staff("officer")
    client.force_login(staff)
    staff_session_key = client.session.session_key
    response = me(Client(), staff_session_key)
    assert response.status_code == 401 and response.json()["code"] == "auth.token_invalid"


# --- The city app (OpenID Connect): claim mapping ---------------------------------------------

ID_NUMBER = make_resident_id(7)


def test_verified_city_claims_map_onto_the_identity():
    identity = city_identity_from_claims(
        {
            "sub": "city-1",
            "name": " 张 三 ",
            "id_number": ID_NUMBER.lower(),
            "identity_verified": True,
            "phone_number": "+86 139 1234 5678",
            "phone_number_verified": True,
        }
    )
    assert identity.real_name == "张三"
    assert identity.id_number == ID_NUMBER.upper()
    assert identity.phone == PHONE


@pytest.mark.parametrize(
    "claims",
    [
        {"name": "张三", "id_number": ID_NUMBER, "phone_number": PHONE},  # nothing verified
        {"name": "张三", "id_number": ID_NUMBER, "identity_verified": "true"},  # not a boolean
        {"name": "张三", "id_number": "410102199001011235", "identity_verified": True},  # bad check
        {"name": "", "id_number": ID_NUMBER, "identity_verified": True},  # no name, no pair
        {"name": "张3", "id_number": ID_NUMBER, "identity_verified": True},
        {"phone_number": "12345", "phone_number_verified": True},
        {"phone_number": None, "phone_number_verified": True},
        {},
    ],
)
def test_unverified_or_malformed_city_claims_are_dropped(claims):
    identity = city_identity_from_claims(claims)
    assert identity.real_name == identity.id_number == identity.phone == ""


def test_city_claims_are_not_kept_in_clear(rf):
    from allauth.socialaccount.models import SocialAccount, SocialLogin

    claims = {
        "sub": "city-1",
        "iss": "https://id.city.example",
        "name": "张三",
        "id_number": ID_NUMBER,
        "identity_verified": True,
        "email": "zhang@example.com",
    }
    account = SocialAccount(provider="city", uid="city-1", extra_data={"id_token": dict(claims)})
    sociallogin = SocialLogin(user=User(), account=account)
    user = SocialAccountAdapter(rf.get("/")).populate_user(rf.get("/"), sociallogin, claims)
    assert account.extra_data == {"id_token": {"sub": "city-1", "iss": "https://id.city.example"}}
    assert sociallogin.email_addresses == [] and user.first_name == user.email == ""
    assert sociallogin._city_identity.id_number == ID_NUMBER


def test_the_session_store_keeps_no_phone_and_no_code(client, sms):
    with time_machine.travel(T0, tick=False) as traveller:
        pending = pending_token(request_code(Client(), "13700000003"))  # abandoned
        token = sign_in(client, sms)
        row = Session.objects.get(session_key=token)
        assert PHONE not in str(row.get_decoded())
        session = session_user(client, token).json()
        assert PHONE not in str(session) and "139****5678" in str(session["data"]["methods"])
        # An abandoned sign-in (phone and code) is kept no longer than its code.
        assert Session.objects.get(session_key=pending).expire_date <= T0 + timedelta(minutes=5)
        traveller.shift(timedelta(minutes=5, seconds=1))
        assert client.get(SESSION, HTTP_X_SESSION_TOKEN=pending).status_code == 410


def test_the_token_opens_the_consumer_api(client, sms):
    token = sign_in(client, sms)
    response = client.get("/api/v1/invoices/", HTTP_X_SESSION_TOKEN=token)
    assert response.status_code == 200, response.content
    # No CSRF token needed: the token is not an ambient credential like a cookie.
    api = Client(enforce_csrf_checks=True)
    assert api.get(ME, HTTP_X_SESSION_TOKEN=token).status_code == 200


@pytest.fixture
def city_app(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "city",
                    "name": "City app",
                    "client_id": "lotteryinvoice",
                    "secret": "not-used-here",
                    "settings": {"server_url": "https://id.city.example"},
                }
            ]
        }
    }


def _city_login(rf, claims):
    """A city-app sign-in as the token flow builds it, on an app-door request."""
    from types import SimpleNamespace

    from allauth.headless.constants import Client as HeadlessClient
    from allauth.headless.internal.decorators import mark_request_as_headless
    from allauth.socialaccount.models import SocialAccount, SocialLogin

    request = rf.post("/_allauth/app/v1/auth/provider/token")
    request.allauth = SimpleNamespace()
    mark_request_as_headless(request, HeadlessClient.APP)
    request.session = {}
    account = SocialAccount(provider="city", uid=claims["sub"], extra_data={"id_token": claims})
    sociallogin = SocialLogin(user=User(), account=account)
    adapter = SocialAccountAdapter(request)
    adapter.populate_user(request, sociallogin, claims)
    return request, sociallogin, adapter


CITY_CLAIMS = {
    "sub": "city-7",
    "name": "李四",
    "id_number": ID_NUMBER,
    "identity_verified": True,
    "phone_number": PHONE,
    "phone_number_verified": True,
}


def test_first_city_sign_in_creates_a_verified_consumer(rf, city_app):
    request, sociallogin, adapter = _city_login(rf, dict(CITY_CLAIMS))
    assert adapter.is_open_for_signup(request, sociallogin)
    adapter.pre_social_login(request, sociallogin)
    user = adapter.save_user(request, sociallogin)
    consumer = Consumer.objects.get(user=user)
    assert re.fullmatch(r"c_[0-9a-f]{12}", user.username) and not user.has_usable_password()
    assert (consumer.real_name, consumer.id_number, consumer.phone) == ("李四", ID_NUMBER, PHONE)
    assert consumer.verification_status == VerificationStatus.VERIFIED
    assert sociallogin.account.extra_data == {"id_token": {"sub": "city-7"}}


def test_city_sign_in_joins_the_consumer_holding_the_identity(rf, city_app):
    existing = ConsumerFactory(
        phone=PHONE, verification_status="unverified", verified_at=None, id_number=""
    )
    request, sociallogin, adapter = _city_login(rf, dict(CITY_CLAIMS))
    adapter.pre_social_login(request, sociallogin)
    assert sociallogin.user.pk == existing.user_id  # joined by the verified phone
    existing.refresh_from_db()
    assert existing.is_verified and existing.id_number == ID_NUMBER
    assert Consumer.objects.count() == 1


def test_city_sign_in_is_not_for_the_staff_pages(rf, city_app):
    from allauth.core.exceptions import ImmediateHttpResponse

    request, sociallogin, adapter = _city_login(rf, dict(CITY_CLAIMS))
    del request.allauth.headless  # a browser page, not the app
    assert not adapter.is_open_for_signup(request, sociallogin)
    with pytest.raises(ImmediateHttpResponse):
        adapter.pre_social_login(request, sociallogin)
