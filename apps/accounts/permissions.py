"""Who may use the consumer API: signed-in consumers, active, and for some endpoints verified.

Refusals carry our stable codes (rendered by `apps.common.api.exception_handler`):
- not signed in → 401 `auth.not_authenticated` (or `auth.token_invalid` for a bad token);
- signed in, but not a consumer (staff, or no profile) → 403 `consumer.required`;
- a frozen consumer → 403 `consumer.frozen`;
- `IsVerifiedConsumer` only: not real-name verified → 403 `consumer.not_verified`.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from .adapters import consumer_of, may_use_app
from .choices import ConsumerStatus, VerificationStatus


class ConsumerRequired(exceptions.PermissionDenied):
    default_detail = _("Only consumer accounts can use this service.")
    default_code = "consumer.required"


class ConsumerFrozen(exceptions.PermissionDenied):
    default_detail = _("Your account is frozen. Contact the hotline.")
    default_code = "consumer.frozen"


class ConsumerNotVerified(exceptions.PermissionDenied):
    default_detail = _("Complete real-name verification to use this service.")
    default_code = "consumer.not_verified"


class IsConsumer(BasePermission):
    """A signed-in user with a Consumer profile that is not frozen (never staff)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401 "not signed in"
        consumer = consumer_of(user) if may_use_app(user) else None
        if consumer is None:
            raise ConsumerRequired()
        if consumer.status == ConsumerStatus.FROZEN:
            raise ConsumerFrozen()
        return True


class IsVerifiedConsumer(IsConsumer):
    """`IsConsumer`, and real-name verified."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.user.consumer.verification_status != VerificationStatus.VERIFIED:
            raise ConsumerNotVerified()
        return True
