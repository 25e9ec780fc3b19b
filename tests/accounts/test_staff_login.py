"""Staff sign-in: password and then TOTP, for every staff page, the admin included.

Checklist 1: password only, or a reused TOTP code → denied.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.contrib.auth import SESSION_KEY
from django.db import connection
from django.test import Client
from django.urls import NoReverseMatch, reverse

from apps.accounts.adapters import MFA_SECRET_AAD, MFAAdapter
from apps.accounts.models import User
from apps.common import crypto
from tests.accounts.helpers import (
    ADMIN_INDEX,
    LOGIN_URL,
    MFA_URL,
    STRONG_PASSWORD,
    clear_cache,
    enable_totp,
    login_with_totp,
    make_staff,
    post_login,
    totp_code,
)

pytestmark = pytest.mark.django_db

# Start of a 30-second TOTP step, so every code of a test stays valid while it runs.
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
API_ROOT = reverse("api:root")


@pytest.fixture(autouse=True)
def _fast_and_clean(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clear_cache()  # allauth's rate limits and used-code memory live in the cache
    yield
    clear_cache()


@pytest.fixture
def frozen():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def admin_pages() -> list[str]:
    """The admin index and every registered model's changelist and add page."""
    urls = [ADMIN_INDEX]
    for model in admin.site._registry:
        opts = model._meta
        for view in ("changelist", "add"):
            with contextlib.suppress(NoReverseMatch):
                urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}"))
    return urls


