"""Writes of the reporting app: partner API keys and the replay of dead-letter events.

Rollups are written only by the hooks in `rollups` (inside other services' transactions) and by
`rebuild.rebuild()`; events only by the hooks and the deliverer in `outbox`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.crypto import blind_index, blind_index_candidates

from .exceptions import ReportingError
from .models import OutboxEvent, OutboxStatus, PartnerAPIKey, PartnerScope

KEY_ID_PREFIX = "pk_"
SECRET_PREFIX = "pks_"  # noqa: S105 (a prefix that makes leaked secrets easy to scan for)
SECRET_HASH_PURPOSE = "partner_api_secret"  # noqa: S105


@dataclass(frozen=True)
class IssuedPartnerKey:
    key: PartnerAPIKey
    secret: str = field(repr=False)


def secret_hash(key_id: str, secret: str) -> str:
    """The stored form of a secret: HMAC-SHA256 under the blind-index key, bound to the key."""
    return blind_index(SECRET_HASH_PURPOSE, f"{key_id}:{secret}")


def secret_matches(key: PartnerAPIKey, secret: str) -> bool:
    """Constant-time comparison against the hash under every configured blind-index key."""
    matched = False
    for candidate in blind_index_candidates(SECRET_HASH_PURPOSE, f"{key.key_id}:{secret}"):
        matched |= hmac.compare_digest(candidate.encode("ascii"), key.secret_hash.encode("ascii"))
    return matched


def partner_key_issue(
    *, partner: str, scopes: Iterable[str], expires_at: datetime, actor
) -> IssuedPartnerKey:
    """Issue client credentials to a partner system; the secret is returned once, only its
    keyed hash is stored. Expiry is mandatory (no eternal credentials). Audited."""
    partner = (partner or "").strip()
    if not partner:
        raise ReportingError("partner_key.partner_required", _("Name the partner system."))
    wanted = sorted(set(scopes or ()))
    if not wanted or any(s not in PartnerScope.values for s in wanted):
        raise ReportingError(
            "partner_key.bad_scopes", _("Choose known scopes."), detail={"scopes": wanted}
        )
    if expires_at is None or expires_at <= timezone.now():
        raise ReportingError(
            "partner_key.expiry_in_past", _("The expiry time must be in the future.")
        )
    key_id = KEY_ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        key = PartnerAPIKey.objects.create(
            key_id=key_id,
            partner=partner[:200],
            secret_hash=secret_hash(key_id, secret),
            scopes=wanted,
            expires_at=expires_at,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(
            action="partner_key.issued",
            category=AuditCategory.SECURITY,
            target=key,
            actor=actor,
            after={
                "key_id": key_id,
                "partner": key.partner,
                "scopes": wanted,
                "expires_at": expires_at.isoformat(),
            },
        )
    return IssuedPartnerKey(key=key, secret=secret)


def partner_key_revoke(*, key: PartnerAPIKey, actor, reason: str) -> PartnerAPIKey:
    """Revoke a partner key for good (refused from the next request on). Audited."""
    reason = (reason or "").strip()
    if not reason:
        raise ReportingError("partner_key.reason_required", _("A reason is required."))
    with transaction.atomic():
        locked = PartnerAPIKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is not None:
            raise ReportingError(
                "partner_key.already_revoked", _("This key is already revoked."), status_code=409
            )
        locked.revoked_at = timezone.now()
        locked.revoked_reason = reason[:300]
        locked.save(update_fields=["revoked_at", "revoked_reason", "updated_at"])
        audit_record(
            action="partner_key.revoked",
            category=AuditCategory.SECURITY,
            target=locked,
            actor=actor,
            reason=reason,
        )
    return locked


def outbox_replay(*, event_ids: Iterable[int], actor, reason: str = "") -> int:
    """Put dead-letter events back in the queue (attempts reset). Events not dead are left
    alone. Returns how many were replayed. Audited."""
    ids = sorted(set(event_ids))
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.select_for_update()
            .filter(pk__in=ids, status=OutboxStatus.DEAD)
            .order_by("pk")
        )
        if not events:
            return 0
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=OutboxStatus.PENDING, attempts=0, next_attempt_at=None
        )
        audit_record(
            action="outbox.replayed",
            category=AuditCategory.STATE,
            target_type="reporting.outboxevent",
            target_id=",".join(str(e.pk) for e in events)[:200],
            actor=actor,
            reason=reason,
            after={"events": len(events), "streams": sorted({e.stream for e in events})[:50]},
        )
    return len(events)
