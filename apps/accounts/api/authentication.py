"""How the consumer app stays signed in: allauth's session tokens with the app's own limits.

The app signs in through allauth headless and receives a session token (`meta.session_token`):
the key of a server-side session, sent back as the `X-Session-Token` header — never in the URL,
never as a cookie (so no CSRF exposure). Its limits are the consumer app's, not the back
office's 15 minutes:

- idle: `CONSUMER_SESSION_IDLE_TIMEOUT_SECONDS` (7 days) since the last request;
- absolute: `CONSUMER_SESSION_ABSOLUTE_TIMEOUT_SECONDS` (30 days) since sign-in, however busy.

Both are enforced at every lookup of a token — by allauth's own endpoints and by the REST API
alike — through `ConsumerSessionTokenStrategy` (`HEADLESS_TOKEN_STRATEGY`). An ended token is
deleted from the session store. Deactivating the user ends it at once (the backends refuse
inactive users).
"""

from __future__ import annotations

import dataclasses
import time

from allauth.headless import app_settings as headless_settings
from allauth.headless.contrib.rest_framework.authentication import XSessionTokenAuthentication
from allauth.headless.tokens.strategies.sessions import SessionTokenStrategy
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.exceptions import AuthenticationFailed

from apps.accounts.adapters import may_use_app
from apps.accounts.sessions import (
    SESSION_LAST_SEEN,
    SESSION_LOGIN_AT,
    session_store_class,
)
from apps.audit import context as audit_context
from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.queries import row_with_one

SESSION_TOKEN_HEADER = "X-Session-Token"  # noqa: S105  (a header name, not a secret)
# An app session's activity is written to the store at most this often (one UPDATE, instead of
# one on nearly every request of a consumer who uses the app now and then). The 7-day idle
# limit can therefore fire up to this much early, never late.
APP_LAST_SEEN_WRITE_INTERVAL = 3600


def app_session_expiry_reason(session, *, now: float | None = None) -> str:
    """Why a signed-in app session must end ("idle" or "absolute"), or "" within both limits."""
    now = time.time() if now is None else now
    login_at = session.get(SESSION_LOGIN_AT)
    last_seen = session.get(SESSION_LAST_SEEN)
    if login_at is None or (now - login_at > settings.CONSUMER_SESSION_ABSOLUTE_TIMEOUT_SECONDS):
        # A signed-in app session without its sign-in time was not made by our sign-in.
        return "absolute"
    if last_seen is not None and now - last_seen > settings.CONSUMER_SESSION_IDLE_TIMEOUT_SECONDS:
        return "idle"
    return ""


class ConsumerSessionTokenStrategy(SessionTokenStrategy):
    """allauth's session-token strategy with the app's idle and absolute limits (see module)."""

    def lookup_session(self, session_token: str):
        if not isinstance(session_token, str) or not session_token:
            return None
        session = session_store_class()(session_key=session_token)
        # Loading clears the key of a missing or expired session (allauth's own strategy checks
        # only that the row exists, and would hand back an expired session as an empty one).
        signed_in = SESSION_KEY in session
        if session.session_key is None:
            return None
        if not signed_in:
            return session  # a sign-in in progress: allauth's own timeouts apply
        now = time.time()
        reason = app_session_expiry_reason(session, now=now)
        if reason:
            user_id = session.get(SESSION_KEY)
            session.delete()
            audit_record(
                action="auth.session_expired",
                category=AuditCategory.AUTH,
                target_type="accounts.user",
                target_id=str(user_id),
                after={"reason": reason, "channel": "app"},
            )
            return None
        last_seen = session.get(SESSION_LAST_SEEN)
        if last_seen is None or now - last_seen >= APP_LAST_SEEN_WRITE_INTERVAL:
            session[SESSION_LAST_SEEN] = now
            session.save()  # also moves the store's expiry on by the idle limit
        return session


def session_user(session):
    """The user a session store is signed in as, or None: `django.contrib.auth.get_user`
    (the same backend check, `is_active` through the backend, session-hash verification with
    the fallback secrets) for the app's token sessions — with the consumer profile joined to
    the user row, so the consumer API reads both in one query."""
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError):
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    backend = load_backend(backend_path)
    if type(backend).get_user is ModelBackend.get_user:
        # `ModelBackend.get_user`, with the join (one plain statement: `row_with_one`).
        user = row_with_one(get_user_model(), user_id, "consumer")
        if user is None:
            return None
        if not backend.user_can_authenticate(user):
            return None
    else:
        user = backend.get_user(user_id)
        if user is None:
            return None
    if not hasattr(user, "get_session_auth_hash"):
        return user
    session_hash = session.get(HASH_SESSION_KEY)
    session_auth_hash = user.get_session_auth_hash()
    if session_hash and constant_time_compare(session_hash, session_auth_hash):
        return user
    if session_hash and any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    ):
        session.cycle_key()
        session[HASH_SESSION_KEY] = session_auth_hash
        return user
    session.flush()
    return None


def authenticate_by_token(token: str):
    """(user, session) for a live app session token, or None (allauth's
    `authenticate_by_x_session_token`, with `session_user`)."""
    session = headless_settings.TOKEN_STRATEGY.lookup_session(token)
    if not session:
        return None
    user = session_user(session)
    if user is None or user.is_anonymous:
        return None
    return user, session


class ConsumerTokenAuthentication(XSessionTokenAuthentication):
    """The REST API's authentication by `X-Session-Token` (the app's session token).

    Unlike allauth's class it answers a token that is unknown, ended or not for the app with
    401 (`auth.token_invalid`) instead of treating the request as anonymous, refuses staff
    accounts (they use the back office with its second factor), and names the consumer in the
    audit context of the request.
    """

    def authenticate(self, request):
        token = self.get_session_token(request)
        if not token:
            return None
        result = authenticate_by_token(token)
        if result is None or not may_use_app(result[0]):
            raise AuthenticationFailed(
                _("The session token is not valid or has expired. Please sign in again."),
                code="auth.token_invalid",
            )
        user, session = result
        current = audit_context.current()
        audit_context.set_context(
            dataclasses.replace(current, actor_id=user.pk, actor_username=user.get_username())
        )
        return user, session

    def authenticate_header(self, request) -> str:
        # Makes DRF answer "not signed in" with 401 (and this challenge), not 403.
        return f'{SESSION_TOKEN_HEADER} realm="api"'


class ConsumerTokenScheme(OpenApiAuthenticationExtension):
    """The API schema's description of `ConsumerTokenAuthentication`."""

    target_class = ConsumerTokenAuthentication
    name = "sessionToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": SESSION_TOKEN_HEADER,
            "description": (
                "The consumer app's session token (`meta.session_token` of the sign-in answers "
                "of `/_allauth/app/v1/auth/…`)."
            ),
        }
