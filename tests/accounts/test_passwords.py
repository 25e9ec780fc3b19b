"""Password policy: hashing, complexity, common passwords, no reuse of the last 5, 90-day expiry.

Checklist 5: weak, listed, reused or >90-day-old password → rejected or change forced.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import (
    get_default_password_validators,
    password_validators_help_texts,
    validate_password,
)
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import PasswordHistory, User
from apps.accounts.password_validation import (
    CharacterClassesValidator,
    PasswordHistoryValidator,
    password_expired,
)
from lotteryinvoice import settings as project_settings
from tests.accounts.helpers import (
    ADMIN_INDEX,
    STRONG_PASSWORD,
    clear_cache,
    enable_totp,
    login_with_totp,
    make_staff,
    sign_in_staff,
)

pytestmark = pytest.mark.django_db

CHANGE_URL = reverse("account_change_password")
PASSWORDS = [f"Harbour-{n}-Lantern!" for n in range(1, 8)]


@pytest.fixture(autouse=True)
def _fast_and_clean(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clear_cache()
    yield
    clear_cache()


def codes(password: str, user=None) -> set[str]:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        return {e.code for e in exc.error_list}
    return set()


def test_argon2_is_the_password_hasher():
    # The project's setting (the tests of this module swap in a fast hasher).
    assert project_settings.PASSWORD_HASHERS[0] == (
        "django.contrib.auth.hashers.Argon2PasswordHasher"
    )
    names = [type(v).__name__ for v in get_default_password_validators()]
    assert {
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "CharacterClassesValidator",
        "PasswordHistoryValidator",
    } <= set(names)


def test_new_passwords_are_stored_with_argon2(settings):
    settings.PASSWORD_HASHERS = project_settings.PASSWORD_HASHERS
    assert make_staff("hashed").password.startswith("argon2$")


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("Ab1!xyz", {"password_too_short"}),  # 7 characters, all four classes
        ("qz7wtk", {"password_too_short", "password_too_simple"}),
        ("qzmwtrkvpl", {"password_too_simple"}),  # one class
        ("qzmwtRKVPL", {"password_too_simple"}),  # two classes
        ("1234567890", {"password_too_simple", "password_entirely_numeric", "password_too_common"}),
        ("Password1", {"password_too_common"}),  # three classes, but on the common list
        ("Qwerty123", {"password_too_common"}),
        ("Lantern-Harbour", set()),  # lower, upper, symbol
        ("lantern7harbour!", set()),  # lower, digit, symbol
        ("灯塔港口Harbour9", set()),  # caseless letters count as symbols
    ],
)
def test_password_rules(password, expected):
    assert codes(password) == expected


def test_character_classes():
    assert CharacterClassesValidator.classes("aB3!") == {"lower", "upper", "digit", "symbol"}
    assert CharacterClassesValidator.classes("港") == {"symbol"}
    with pytest.raises(ValueError):
        CharacterClassesValidator(min_classes=5)
    texts = " ".join(password_validators_help_texts())
    assert "3" in texts and "5" in texts


def test_the_last_five_passwords_cannot_be_reused():
    user = make_staff("rotator", password=PASSWORDS[0])
    for password in PASSWORDS[1:5]:
        user.set_password(password)
        user.save()
    # Current: PASSWORDS[4]; the last five are PASSWORDS[0..4].
    for password in PASSWORDS[:5]:
        assert codes(password, user) == {"password_reused"}, password
    assert codes(PASSWORDS[5], user) == set()

    user.set_password(PASSWORDS[5])
    user.save()
    assert codes(PASSWORDS[0], user) == set()  # six changes ago: allowed again
    assert codes(PASSWORDS[1], user) == {"password_reused"}
    assert PasswordHistory.objects.filter(user=user).count() == 5
    stored = set(PasswordHistory.objects.filter(user=user).values_list("password", flat=True))
    assert not any(p in stored for p in PASSWORDS)  # hashes only


def test_history_counts_a_current_password_that_predates_it():
    user = User.objects.create_user("legacy", password=PASSWORDS[0])  # raw hash, no history
    assert not PasswordHistory.objects.filter(user=user).exists()
    assert codes(PASSWORDS[0], user) == {"password_reused"}
    assert PasswordHistoryValidator(count=5).validate(PASSWORDS[0], None) is None


def test_change_password_form_refuses_reuse_and_records_the_change(client):
    user = make_staff("changer", password=PASSWORDS[0])
    user.set_password(PASSWORDS[1])
    user.save()
    sign_in_staff(client, user)

    reused = client.post(
        CHANGE_URL,
        {"oldpassword": PASSWORDS[1], "password1": PASSWORDS[0], "password2": PASSWORDS[0]},
    )
    assert reused.status_code == 200
    user.refresh_from_db()
    assert user.check_password(PASSWORDS[1])

    weak = client.post(
        CHANGE_URL, {"oldpassword": PASSWORDS[1], "password1": "abcdefgh", "password2": "abcdefgh"}
    )
    assert weak.status_code == 200
    user.refresh_from_db()
    assert user.check_password(PASSWORDS[1])

    before = user.password_changed_at
    done = client.post(
        CHANGE_URL,
        {"oldpassword": PASSWORDS[1], "password1": PASSWORDS[2], "password2": PASSWORDS[2]},
    )
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password(PASSWORDS[2])
    assert user.password_changed_at > before
    assert PasswordHistory.objects.filter(user=user).count() == 3
    assert client.get(ADMIN_INDEX).status_code == 200  # the session survived the change


def test_a_hasher_upgrade_at_sign_in_is_not_a_password_change(client, settings):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    changed = timezone.now() - timedelta(days=30)
    user = User.objects.create(
        username="upgraded",
        is_staff=True,
        password=make_password(STRONG_PASSWORD, hasher="pbkdf2_sha256"),
        password_changed_at=changed,
    )
    secret = enable_totp(user)
    login_with_totp(client, user, STRONG_PASSWORD, secret)
    user.refresh_from_db()
    assert user.password.startswith("md5$")  # re-hashed with the preferred hasher
    assert user.password_changed_at == changed
    assert not PasswordHistory.objects.filter(user=user).exists()


def test_expired_staff_password_forces_a_change_before_anything_else(client):
    user = make_staff("expired", is_superuser=True, password=PASSWORDS[0])
    User.objects.filter(pk=user.pk).update(password_changed_at=timezone.now() - timedelta(days=91))
    user.refresh_from_db()
    assert password_expired(user)
    sign_in_staff(client, user)

    for url in (ADMIN_INDEX, reverse("admin:accounts_user_changelist")):
        page = client.get(url)
        assert page.status_code == 302 and page["Location"] == CHANGE_URL, url
    api = client.get(reverse("api:root"))
    assert api.status_code == 403
    assert json.loads(api.content)["code"] == "auth.password_expired"
    assert client.get(CHANGE_URL).status_code == 200

    done = client.post(
        CHANGE_URL,
        {"oldpassword": PASSWORDS[0], "password1": PASSWORDS[1], "password2": PASSWORDS[1]},
    )
    assert done.status_code == 302
    assert client.get(ADMIN_INDEX).status_code == 200


def test_expiry_rules():
    now = timezone.now()
    staff = make_staff("fresh")
    assert not password_expired(staff)
    staff.password_changed_at = now - timedelta(days=89)
    assert not password_expired(staff)
    staff.password_changed_at = now - timedelta(days=91)
    assert password_expired(staff)
    staff.password_changed_at = None  # never changed through set_password (e.g. create_user)
    assert password_expired(staff)
    staff.set_unusable_password()
    assert not password_expired(staff)
    consumer = User(username="consumer", password=make_password("x"), password_changed_at=None)
    assert not password_expired(consumer)  # expiry is for staff


def test_staff_created_with_a_raw_hash_must_change_it_at_first_sign_in(client):
    user = User.objects.create_user("newhire", password=STRONG_PASSWORD, is_staff=True)
    assert user.password_changed_at is None
    sign_in_staff_without_stamp(client, user)
    assert client.get(ADMIN_INDEX)["Location"] == CHANGE_URL


def sign_in_staff_without_stamp(client, user):
    sign_in_staff(client, user)
    User.objects.filter(pk=user.pk).update(password_changed_at=None)
