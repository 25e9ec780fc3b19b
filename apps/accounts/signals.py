"""Sign-in events that only Django's, allauth's and axes' own views see.

Connected in `AccountsConfig.ready()`. Business state changes are audited by services; these
receivers only keep session bookkeeping and audit security events raised inside third-party
flows (a lockout, second-factor changes).
"""

from __future__ import annotations

from allauth.mfa.signals import authentication_failed, authenticator_added, authenticator_removed
from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from apps.audit.models import AuditCategory, AuditOutcome
from apps.audit.services import audit_record
from apps.common import crypto

from .auth import normalize_login
from .sessions import start_session_clock, track_session


@receiver(user_logged_in, dispatch_uid="accounts.session_clock")
def on_logged_in(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    if session is None:
        return
    start_session_clock(session)
    track_session(session, user)


@receiver(user_locked_out, dispatch_uid="accounts.locked_out")
def on_locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    # The login name only as a keyed fingerprint (as for failed logins): correlates without
    # storing the identifier. The client address comes from the audit context.
    login = normalize_login(username or "")
    audit_record(
        action="auth.locked_out",
        category=AuditCategory.SECURITY,
        outcome=AuditOutcome.DENIED,
        after={"login_fingerprint": crypto.blind_index("login", login)[:16] if login else ""},
    )


@receiver(authenticator_added, dispatch_uid="accounts.mfa_added")
def on_authenticator_added(sender, request, user, authenticator, **kwargs):
    audit_record(
        action="mfa.authenticator_added",
        category=AuditCategory.MFA,
        target=user,
        after={"type": authenticator.type},
    )


@receiver(authenticator_removed, dispatch_uid="accounts.mfa_removed")
def on_authenticator_removed(sender, request, user, authenticator, **kwargs):
    audit_record(
        action="mfa.authenticator_removed",
        category=AuditCategory.MFA,
        target=user,
        after={"type": authenticator.type},
    )


@receiver(authentication_failed, dispatch_uid="accounts.mfa_failed")
def on_mfa_failed(sender, request, user, authenticator, **kwargs):
    audit_record(
        action="mfa.failed",
        category=AuditCategory.MFA,
        outcome=AuditOutcome.FAILURE,
        target=user,
        after={"type": authenticator.type},
    )
