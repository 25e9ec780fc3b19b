"""Lockout (django-axes) wiring: who is attempting, and what a locked-out attempt looks like.

Axes counts failures per login name and, separately, per client address
(`AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]`); five of either lock for 30 minutes.
A locked-out attempt must look exactly like an ordinary failure — same status, same page, and
about the same time — so that the lock tells an attacker nothing about the account.
"""

from __future__ import annotations

from collections.abc import Mapping

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from django.contrib.auth.hashers import make_password
from django.http import HttpResponse, HttpResponseBase

# Where a login name can arrive: Django's and the admin's forms (`username`), allauth's form
# (`login`), and API clients (`username`, `email`, `phone`).
LOGIN_FIELDS = ("username", "login", "email", "phone")


def _first_login(data) -> str:
    if not isinstance(data, Mapping):
        return ""
    for field in LOGIN_FIELDS:
        value = data.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def normalize_login(value: str) -> str:
    return value.strip().lower()


def axes_username(request, credentials: dict | None = None) -> str | None:
    """`AXES_USERNAME_CALLABLE`: the attempted login name, whichever field carried it.

    Axes' default reads a single form field, which silently misses every login that uses
    another field name; reading all of them (credentials first, then the request body) keeps
    the lockout working for the allauth form, the admin and API clients alike. Lower-cased so
    that case variants of one name count together.
    """
    login = _first_login(credentials)
    if not login and request is not None:
        login = _first_login(getattr(request, "data", None)) or _first_login(
            getattr(request, "POST", None)
        )
    return normalize_login(login) or None


def lockout_response(request, original_response=None, credentials=None) -> HttpResponseBase:
    """`AXES_LOCKOUT_CALLABLE`: answer a locked-out attempt as the view answered the failure.

    The login view has already rendered its ordinary "wrong login name or password" answer
    (the authentication backends returned no user); passing it through unchanged makes a
    lockout indistinguishable from a wrong password or an unknown user.
    """
    if isinstance(original_response, HttpResponseBase):
        return original_response
    # Axes' asynchronous path gives no response to pass through: a bare refusal.
    return HttpResponse(status=400)


class LockoutBackend(AxesStandaloneBackend):
    """Axes' lockout check, first in `AUTHENTICATION_BACKENDS`, with constant-time refusals.

    A locked-out attempt is refused before any password check; this backend still runs the
    password hasher once, so the refusal takes as long as checking a wrong password does.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        except AxesBackendPermissionDenied:
            make_password(password or "")
            raise
