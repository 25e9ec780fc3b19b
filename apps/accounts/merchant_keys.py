"""Merchant API keys: issuing, revoking, and signing a request the way a merchant does.

A key has three parts:

- `key_id` (`mk_` + 16 base32 characters, 80 random bits): public, names the key;
- a bearer token (`mks_` + 43 URL-safe characters, 256 random bits): stored only as
  `token_hash(key_id, token)`, an HMAC-SHA256 under the server's blind-index key;
- an Ed25519 key pair made at issue: the public half is stored, the private half (PEM) goes to
  the merchant.

The token and the private key are returned exactly once by `merchant_key_issue` and exist
nowhere else afterwards: an official hands them to the merchant, and a lost one means a new key.
Each request carries `Authorization: MerchantKey <key_id>:<token>` and an Ed25519 signature over
timestamp, nonce, method, path and body (`signature_message`); see docs/merchant_api.md and
`apps.accounts.merchant_auth` for the checks.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.crypto import blind_index, blind_index_candidates
from apps.common.exceptions import DomainError
from apps.common.http import signing_string

from .models import MerchantAPIKey, MerchantKeyScope

__all__ = [
    "AUTH_SCHEME",
    "IssuedKey",
    "MerchantKeyError",
    "MerchantKeyScope",
    "merchant_key_issue",
    "merchant_key_revoke",
    "sign_merchant_request",
    "signature_message",
    "token_hash",
    "token_matches",
]

AUTH_SCHEME = "MerchantKey"
KEY_ID_PREFIX = "mk_"
TOKEN_PREFIX = "mks_"  # noqa: S105  (a prefix that makes leaked tokens easy to scan for)
TOKEN_HASH_PURPOSE = "merchant_api_token"  # noqa: S105
LABEL_MAX_LENGTH = MerchantAPIKey._meta.get_field("label").max_length
REASON_MAX_LENGTH = MerchantAPIKey._meta.get_field("revoked_reason").max_length


class MerchantKeyError(DomainError):
    code = "merchant_key.error"


@dataclass(frozen=True)
class IssuedKey:
    """What issuing returns: the stored key, and the two secrets shown to the official once."""

    key: MerchantAPIKey
    token: str = field(repr=False)
    private_key_pem: str = field(repr=False)


def new_key_id() -> str:
    return KEY_ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def token_hash(key_id: str, token: str) -> str:
    """The stored form of a token: HMAC-SHA256 under the newest blind-index key, bound to the
    key ID (a hash copied to another row matches nothing)."""
    return blind_index(TOKEN_HASH_PURPOSE, f"{key_id}:{token}")


def token_matches(key: MerchantAPIKey, token: str) -> bool:
    """Whether `token` is the key's token, in constant time.

    Compared against the hash under every configured blind-index key (a key rotation does not
    lock merchants out), always all of them, each with `hmac.compare_digest`.
    """
    matched = False
    for candidate in blind_index_candidates(TOKEN_HASH_PURPOSE, f"{key.key_id}:{token}"):
        matched |= hmac.compare_digest(candidate.encode("ascii"), key.token_hash.encode("ascii"))
    return matched


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(scopes or ()))
    unknown = [s for s in wanted if s not in MerchantKeyScope.values]
    if unknown:
        raise MerchantKeyError(
            "merchant_key.unknown_scope", _("Unknown scope."), detail={"scopes": unknown}
        )
    if not wanted:
        raise MerchantKeyError("merchant_key.scopes_required", _("Choose at least one scope."))
    return sorted(wanted)


def merchant_key_issue(
    *,
    merchant,
    label: str,
    scopes: Iterable[str],
    actor,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Create a key for `merchant` and return it with its token and private key (once).

    Invariant: only the token's keyed hash and the public key are stored; the secrets live only
    in the returned object. Only an active merchant gets a key (the merchant row is locked, so a
    concurrent suspension cannot slip in between). Audited in the same transaction, without
    either secret. The caller checks that `actor` may issue keys.
    """
    from apps.merchants.models import Merchant

    label = (label or "").strip()
    if not label:
        raise MerchantKeyError("merchant_key.label_required", _("A label is required."))
    if len(label) > LABEL_MAX_LENGTH:
        raise MerchantKeyError(
            "merchant_key.label_too_long",
            _("The label is too long."),
            detail={"max_length": LABEL_MAX_LENGTH},
        )
    scopes = _clean_scopes(scopes)
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise MerchantKeyError(
            "merchant_key.expiry_in_past", _("The expiry time must be in the future.")
        )

    private_key = Ed25519PrivateKey.generate()
    public_raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    key_id = new_key_id()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    with transaction.atomic():
        locked = Merchant.objects.select_for_update().get(pk=merchant.pk)
        if not locked.is_active:
            raise MerchantKeyError(
                "merchant_key.merchant_inactive",
                _("Keys are issued only to active merchants."),
                detail={"status": locked.status},
            )
        key = MerchantAPIKey.objects.create(
            merchant=locked,
            key_id=key_id,
            token_hash=token_hash(key_id, token),
            public_key=base64.b64encode(public_raw).decode("ascii"),
            label=label,
            scopes=scopes,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            created_at=now,
            expires_at=expires_at,
        )
        audit_record(
            action="merchant_key.issued",
            category=AuditCategory.SECURITY,
            target=key,
            actor=actor,
            after={
                "key_id": key.key_id,
                "merchant_id": locked.pk,
                "merchant_uscc": locked.uscc,
                "label": label,
                "scopes": scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return IssuedKey(key=key, token=token, private_key_pem=private_pem)


def merchant_key_revoke(*, key: MerchantAPIKey, actor, reason: str) -> MerchantAPIKey:
    """Revoke `key` for good, with who, when and why.

    Invariant: a revoked key is refused from the next request on (authentication reads the row
    on every request; nothing caches it) and is never active again. The row is locked, so two
    officials revoking at once produce one revocation and one `merchant_key.already_revoked`.
    Audited in the same transaction. Returns a fresh instance.
    """
    reason = (reason or "").strip()
    if not reason:
        raise MerchantKeyError("merchant_key.reason_required", _("A reason is required."))
    if len(reason) > REASON_MAX_LENGTH:
        raise MerchantKeyError(
            "merchant_key.reason_too_long",
            _("The reason is too long."),
            detail={"max_length": REASON_MAX_LENGTH},
        )
    with transaction.atomic():
        locked = MerchantAPIKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is not None:
            raise MerchantKeyError(
                "merchant_key.already_revoked",
                _("This key is already revoked."),
                status_code=409,
            )
        locked.revoked_at = timezone.now()
        locked.revoked_by = actor if getattr(actor, "is_authenticated", False) else None
        locked.revoked_reason = reason
        locked.save(update_fields=["revoked_at", "revoked_by", "revoked_reason"])
        audit_record(
            action="merchant_key.revoked",
            category=AuditCategory.SECURITY,
            target=locked,
            actor=actor,
            reason=reason,
            before={"revoked": False},
            after={"revoked": True, "key_id": locked.key_id, "merchant_id": locked.merchant_id},
        )
    return locked


# --- Client side ------------------------------------------------------------------------------


def signature_message(
    *, timestamp: int | str, nonce: str, method: str, path: str, body: bytes
) -> bytes:
    """The bytes a request signature covers:
    `"{timestamp}\\n{nonce}\\n{METHOD}\\n{path incl. query}\\n{hex sha256 of body}"` (UTF-8)."""
    return signing_string(
        timestamp=timestamp, nonce=nonce, method=method, path=path, body=body
    ).encode("utf-8")


def sign_merchant_request(
    *,
    key_id: str,
    token: str,
    private_key_pem: str | bytes,
    method: str,
    path: str,
    body: bytes | str = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers of one merchant API request, as a merchant's client computes them.

    `path` is the request target exactly as sent, with its query string
    (`/api/v1/merchant/whoami/?x=1`); `body` the exact body bytes (`b""` for none). A fresh
    timestamp and a 128-bit nonce are used unless given (tests give them to build replays).
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(private_key_pem, str):
        private_key_pem = private_key_pem.encode("ascii")
    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("a merchant API key is an Ed25519 private key")
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    nonce = nonce or secrets.token_hex(16)
    message = signature_message(
        timestamp=timestamp, nonce=nonce, method=method, path=path, body=body
    )
    return {
        "Authorization": f"{AUTH_SCHEME} {key_id}:{token}",
        "X-Timestamp": str(timestamp),
        "X-Nonce": nonce,
        "X-Signature": base64.b64encode(private_key.sign(message)).decode("ascii"),
    }
