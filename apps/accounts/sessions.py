"""Session bookkeeping for the session limits and for revoking a user's sessions at once.

Every signed-in session carries, in its server-side data, when it signed in and when it was
last used (`SessionSecurityMiddleware` enforces the limits), and is listed in `UserSession`
under its current key, so `revoke_user_sessions` finds a user's sessions with one indexed query
instead of decoding every session.
"""

from __future__ import annotations

import time
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.utils import timezone

SESSION_LOGIN_AT = "_auth_login_at"  # epoch seconds of sign-in
SESSION_LAST_SEEN = "_auth_last_seen"  # epoch seconds of the last recorded request
SESSION_TRACKED_KEY = "_auth_tracked_key"  # the key last written to UserSession
# Activity is written at most this often, so a busy session is not saved on every request; the
# idle limit can only fire up to this much early, never late.
LAST_SEEN_WRITE_INTERVAL = 60


def session_store_class():
    return import_module(settings.SESSION_ENGINE).SessionStore


def start_session_clock(session) -> None:
    """At sign-in: both limits start now."""
    now = time.time()
    session[SESSION_LOGIN_AT] = now
    session[SESSION_LAST_SEEN] = now


def session_expiry_reason(session, *, now: float | None = None) -> str:
    """Why the session must end ("idle" or "absolute"), or "" while within both limits."""
    now = time.time() if now is None else now
    last_seen = session.get(SESSION_LAST_SEEN)
    login_at = session.get(SESSION_LOGIN_AT)
    if login_at is not None and now - login_at > settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS:
        return "absolute"
    if last_seen is not None and now - last_seen > settings.SESSION_IDLE_TIMEOUT_SECONDS:
        return "idle"
    return ""


def touch_session(session, user) -> None:
    """After a signed-in request: record activity and keep the key mapping current."""
    now = time.time()
    session.setdefault(SESSION_LOGIN_AT, now)
    last_seen = session.get(SESSION_LAST_SEEN)
    if last_seen is None or now - last_seen >= LAST_SEEN_WRITE_INTERVAL:
        session[SESSION_LAST_SEEN] = now
    if session.get(SESSION_TRACKED_KEY) != session.session_key or not session.session_key:
        track_session(session, user)


def track_session(session, user) -> None:
    """List the session under its current key (sign-in, or a key cycled by a password change)."""
    from .models import UserSession

    if not session.session_key:
        session.save()  # assigns the key now rather than after the response
    key = session.session_key
    previous = session.get(SESSION_TRACKED_KEY)
    UserSession.objects.update_or_create(session_key=key, defaults={"user_id": user.pk})
    if previous and previous != key:
        UserSession.objects.filter(session_key=previous).delete()
    session[SESSION_TRACKED_KEY] = key
    # Sessions older than the absolute limit are dead whatever their store says.
    cutoff = timezone.now() - timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS)
    UserSession.objects.filter(user_id=user.pk, created_at__lt=cutoff).delete()


def revoke_user_sessions(user) -> int:
    """End every session of `user` in the session store; return how many were listed."""
    from .models import UserSession

    keys = list(UserSession.objects.filter(user_id=user.pk).values_list("session_key", flat=True))
    store = session_store_class()
    for key in keys:
        # Through the configured engine, so cached sessions are dropped from the cache too.
        store(session_key=key).delete()
    UserSession.objects.filter(user_id=user.pk).delete()
    return len(keys)
