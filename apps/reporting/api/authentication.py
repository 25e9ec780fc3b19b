"""Client credentials of partner systems for the read-only statistics API.

A request carries `Authorization: PartnerKey <key_id>:<secret>` (over HTTPS). It is refused,
with a stable code, when the header is missing or malformed (`partner_auth.missing`), the key
is unknown (`partner_auth.unknown_key`), revoked (`partner_auth.key_revoked`), expired
(`partner_auth.key_expired`) or the secret does not match its stored keyed hash
(`partner_auth.bad_secret`, compared in constant time). A view's `required_scope` must be among
the key's scopes (403 `partner_auth.scope_missing`). `request.user` is then a
`PartnerPrincipal` (never a `User`), `request.auth` the `PartnerAPIKey`.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from apps.common.throttling import SlidingWindowThrottle

from ..models import PartnerAPIKey
from ..services import secret_matches

SCHEME = "PartnerKey"
_HEADER = re.compile(
    rf"^{SCHEME} (?P<key_id>pk_[a-z2-7]{{16}}):(?P<secret>pks_[A-Za-z0-9_\-]{{20,100}})$"
)
LAST_USED_INTERVAL = timedelta(seconds=60)


class PartnerAuthFailed(exceptions.AuthenticationFailed):
    pass


@dataclasses.dataclass(frozen=True, eq=False)
class PartnerPrincipal:
    api_key: PartnerAPIKey
    is_authenticated = True
    is_staff = False
    is_active = True
    pk = None

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return f"partner:{self.api_key.key_id}"


def _fail(code: str):
    return PartnerAuthFailed(_("The partner credentials were not accepted."), code=code)


class PartnerKeyAuthentication(BaseAuthentication):
    def authenticate_header(self, request) -> str:
        return SCHEME

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        match = _HEADER.match(header)
        if match is None:
            raise _fail("partner_auth.missing")
        key = PartnerAPIKey.objects.filter(key_id=match["key_id"]).first()
        if key is None:
            raise _fail("partner_auth.unknown_key")
        if not secret_matches(key, match["secret"]):
            raise _fail("partner_auth.bad_secret")
        now = timezone.now()
        if key.revoked_at is not None:
            raise _fail("partner_auth.key_revoked")
        if key.expires_at <= now:
            raise _fail("partner_auth.key_expired")
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_INTERVAL:
            PartnerAPIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return PartnerPrincipal(key), key


class HasPartnerScope(BasePermission):
    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, PartnerAPIKey):
            return False
        if view.required_scope not in (key.scopes or []):
            raise exceptions.PermissionDenied(
                _("This key does not have the scope for this data."),
                code="partner_auth.scope_missing",
            )
        return True


class PartnerKeyThrottle(SlidingWindowThrottle):
    """Per key: `REPORTING_PARTNER_RATE` (default 60 requests a minute)."""

    scope = "partner_key"

    def get_rate(self):
        return getattr(settings, "REPORTING_PARTNER_RATE", "60/min")

    def get_cache_key(self, request, view):
        key = request.auth
        if not isinstance(key, PartnerAPIKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.key_id}


class PartnerKeyScheme(OpenApiAuthenticationExtension):
    """The API schema's description of `PartnerKeyAuthentication`."""

    target_class = PartnerKeyAuthentication
    name = "partnerKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                f"`{SCHEME} <key_id>:<secret>`: a partner system's client credentials, issued "
                "in the back office with scopes and an expiry (docs/integration.md)."
            ),
        }
