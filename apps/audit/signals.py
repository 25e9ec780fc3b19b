"""Auth and permission events into the audit trail.

Business state changes are audited by services, never by signals (signals do not fire for bulk
work). Sign-ins and group/permission edits happen inside Django's own views, so signals are the
one place that sees them all.
"""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete
from django.dispatch import receiver

from apps.common import crypto

from .models import AuditCategory, AuditOutcome
from .services import audit_record

User = get_user_model()


def _login_fingerprint(credentials: dict) -> str:
    """A keyed hash of the attempted login: correlates attacks without storing identifiers."""
    login = str(
        credentials.get("username") or credentials.get("login") or credentials.get("email") or ""
    )
    return crypto.blind_index("login", login.strip().lower())[:16] if login else ""


@receiver(user_logged_in, dispatch_uid="audit.logged_in")
def on_logged_in(sender, request, user, **kwargs):
    audit_record(action="auth.login", category=AuditCategory.AUTH, target=user, actor=user)


@receiver(user_logged_out, dispatch_uid="audit.logged_out")
def on_logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", category=AuditCategory.AUTH, target=user, actor=user)


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def on_login_failed(sender, credentials, request=None, **kwargs):
    audit_record(
        action="auth.login_failed",
        category=AuditCategory.AUTH,
        outcome=AuditOutcome.FAILURE,
        after={"login_fingerprint": _login_fingerprint(credentials)},
    )


def _names(model, pk_set) -> list[str]:
    if not pk_set:
        return []
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pk_set).values_list("name", flat=True))
    return sorted(
        f"{app}.{code}"
        for app, code in model.objects.filter(pk__in=pk_set).values_list(
            "content_type__app_label", "codename"
        )
    )


def _on_m2m(instance, action, model, pk_set, field: str):
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    audit_record(
        action=f"permission.{field}_{verb}",
        category=AuditCategory.PERMISSION,
        target=instance,
        after={field: _names(model, pk_set)},
    )


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="audit.user_groups")
def on_user_groups(sender, instance, action, model, pk_set, **kwargs):
    _on_m2m(instance, action, model, pk_set, "groups")


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="audit.user_perms")
def on_user_permissions(sender, instance, action, model, pk_set, **kwargs):
    _on_m2m(instance, action, model, pk_set, "permissions")


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="audit.group_perms")
def on_group_permissions(sender, instance, action, model, pk_set, **kwargs):
    _on_m2m(instance, action, model, pk_set, "permissions")


def _on_security_delete(action: str):
    def receiver_(sender, instance, **kwargs):
        audit_record(
            action=action,
            category=AuditCategory.SECURITY,
            target_type=sender._meta.label_lower,
            target_id=str(instance.pk),
            target_repr=f"user #{getattr(instance, 'user_id', '') or '-'}",
        )

    return receiver_


# A security administrator resets a lost authenticator or lifts a lockout in the admin: these
# are deletions of third-party rows, so only signals see them.
_authenticator_removed = _on_security_delete("security.authenticator_removed")
_lockout_lifted = _on_security_delete("security.lockout_lifted")
post_delete.connect(
    _authenticator_removed, sender=Authenticator, dispatch_uid="audit.authenticator_removed"
)
post_delete.connect(_lockout_lifted, sender=AccessAttempt, dispatch_uid="audit.lockout_lifted")
