"""Lockout after 5 failures (by login name or by address), and failures that all look alike.

Checklist 2: 5 bad passwords from rotating IPs → locked 30 min, logged; correct password refused
meanwhile. Checklist 3: unknown user vs. wrong password → same status, body and timing.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY, authenticate
from django.contrib.auth.hashers import make_password
from django.test import Client, RequestFactory

from apps.accounts.auth import axes_username
from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.common import crypto
from tests.accounts.helpers import (
    STRONG_PASSWORD,
    clear_cache,
    make_staff,
    normalized_body,
    post_login,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
WRONG = "Not-The-Password-1"


@pytest.fixture(autouse=True)
def _clean_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def frozen():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def password_accepted(response) -> bool:
    """The login form accepted the password (on to the second step, or to TOTP set-up)."""
    return response.status_code == 302


def test_five_failures_from_rotating_addresses_lock_the_login_name(fast_hashing, frozen):
    user = make_staff("cashier")
    failures = []
    for i in range(5):
        failures.append(post_login(Client(), "cashier", WRONG, ip=f"198.51.100.{i + 1}"))
    assert all(r.status_code == 200 for r in failures)

    # Locked: the right password, from yet another address, is refused like a wrong one.
    locked = post_login(Client(), "cashier", STRONG_PASSWORD, ip="198.51.100.99")
    assert locked.status_code == failures[0].status_code
    assert normalized_body(locked) == normalized_body(failures[0])
    assert SESSION_KEY not in locked.client.session

    # Logged once locked, with the login name only as a keyed fingerprint.
    events = AuditEvent.objects.filter(action="auth.locked_out")
    assert events.exists()
    event = events.first()
    assert event.category == "security"
    fingerprint = crypto.blind_index("login", "cashier")[:16]
    assert event.after == {"login_fingerprint": fingerprint}
    for ev in events:
        flat = repr(
            {f.name: getattr(ev, f.name) for f in AuditEvent._meta.fields if f.name != "chain"}
        )
        assert "cashier" not in flat

    # Still locked after 29 minutes (allauth's own 5-minute rate limit is long over: this is
    # the lockout), and still answered like any failure; free after 31.
    frozen.shift(29 * 60)
    still_locked = post_login(Client(), "cashier", STRONG_PASSWORD, ip="10.0.0.7")
    assert still_locked.status_code == failures[0].status_code
    assert normalized_body(still_locked) == normalized_body(failures[0])
    assert SESSION_KEY not in still_locked.client.session
    frozen.shift(2 * 60)
    assert password_accepted(post_login(Client(), "cashier", STRONG_PASSWORD, ip="10.0.0.8"))
    assert user.pk


def test_case_variants_of_a_login_name_count_together(fast_hashing, frozen):
    make_staff("cashier")
    for i, name in enumerate(["cashier", "Cashier", "CASHIER ", " cashIER", "cashier"]):
        post_login(Client(), name, WRONG, ip=f"198.51.100.{i + 1}")
    frozen.shift(6 * 60)  # past allauth's 5-minute limit: only the lockout is left
    locked = post_login(Client(), "cashier", STRONG_PASSWORD, ip="198.51.100.50")
    assert not password_accepted(locked)


def test_five_failures_from_one_address_lock_the_address(fast_hashing, frozen):
    make_staff("victim")
    for i in range(5):
        post_login(Client(), f"guess{i}", WRONG, ip="203.0.113.5")
    assert not password_accepted(post_login(Client(), "victim", STRONG_PASSWORD, ip="203.0.113.5"))
    # The account itself is not locked: another address signs in.
    assert password_accepted(post_login(Client(), "victim", STRONG_PASSWORD, ip="203.0.113.6"))


def test_four_failures_do_not_lock(fast_hashing, frozen):
    make_staff("clerk")
    for i in range(4):
        post_login(Client(), "clerk", WRONG, ip=f"192.0.2.{i + 1}")
    assert password_accepted(post_login(Client(), "clerk", STRONG_PASSWORD, ip="192.0.2.40"))


def test_lockout_also_guards_plain_django_authentication(fast_hashing, frozen):
    """The admin-style path (`authenticate(username=…)`), as an API login would use it."""
    make_staff("auditor1")
    factory = RequestFactory()
    for i in range(5):
        request = factory.post("/any-login/", REMOTE_ADDR=f"192.0.2.{i + 1}")
        assert authenticate(request, username="auditor1", password=WRONG) is None
    request = factory.post("/any-login/", REMOTE_ADDR="192.0.2.77")
    assert authenticate(request, username="auditor1", password=STRONG_PASSWORD) is None
    assert AccessAttempt.objects.filter(username="auditor1").exists()


@pytest.mark.parametrize(
    ("post", "credentials", "expected"),
    [
        ({"login": " Alice "}, None, "alice"),
        ({"username": "Bob"}, None, "bob"),
        ({"email": "Carol@Example.org"}, None, "carol@example.org"),
        ({}, {"username": "Dave", "password": "********"}, "dave"),
        ({"login": "ignored"}, {"email": "erin@example.org"}, "erin@example.org"),
        ({}, None, None),
    ],
)
def test_axes_reads_the_login_name_from_any_field(post, credentials, expected):
    request = RequestFactory().post("/accounts/login/", post)
    assert axes_username(request, credentials) == expected


def test_axes_reads_json_api_bodies():
    request = RequestFactory().post("/api/", {}, content_type="application/json")
    request.data = {"phone": "13800000000", "password": "x"}
    assert axes_username(request, None) == "13800000000"


def test_unknown_user_and_wrong_password_answer_alike(fast_hashing, frozen):
    make_staff("known")
    unknown = post_login(Client(), "ghost", WRONG, ip="192.0.2.10")
    wrong = post_login(Client(), "known", WRONG, ip="192.0.2.11")
    assert unknown.status_code == wrong.status_code == 200
    assert normalized_body(unknown, "ghost") == normalized_body(wrong, "known")
    inactive = make_staff("gone", is_active=False)
    right_but_inactive = post_login(Client(), "gone", STRONG_PASSWORD, ip="192.0.2.12")
    assert normalized_body(right_but_inactive, "gone") == normalized_body(wrong, "known")
    assert inactive.pk


def test_unknown_user_and_wrong_password_take_similar_time(settings):
    """With the real (Argon2) hasher: both paths hash once. Medians of 5 interleaved tries."""
    assert settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
    encoded = make_password(STRONG_PASSWORD)
    User.objects.bulk_create(
        [User(username=f"known{i}", password=encoded, is_staff=True) for i in range(6)]
    )
    post_login(Client(), "known5", WRONG, ip="192.0.2.200")  # warm-up
    unknown_times, wrong_times = [], []
    for i in range(5):
        for name, times, ip in (
            (f"ghost{i}", unknown_times, f"192.0.2.{100 + i}"),
            (f"known{i}", wrong_times, f"192.0.2.{150 + i}"),
        ):
            started = time.perf_counter()
            response = post_login(Client(), name, WRONG, ip=ip)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
    ratio = statistics.median(unknown_times) / statistics.median(wrong_times)
    assert 0.5 <= ratio <= 2.0, (unknown_times, wrong_times)
