"""How the merchant API knows which merchant is calling, and what the call may do.

`MerchantKeyAuthentication` accepts a request only with all of:

    Authorization: MerchantKey <key_id>:<token>
    X-Timestamp:   <unix seconds>
    X-Nonce:       <16 to 128 hex digits, fresh for every request>
    X-Signature:   <base64 Ed25519 signature of signature_message(...)>

and checks, in this order, answering the first failure with its stable code (401 unless noted):

1. `merchant_auth.missing_headers` / `merchant_auth.malformed_headers` — a header is absent or
   not in its format;
2. `merchant_auth.unknown_key`, `merchant_auth.key_revoked`, `merchant_auth.key_expired`;
3. `merchant_auth.bad_token` — the token does not match the stored hash (constant-time);
4. `merchant_auth.bad_signature` — the signature over timestamp, nonce, method, path with query
   and the body's SHA-256 does not verify with the key's public key;
5. `merchant_auth.stale_timestamp` — more than 300 s from the server's clock either way;
6. `merchant_auth.replayed_nonce` — this key has used this nonce within the last 600 s
   (an atomic `cache.add`, so of two identical requests racing, exactly one gets through);
7. `merchant_auth.merchant_inactive` (403) — the merchant is suspended or blacklisted.

The signature is checked before the nonce is recorded, so nobody without the private key can
burn a merchant's nonces. The nonce lives twice the timestamp window, so a request is either
too old or its nonce still remembered. `HasMerchantScope` then checks the view's
`required_scopes` (403 `merchant_auth.scope_missing`).

On success `request.user` is a `MerchantPrincipal` (never a `User`, never staff) and
`request.auth` the `MerchantAPIKey`. Merchant views use this class alone: a back-office session
does not open the merchant API, and a merchant key opens nothing else.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import re
import time
from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from apps.audit import context as audit_context
from apps.audit.middleware import client_ip

from .merchant_keys import AUTH_SCHEME, signature_message, token_matches
from .models import MerchantAPIKey

logger = logging.getLogger(__name__)

#: A request's timestamp may be this far from the server's clock, either way.
TIMESTAMP_TOLERANCE_SECONDS = 300
#: How long a used nonce is remembered: the whole window in which its timestamp is acceptable.
NONCE_TTL_SECONDS = 2 * TIMESTAMP_TOLERANCE_SECONDS
#: `last_used_at` / `last_used_ip` are written at most this often per key.
LAST_USED_WRITE_INTERVAL = timedelta(seconds=60)

_AUTHORIZATION = re.compile(
    rf"^{AUTH_SCHEME} (?P<key_id>mk_[a-z2-7]{{16}}):(?P<token>[A-Za-z0-9_\-]{{16,128}})$"
)
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_NONCE = re.compile(r"^[0-9a-fA-F]{16,128}$")
_REQUIRED_HEADERS = {
    "Authorization": "HTTP_AUTHORIZATION",
    "X-Timestamp": "HTTP_X_TIMESTAMP",
    "X-Nonce": "HTTP_X_NONCE",
    "X-Signature": "HTTP_X_SIGNATURE",
}
ED25519_SIGNATURE_BYTES = 64


class MerchantAuthFailed(exceptions.AuthenticationFailed):
    """401 with one of the stable codes listed in the module docstring."""


class MerchantForbidden(exceptions.PermissionDenied):
    """403 with one of the stable codes listed in the module docstring."""


class MerchantAuthUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = _("The merchant API cannot check requests right now. Try again shortly.")
    default_code = "merchant_auth.unavailable"


MESSAGES = {
    "merchant_auth.missing_headers": _(
        "Sign the request: Authorization (MerchantKey), X-Timestamp, X-Nonce and X-Signature "
        "are required."
    ),
    "merchant_auth.malformed_headers": _("A merchant API header is not in its format."),
    "merchant_auth.unknown_key": _("Unknown API key."),
    "merchant_auth.key_revoked": _("This API key has been revoked."),
    "merchant_auth.key_expired": _("This API key has expired."),
    "merchant_auth.bad_token": _("The API key's token is not valid."),
    "merchant_auth.bad_signature": _("The request signature does not verify."),
    "merchant_auth.stale_timestamp": _(
        "The request timestamp is too far from the server's time (more than 5 minutes)."
    ),
    "merchant_auth.replayed_nonce": _("This nonce was already used. Send every request once."),
    "merchant_auth.merchant_inactive": _("This merchant may not use the merchant API."),
    "merchant_auth.scope_missing": _("This API key does not have the scope this request needs."),
}


def _fail(code: str, *, forbidden: bool = False, key_id: str = ""):
    logger.info("merchant API request refused: %s (key %s)", code, key_id or "-")
    cls = MerchantForbidden if forbidden else MerchantAuthFailed
    return cls(MESSAGES[code], code=code)


@dataclasses.dataclass(frozen=True, eq=False)
class MerchantPrincipal:
    """Who is calling the merchant API: a merchant through one of its keys.

    Stands in `request.user`. It is authenticated but is no `User`: not staff, no permissions,
    no primary key — code that needs a back-office user cannot mistake a merchant for one.
    """

    merchant: object
    api_key: MerchantAPIKey

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    @property
    def username(self) -> str:
        return f"merchant-key:{self.api_key.key_id}"

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.api_key.scopes or ())

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def has_perms(self, perm_list, obj=None) -> bool:
        return False

    def has_module_perms(self, app_label) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


def _signature_bytes(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == ED25519_SIGNATURE_BYTES else None


class MerchantKeyAuthentication(BaseAuthentication):
    """Merchant API keys with signed, timestamped, single-use requests (see the module)."""

    def authenticate(self, request):
        meta = request.META
        missing = [name for name, key in _REQUIRED_HEADERS.items() if not meta.get(key)]
        if missing:
            raise _fail("merchant_auth.missing_headers")
        authorization = _AUTHORIZATION.match(meta["HTTP_AUTHORIZATION"].strip())
        timestamp_text = meta["HTTP_X_TIMESTAMP"].strip()
        nonce = meta["HTTP_X_NONCE"].strip()
        signature = _signature_bytes(meta["HTTP_X_SIGNATURE"].strip())
        if (
            authorization is None
            or not _TIMESTAMP.match(timestamp_text)
            or not _NONCE.match(nonce)
            or signature is None
        ):
            raise _fail("merchant_auth.malformed_headers")
        key_id, token = authorization["key_id"], authorization["token"]

        key = MerchantAPIKey.objects.select_related("merchant").filter(key_id=key_id).first()
        if key is None:
            raise _fail("merchant_auth.unknown_key", key_id=key_id)
        if key.is_revoked:
            raise _fail("merchant_auth.key_revoked", key_id=key_id)
        now = timezone.now()
        if key.is_expired(now):
            raise _fail("merchant_auth.key_expired", key_id=key_id)
        if not token_matches(key, token):
            raise _fail("merchant_auth.bad_token", key_id=key_id)

        try:
            body = request._request.body
        except RequestDataTooBig as exc:
            raise exceptions.ParseError(
                _("The request body is too large."), code="request.too_large"
            ) from exc
        message = signature_message(
            timestamp=timestamp_text,
            nonce=nonce,
            method=request.method,
            path=request._request.get_full_path(),
            body=body,
        )
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key)).verify(
                signature, message
            )
        except (InvalidSignature, ValueError):
            raise _fail("merchant_auth.bad_signature", key_id=key_id) from None

        if abs(time.time() - int(timestamp_text)) > TIMESTAMP_TOLERANCE_SECONDS:
            raise _fail("merchant_auth.stale_timestamp", key_id=key_id)
        try:
            fresh = cache.add(
                f"merchant-api:nonce:{key_id}:{nonce.lower()}", 1, timeout=NONCE_TTL_SECONDS
            )
        except Exception as exc:  # the cache is down: refuse rather than admit replays
            logger.exception("merchant API nonce store unavailable")
            raise MerchantAuthUnavailable() from exc
        if not fresh:
            raise _fail("merchant_auth.replayed_nonce", key_id=key_id)

        if not key.merchant.is_active:
            raise _fail("merchant_auth.merchant_inactive", forbidden=True, key_id=key_id)

        self._record_use(key, now=now, ip=client_ip(request))
        principal = MerchantPrincipal(merchant=key.merchant, api_key=key)
        current = audit_context.current()
        audit_context.set_context(
            dataclasses.replace(current, actor_id=None, actor_username=principal.username)
        )
        return principal, key

    @staticmethod
    def _record_use(key: MerchantAPIKey, *, now, ip: str | None) -> None:
        """`last_used_at`/`_ip`, written at most once a minute per key (a busy till must not
        turn every request into a row write). The condition is in the UPDATE too, so parallel
        requests of one key write once."""
        if key.last_used_at is not None and now - key.last_used_at < LAST_USED_WRITE_INTERVAL:
            return
        MerchantAPIKey.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_WRITE_INTERVAL),
            pk=key.pk,
        ).update(last_used_at=now, last_used_ip=ip)
        key.last_used_at, key.last_used_ip = now, ip

    def authenticate_header(self, request) -> str:
        # Makes DRF answer authentication failures with 401 (and this challenge), not 403.
        return f'{AUTH_SCHEME} realm="merchant-api"'


class HasMerchantScope(BasePermission):
    """The caller is a merchant key holding every scope in the view's `required_scopes`.

    A view must declare `required_scopes` (an empty tuple for "any valid key"); a view that
    forgets it is a programming error, refused loudly rather than left open.
    """

    def has_permission(self, request, view) -> bool:
        required = getattr(view, "required_scopes", None)
        if required is None:
            raise ImproperlyConfigured(
                f"{type(view).__name__} uses HasMerchantScope without required_scopes."
            )
        principal = request.user
        if not isinstance(principal, MerchantPrincipal):
            return False  # DRF answers 401 "not signed in"
        if not set(required) <= principal.scopes:
            raise _fail(
                "merchant_auth.scope_missing",
                forbidden=True,
                key_id=principal.api_key.key_id,
            )
        return True


class MerchantKeyScheme(OpenApiAuthenticationExtension):
    """The API schema's description of `MerchantKeyAuthentication`."""

    target_class = MerchantKeyAuthentication
    name = "merchantKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`MerchantKey <key_id>:<token>`, together with `X-Timestamp`, `X-Nonce` and "
                "`X-Signature` (Ed25519 over timestamp, nonce, method, path with query and the "
                "body's SHA-256). See docs/merchant_api.md."
            ),
        }
