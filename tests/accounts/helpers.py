"""Staff sign-in for tests: real TOTP codes (RFC 6238, computed here), real login flows, and a
quick signed-in staff session for tests about something else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time

from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User

STRONG_PASSWORD = "Staff-Login-2026!"
LOGIN_URL = reverse("account_login")
MFA_URL = reverse("mfa_authenticate")
ADMIN_INDEX = reverse("admin:index")


def totp_code(secret: str, *, at: float | None = None, period: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP (HMAC-SHA1), written independently of allauth's implementation."""
    counter = int((time.time() if at is None else at) // period)
    key = base64.b32decode(secret, casefold=True)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{value:0{digits}d}"


def make_staff(username: str = "officer", password: str = STRONG_PASSWORD, **fields) -> User:
    fields.setdefault("is_staff", True)
    user = User(username=username, **fields)
    user.set_password(password)
    user.save()
    return user


def enable_totp(user: User) -> str:
    """Give `user` a TOTP authenticator through allauth (so through our MFA adapter)."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def post_login(client: Client, login: str, password: str, *, ip: str = "127.0.0.1", **extra):
    return client.post(LOGIN_URL, {"login": login, "password": password}, REMOTE_ADDR=ip, **extra)


def login_with_totp(client: Client, user: User, password: str, secret: str, **extra):
    """The whole staff sign-in: password, then the current TOTP code. Returns the last answer."""
    first = post_login(client, user.username, password, **extra)
    assert first.status_code == 302 and first["Location"].startswith(MFA_URL), first
    return client.post(MFA_URL, {"code": totp_code(secret)}, **extra)


def sign_in_staff(client: Client, user: User) -> Client:
    """A signed-in staff session that has passed the second factor, without the login pages.

    For tests about something else (admin pages, APIs): the session carries the same records
    allauth writes after a password + TOTP sign-in, and a password that has not expired.
    Sign-in itself is tested through the real flow in tests/accounts/test_staff_login.py.
    """
    if user.password_changed_at is None:
        user.password_changed_at = timezone.now()
        User.objects.filter(pk=user.pk).update(password_changed_at=user.password_changed_at)
    client.force_login(user)
    session = client.session
    now = time.time()
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {"method": "password", "at": now, "username": user.get_username()},
        {"method": "mfa", "at": now, "type": Authenticator.Type.TOTP},
    ]
    session["account_authentication_methods_user"] = str(user.pk)
    session.save()
    return client


_CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"')


def normalized_body(response, *names: str) -> bytes:
    """The body without its CSRF token and with the given login names blanked out."""
    body = _CSRF.sub(b"", response.content)
    for name in names:
        body = body.replace(name.encode(), b"<login>")
    return body


def clear_cache() -> None:
    """Empty this test worker's cache keys only: `cache.clear()` on the shared Redis would
    FLUSHDB under the other xdist worker's feet (used TOTP codes, rate limits)."""
    from django.core.cache import cache

    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()
