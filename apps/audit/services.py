"""Writing and verifying the audit trail (see the invariants in `apps.audit.models`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from . import context
from .models import AuditCategory, AuditChainHead, AuditEvent, AuditOutcome

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "seq",
    "at",
    "category",
    "action",
    "outcome",
    "actor_id",
    "actor_username",
    "ip",
    "request_id",
    "target_type",
    "target_id",
    "target_repr",
    "before",
    "after",
    "reason",
)


def _key() -> bytes:
    return base64.b64decode(settings.AUDIT_HMAC_KEY)


def _jsonable(value: Any) -> Any:
    """What a JSON column gives back: Decimals, dates and UUIDs become strings."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def canonical(event: AuditEvent) -> bytes:
    record = {name: getattr(event, name) for name in CHAINED_FIELDS}
    record["at"] = event.at.astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_value(previous: str, event: AuditEvent) -> str:
    return hmac.new(_key(), previous.encode("ascii") + canonical(event), hashlib.sha256).hexdigest()


def _target_fields(target: models.Model | None) -> dict[str, str]:
    if target is None:
        return {}
    return {
        "target_type": target._meta.label_lower,
        "target_id": str(target.pk),
        "target_repr": str(target)[:200],
    }


def _locked_head() -> AuditChainHead:
    """Lock the chain head, creating it first if a database flush removed it."""
    try:
        return AuditChainHead.objects.select_for_update().get(pk=1)
    except AuditChainHead.DoesNotExist:
        AuditChainHead.objects.bulk_create([AuditChainHead(pk=1)], ignore_conflicts=True)
        return AuditChainHead.objects.select_for_update().get(pk=1)


def audit_record(
    *,
    action: str,
    category: str = AuditCategory.STATE,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    outcome: str = AuditOutcome.SUCCESS,
    actor=None,
) -> AuditEvent:
    """Append one record to the chain, in the caller's transaction.

    Call it last in a service's transaction: the chain head stays locked until commit, which is
    what makes `seq` gapless and the chain linear.
    """
    ctx = context.current()
    if actor is not None and getattr(actor, "is_authenticated", False):
        actor_id, actor_username = actor.pk, actor.get_username()
    else:
        actor_id, actor_username = ctx.actor_id, ctx.actor_username
    with transaction.atomic():
        head = _locked_head()
        event = AuditEvent(
            seq=head.seq + 1,
            at=timezone.now(),
            category=category,
            action=action,
            outcome=outcome,
            actor_id=actor_id,
            actor_username=actor_username,
            ip=ctx.ip,
            request_id=ctx.request_id,
            before=_jsonable(before),
            after=_jsonable(after),
            reason=reason[:500],
            **{
                "target_type": target_type,
                "target_id": str(target_id),
                "target_repr": target_repr[:200],
                **_target_fields(target),
            },
        )
        event.chain = chain_value(head.chain, event)
        event.save(force_insert=True)
        head.seq, head.chain = event.seq, event.chain
        head.save(update_fields=["seq", "chain"])
    # Abnormal-behaviour monitoring reads the trail after commit (apps.monitoring.hooks).
    transaction.on_commit(_monitoring_hook, robust=True)
    return event


def _monitoring_hook() -> None:
    from apps.monitoring.hooks import audit_committed

    audit_committed()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str = ""
    seq: int | None = None


def _events(batch_size: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:batch_size])
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def audit_verify(*, batch_size: int = 5000) -> VerifyResult:
    """Walk the whole chain; report the first edited, missing or inserted record."""
    previous, expected_seq, checked = GENESIS, 1, 0
    for event in _events(batch_size):
        if event.seq != expected_seq:
            return VerifyResult(
                False,
                checked,
                f"record #{expected_seq} is missing (next is #{event.seq})",
                expected_seq,
            )
        if not hmac.compare_digest(chain_value(previous, event), event.chain):
            return VerifyResult(
                False, checked, f"record #{event.seq} was altered or inserted", event.seq
            )
        previous, expected_seq, checked = event.chain, expected_seq + 1, checked + 1
    head = AuditChainHead.objects.filter(pk=1).first() or AuditChainHead(pk=1)
    if head.seq != expected_seq - 1 or head.chain != previous:
        return VerifyResult(
            False,
            checked,
            f"the trail ends at #{expected_seq - 1} but the head records #{head.seq}",
            expected_seq,
        )
    return VerifyResult(True, checked)
