"""Writes on user accounts."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.exceptions import DomainError

from .sessions import revoke_user_sessions


class AccountError(DomainError):
    code = "account.error"


@transaction.atomic
def user_deactivate(*, user, actor, reason: str):
    """Deactivate an account and end all of its sessions at once.

    Invariant: after this returns, no session of the user is usable — their rows are deleted
    from the session store (found through `UserSession`), and any session missed that way is
    refused anyway, because the authentication backend rejects inactive users and
    `SessionSecurityMiddleware` then flushes the session. Audited with the reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise AccountError("account.reason_required", _("A reason is required."))
    User = get_user_model()
    locked = User.objects.select_for_update().get(pk=user.pk)
    was_active = locked.is_active
    if was_active:
        locked.is_active = False
        locked.save(update_fields=["is_active"])
    revoked = revoke_user_sessions(locked)
    audit_record(
        action="user.deactivated",
        category=AuditCategory.SECURITY,
        target=locked,
        actor=actor,
        reason=reason,
        before={"is_active": was_active},
        after={"is_active": False, "sessions_revoked": revoked},
    )
    user.is_active = False
    return locked