def is_signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def test_password_then_totp_signs_staff_in(client, frozen):
    user = make_staff(is_superuser=True)
    secret = enable_totp(user)
    assert client.get(LOGIN_URL).status_code == 200

    first = post_login(client, user.username, STRONG_PASSWORD)
    assert client.get(MFA_URL).status_code == 200
    assert first.status_code == 302 and first["Location"].startswith(MFA_URL)
    # Between the two steps nobody is signed in: the admin sends back to the login.
    assert not is_signed_in(client)
    for url in admin_pages():
        assert client.get(url).status_code == 302, url

    wrong = client.post(MFA_URL, {"code": "000000" if totp_code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200 and not is_signed_in(client)

    done = client.post(MFA_URL, {"code": totp_code(secret)})
    assert done.status_code == 302 and done["Location"] == ADMIN_INDEX
    assert client.get(ADMIN_INDEX).status_code == 200
    # The admin's login URL, once signed in, leads back into the admin (never off-site).
    admin_login = reverse("admin:login")
    assert client.get(admin_login, {"next": ADMIN_INDEX})["Location"] == ADMIN_INDEX
    assert client.get(admin_login, {"next": "https://evil.example/"})["Location"] == ADMIN_INDEX
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 200


def test_reused_totp_code_is_refused(client, frozen):
    user = make_staff(is_superuser=True)
    secret = enable_totp(user)
    code = totp_code(secret)

    post_login(client, user.username, STRONG_PASSWORD)
    assert client.post(MFA_URL, {"code": code}).status_code == 302
    client.post(reverse("account_logout"))
    assert not is_signed_in(client)

    # Same code, same 30-second step, from another browser: refused.
    other = Client()
    post_login(other, user.username, STRONG_PASSWORD)
    replay = other.post(MFA_URL, {"code": code})
    assert replay.status_code == 200
    assert not is_signed_in(other)
    assert other.get(ADMIN_INDEX).status_code == 302

    # The next step's code works.
    frozen.shift(30)
    assert other.post(MFA_URL, {"code": totp_code(secret)}).status_code == 302
    assert other.get(ADMIN_INDEX).status_code == 200


def test_password_only_staff_session_reaches_no_admin_page_and_no_api(client, frozen):
    """A staff member without TOTP who signed in with the password: only TOTP set-up."""
    user = make_staff(is_superuser=True)
    response = post_login(client, user.username, STRONG_PASSWORD)
    assert response.status_code == 302
    assert is_signed_in(client)  # signed in, but only with the password

    setup = reverse("mfa_activate_totp")
    pages = admin_pages()
    assert len(pages) > 5
    for url in pages:
        page = client.get(url)
        assert page.status_code == 302, url
        assert page["Location"] == setup, url
    post = client.post(reverse("admin:accounts_user_add"), {"username": "x"})
    assert post.status_code == 302 and post["Location"] == setup
    assert not User.objects.filter(username="x").exists()

    api = client.get(API_ROOT)
    assert api.status_code == 403
    assert json.loads(api.content)["code"] == "auth.mfa_setup_required"

    # Setting TOTP up asks for the password once more (allauth's reauthentication).
    assert client.get(setup)["Location"].startswith(reverse("account_reauthenticate"))
    reauth = client.post(reverse("account_reauthenticate"), {"password": STRONG_PASSWORD})
    assert reauth.status_code == 302
    assert client.get(setup).status_code == 200


def test_staff_session_that_skipped_its_totp_is_signed_out(client, frozen):
    """A password-only session of an account that has TOTP (however it was obtained)."""
    user = make_staff(is_superuser=True)
    enable_totp(user)
    client.force_login(user)  # a session without the second factor
    for url in admin_pages():
        client.force_login(user)
        page = client.get(url)
        assert page.status_code == 302, url
        assert page["Location"].startswith(LOGIN_URL), url
        assert not is_signed_in(client)
    client.force_login(user)
    api = client.get(API_ROOT)
    assert api.status_code == 401
    assert json.loads(api.content)["code"] == "auth.mfa_required"
    assert not is_signed_in(client)


def test_admin_login_form_is_not_a_way_round_the_second_factor(client, frozen):
    user = make_staff(is_superuser=True)
    enable_totp(user)
    admin_login = reverse("admin:login")

    page = client.get(admin_login, {"next": ADMIN_INDEX})
    assert page.status_code == 302
    assert page["Location"].startswith(LOGIN_URL) and "next=" in page["Location"]

    posted = client.post(
        admin_login, {"username": user.username, "password": STRONG_PASSWORD, "next": ADMIN_INDEX}
    )
    assert posted.status_code == 302 and posted["Location"].startswith(LOGIN_URL)
    assert not is_signed_in(client)
    assert client.get(ADMIN_INDEX).status_code == 302


def test_first_sign_in_sets_up_totp_then_shows_recovery_codes(client, frozen):
    user = make_staff(is_superuser=True)
    post_login(client, user.username, STRONG_PASSWORD)
    assert client.get(ADMIN_INDEX)["Location"] == reverse("mfa_activate_totp")
    client.post(reverse("account_reauthenticate"), {"password": STRONG_PASSWORD})

    form = client.get(reverse("mfa_activate_totp"))
    assert form.status_code == 200
    secret = form.context["form"].secret
    bad = client.post(reverse("mfa_activate_totp"), {"code": "12345"})
    assert bad.status_code == 200
    assert not Authenticator.objects.filter(user=user).exists()

    code = totp_code(secret)
    done = client.post(reverse("mfa_activate_totp"), {"code": code})
    assert done.status_code == 302 and done["Location"] == reverse("mfa_view_recovery_codes")
    assert client.get(done["Location"]).status_code == 200
    assert client.get(ADMIN_INDEX).status_code == 200
    assert set(Authenticator.objects.filter(user=user).values_list("type", flat=True)) == {
        "totp",
        "recovery_codes",
    }

    # The set-up code is spent: it does not sign in again within its step.
    client.post(reverse("account_logout"))
    post_login(client, user.username, STRONG_PASSWORD)
    assert client.post(MFA_URL, {"code": code}).status_code == 200
    assert not is_signed_in(client)


def test_totp_secret_is_encrypted_at_rest(frozen):
    user = make_staff()
    secret = enable_totp(user)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT data FROM mfa_authenticator WHERE user_id = %s AND type = 'totp'", [user.pk]
        )
        (raw,) = cur.fetchone()
    raw = raw if isinstance(raw, str) else json.dumps(raw)
    assert secret not in raw and secret.lower() not in raw
    stored = json.loads(raw)["secret"]
    assert crypto.ciphertext_version(stored) is not None
    assert MFAAdapter().decrypt(stored) == secret
    # Bound to its purpose: the same ciphertext does not open as another field.
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(stored, crypto.associated_data("accounts_consumer", "phone", user.pk))
    assert crypto.decrypt(stored, MFA_SECRET_AAD) == secret


def test_recovery_code_signs_in_once(client, frozen):
    user = make_staff(is_superuser=True)
    secret = enable_totp(user)
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    codes = RecoveryCodes.activate(user).generate_codes()
    assert len(codes) == 10
    raw = Authenticator.objects.get(user=user, type="recovery_codes").data["seed"]
    assert crypto.ciphertext_version(raw) is not None  # the seed is encrypted too

    post_login(client, user.username, STRONG_PASSWORD)
    assert client.post(MFA_URL, {"code": codes[0]}).status_code == 302
    assert client.get(ADMIN_INDEX).status_code == 200
    client.post(reverse("account_logout"))

    other = Client()
    post_login(other, user.username, STRONG_PASSWORD)
    assert other.post(MFA_URL, {"code": codes[0]}).status_code == 200
    assert not is_signed_in(other)
    assert secret  # the TOTP authenticator is still the main one


def test_staff_cannot_switch_their_totp_off(client, frozen):
    user = make_staff(is_superuser=True)
    secret = enable_totp(user)
    login_with_totp(client, user, STRONG_PASSWORD, secret)
    client.post(reverse("account_reauthenticate"), {"password": STRONG_PASSWORD})
    refused = client.post(reverse("mfa_deactivate_totp"))
    assert refused.status_code == 200  # the form's error, not the success redirect
    assert Authenticator.objects.filter(user=user, type="totp").exists()


def test_sign_up_is_closed(client):
    client.post(
        reverse("account_signup"),
        {"username": "intruder", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD},
    )
    assert not User.objects.filter(username="intruder").exists()


def test_consumer_accounts_need_no_second_factor_for_their_own_pages(client, frozen):
    consumer = User.objects.create_user("consumer1", password=STRONG_PASSWORD)
    response = post_login(client, consumer.username, STRONG_PASSWORD)
    assert response.status_code == 302
    assert is_signed_in(client)
    # Not staff: the API answers; the admin refuses, without a redirect loop through the login.
    assert client.get(API_ROOT).status_code == 200
    admin_page = client.get(ADMIN_INDEX)
    assert admin_page.status_code == 302
    assert admin_page["Location"].startswith(reverse("admin:login"))
    assert client.get(admin_page["Location"]).status_code == 403
