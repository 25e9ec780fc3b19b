"""`manage.py ensure_admin`: one superuser, a password shown once, existing accounts untouched."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD_LINE = re.compile(r"^Password: (\S+)$", re.MULTILINE)


def ensure_admin(*args: str) -> str:
    out = io.StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


def test_creates_one_superuser_and_prints_its_password_once():
    out = ensure_admin()
    passwords = PASSWORD_LINE.findall(out)
    assert len(passwords) == 1
    password = passwords[0]
    assert out.count(password) == 1
    assert len(password) >= 16
    admin = User.objects.get(is_superuser=True)
    assert admin.username == "admin" and admin.is_staff and admin.is_active
    assert admin.check_password(password)
    assert User.objects.filter(is_superuser=True).count() == 1


def test_second_call_changes_nothing_and_prints_no_password():
    first = PASSWORD_LINE.findall(ensure_admin())[0]
    hashed = User.objects.get(username="admin").password
    out = ensure_admin()
    assert not PASSWORD_LINE.search(out)
    assert first not in out
    assert "already exists" in out
    assert User.objects.filter(is_superuser=True).count() == 1
    assert User.objects.get(username="admin").password == hashed


def test_an_existing_superuser_is_left_alone():
    User.objects.create_superuser("root", password="a-long-Secret-42")
    out = ensure_admin("--username", "admin")
    assert not PASSWORD_LINE.search(out) and "root" in out
    assert not User.objects.filter(username="admin").exists()
    assert User.objects.get(username="root").check_password("a-long-Secret-42")


def test_custom_username_and_random_passwords():
    password = PASSWORD_LINE.findall(ensure_admin("--username", "zhuanban"))[0]
    assert User.objects.get(is_superuser=True).username == "zhuanban"
    User.objects.all().delete()
    assert PASSWORD_LINE.findall(ensure_admin("--username", "zhuanban"))[0] != password


def test_a_non_superuser_with_that_name_is_not_promoted():
    User.objects.create_user("admin", password="a-long-Secret-42")
    with pytest.raises(CommandError, match="not a superuser"):
        ensure_admin()
    user = User.objects.get(username="admin")
    assert not user.is_superuser and user.check_password("a-long-Secret-42")
