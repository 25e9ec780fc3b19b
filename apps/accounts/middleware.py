"""Session limits, the staff second factor and forced password changes, on every request.

Order (settings.MIDDLEWARE), after authentication and messages:

1. `SessionSecurityMiddleware` — a session whose user the backends no longer accept (deactivated,
   deleted) is flushed; a session idle for `SESSION_IDLE_TIMEOUT_SECONDS` or older than
   `SESSION_ABSOLUTE_TIMEOUT_SECONDS` since sign-in is ended server-side.
2. `StaffMFAMiddleware` — a staff session that has not passed TOTP reaches nothing but the TOTP
   set-up pages (no authenticator yet) or is signed out (it has one but skipped it).
3. `PasswordExpiryMiddleware` — a staff user whose password expired reaches nothing but the
   password change.

Browsers are redirected; API clients (`/api/…`) get the API's error body with 401 or 403.

The consumer app's sessions (allauth headless, `X-Session-Token`) are not cookie sessions: these
middlewares see such requests as anonymous and leave them alone. Their limits are enforced where
the token is looked up (`apps.accounts.api.authentication`), and staff cannot hold one.
"""

from __future__ import annotations

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.utils.translation import gettext as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record

from .password_validation import password_expired
from .sessions import session_expiry_reason, touch_session

API_PATH_PREFIXES = ("/api/",)

# What a staff session without its second factor may still reach: setting TOTP up (which may
# ask to re-enter the password first), its recovery codes, and signing out.
MFA_SETUP_URL_NAMES = frozenset(
    {
        "mfa_index",
        "mfa_activate_totp",
        "mfa_view_recovery_codes",
        "mfa_download_recovery_codes",
        "account_reauthenticate",
        "account_logout",
    }
)
# What a staff user with an expired password may still reach.
PASSWORD_CHANGE_URL_NAMES = frozenset(
    {"account_change_password", "account_reauthenticate", "account_logout"}
)


def is_api_request(request) -> bool:
    return request.path_info.startswith(API_PATH_PREFIXES)


def is_staff(user) -> bool:
    return bool(user.is_authenticated and (user.is_staff or user.is_superuser))


def _url_name(request) -> str:
    try:
        return resolve(request.path_info).url_name or ""
    except Resolver404:
        return ""


def _is_static(request) -> bool:
    static = "/" + settings.STATIC_URL.lstrip("/")
    return request.path_info.startswith(static)


def api_error(code: str, message: str, status: int, **detail) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "detail": detail}, status=status)


def session_verified_mfa(request, user) -> bool:
    """Whether this session passed a second factor for this user (allauth's records)."""
    return any(r.get("method") == "mfa" for r in get_authentication_records(request, user))


class SessionSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        refused = self.check(request)
        if refused is not None:
            return refused
        response = self.get_response(request)
        user = getattr(request, "user", None)
        # Only the cookie session of this very user: an API request signed in by the consumer
        # app's token (DRF sets `request.user`) must not create or re-map a cookie session.
        if (
            user is not None
            and user.is_authenticated
            and request.session.get(SESSION_KEY) == str(user.pk)
        ):
            touch_session(request.session, user)
        return response

    def check(self, request):
        if SESSION_KEY not in request.session:
            return None
        user = request.user
        if not user.is_authenticated:
            # The session names a user the backends no longer accept (deactivated, deleted):
            # end it rather than leave it waiting for the account to come back.
            request.session.flush()
            return None
        reason = session_expiry_reason(request.session)
        if not reason:
            return None
        audit_record(
            action="auth.session_expired",
            category=AuditCategory.AUTH,
            target=user,
            actor=user,
            after={"reason": reason},
        )
        logout(request)
        message = _("Your session has expired. Please sign in again.")
        if is_api_request(request):
            return api_error("auth.session_expired", message, 401, reason=reason)
        messages.info(request, message)
        return redirect_to_login(request.get_full_path())


class StaffMFAMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if is_staff(user) and not session_verified_mfa(request, user):
            refused = self.refuse(request, user)
            if refused is not None:
                return refused
        return self.get_response(request)

    def refuse(self, request, user):
        if is_mfa_enabled(user, [Authenticator.Type.TOTP]):
            # The account has TOTP but this session never passed it: not a staff session.
            logout(request)
            message = _("Sign in with your authenticator code to continue.")
            if is_api_request(request):
                return api_error("auth.mfa_required", message, 401)
            messages.info(request, message)
            return redirect_to_login(request.get_full_path())
        if _is_static(request) or _url_name(request) in MFA_SETUP_URL_NAMES:
            return None
        message = _("Staff accounts must set up an authenticator app before continuing.")
        if is_api_request(request):
            return api_error("auth.mfa_setup_required", message, 403)
        messages.info(request, message)
        return HttpResponseRedirect(reverse("mfa_activate_totp"))


class PasswordExpiryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if (
            is_staff(user)
            and password_expired(user)
            and not _is_static(request)
            and _url_name(request) not in PASSWORD_CHANGE_URL_NAMES
        ):
            message = _("Your password has expired. Please choose a new one.")
            if is_api_request(request):
                return api_error("auth.password_expired", message, 403)
            messages.info(request, message)
            return HttpResponseRedirect(reverse("account_change_password"))
        return self.get_response(request)
