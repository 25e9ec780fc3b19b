"""The push side of the government-app exchange (郑好办): outbox events and their delivery.

Events are written by the rollup hooks in the transaction of the change (`emit_*`): one per
rollup row that changed, carrying the row's new absolute figures and its `version` as the
sequence number of the row's stream. Aggregates only — no consumer, invoice number or name.

`outbox_deliver()` (a Celery task every minute, and a few seconds after any commit that wrote
events) POSTs pending events in `id` order, in batches, to `REPORTING_PUSH_URL`, signed as
`docs/integration.md` describes: HMAC-SHA256 under the shared secret over
`"{timestamp}\\n{nonce}\\n"` + the exact body bytes. A failed batch stops the run (order is kept)
and is retried with exponential back-off; after `REPORTING_PUSH_MAX_ATTEMPTS` its events go to
the dead-letter list, which officials replay from the admin. Every POST is in the delivery log.
Only one deliverer runs at a time (a PostgreSQL advisory lock).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal

import urllib3
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from apps.common.http import check_base_url
from apps.common.queries import insert_objects
from apps.common.queueing import queue_soon

from .models import DeliveryAttempt, OutboxEvent, OutboxStatus

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 7_310_010  # "reporting outbox" — any constant unique in this database
SCHEDULE_CACHE_KEY = "reporting:outbox:scheduled"
USER_AGENT = "lotteryinvoice-exchange/1"


def _setting(name: str, default):
    return getattr(settings, name, default)


def push_configured() -> bool:
    return bool(_setting("REPORTING_PUSH_URL", "")) and bool(_setting("REPORTING_PUSH_SECRET", ""))


def _money(value) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


# Campaign codes already at hand while one batch of events is built (id → code).
_known_codes: ContextVar[dict | None] = ContextVar("outbox_known_codes", default=None)


@contextmanager
def known_campaign_codes(codes: dict[int, str]):
    """While building a batch of events: campaign codes the caller already has, and a memo
    for the others (a campaign's code is read once per batch, not once per event)."""
    token = _known_codes.set(dict(codes))
    try:
        yield
    finally:
        _known_codes.reset(token)


def _campaign_code(campaign_id: int) -> str:
    if not campaign_id:
        return ""
    known = _known_codes.get()
    if known is not None and campaign_id in known:
        return known[campaign_id]
    from apps.invoices.caching import campaign_code

    code = campaign_code(campaign_id)
    if known is not None:
        known[campaign_id] = code
    return code


def _event(stream: str, seq: int, event_type: str, data: dict) -> OutboxEvent:
    return OutboxEvent(
        event_id=uuid.uuid4(),
        stream=stream,
        seq=seq,
        event_type=event_type,
        payload=data,
        occurred_at=timezone.now(),
    )


def emit_many(events: list[OutboxEvent]) -> None:
    """Write events (built by the `*_event` functions) in one statement, in list order."""
    if not events:
        return
    insert_objects(events)
    _schedule_delivery()


def _emit(stream: str, seq: int, event_type: str, data: dict) -> None:
    emit_many([_event(stream, seq, event_type, data)])


def _key(day, area_code: str, industry_code: str, campaign_id: int) -> dict:
    return {
        "day": day.isoformat() if hasattr(day, "isoformat") else str(day),
        "area_code": area_code,
        "industry_code": industry_code,
        "campaign": _campaign_code(campaign_id),
    }


def invoice_cell_event(*, cell: tuple, row: dict) -> OutboxEvent:
    data = _key(*cell)
    for name in (
        "submitted",
        "verified",
        "pending",
        "held",
        "accepted",
        "rejected",
        "reversed",
        "participants",
    ):
        data[name] = int(row[name])
    data["submitted_total"] = _money(row["submitted_total"])
    data["entered_total"] = _money(row["entered_total"])
    return _event(f"invoices/{row['id']}", int(row["version"]), "invoice_stats", data)


def emit_invoice_cell(*, cell: tuple, row: dict) -> None:
    emit_many([invoice_cell_event(cell=cell, row=row)])


def participants_event(*, day, campaign_id: int, row: tuple) -> OutboxEvent:
    row_id, participants, version = row
    data = {
        "day": day.isoformat() if hasattr(day, "isoformat") else str(day),
        "campaign": _campaign_code(campaign_id),
        "participants": int(participants),
    }
    return _event(f"participants/{row_id}", int(version), "participants", data)


def emit_participants(*, day, campaign_id: int, row: tuple) -> None:
    emit_many([participants_event(day=day, campaign_id=campaign_id, row=row)])


def award_cell_event(*, cell: tuple, row: dict) -> OutboxEvent:
    day, area, industry, campaign_id, source, kind, tier = cell
    data = _key(day, area, industry, campaign_id)
    data.update({"source": source, "kind": kind, "prize": tier})
    for name in ("awarded", "paid", "voided"):
        data[name] = int(row[name])
    for name in ("awarded_amount", "paid_net", "tax_withheld"):
        data[name] = _money(row[name])
    return _event(f"awards/{row['id']}", int(row["version"]), "award_stats", data)


def emit_award_cell(*, cell: tuple, row: dict) -> None:
    emit_many([award_cell_event(cell=cell, row=row)])


def _schedule_delivery() -> None:
    """After commit, ask for a delivery run in a few seconds (at most one request per window);
    the minute beat entry delivers anyway if this cannot be queued."""
    if not push_configured():
        return

    def enqueue():
        from .tasks import outbox_deliver_task

        queue_soon(
            outbox_deliver_task,
            countdown=_setting("REPORTING_PUSH_DEBOUNCE_SECONDS", 3),
            once_key=SCHEDULE_CACHE_KEY,
            what="an outbox delivery run",
        )

    transaction.on_commit(enqueue)


# --- Signing ---------------------------------------------------------------------------------


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over `"{timestamp}\\n{nonce}\\n"` followed by the exact body bytes."""
    message = f"{timestamp}\n{nonce}\n".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _body(events: list[OutboxEvent]) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "id": str(e.event_id),
                    "stream": e.stream,
                    "seq": e.seq,
                    "type": e.event_type,
                    "occurred_at": e.occurred_at.isoformat(),
                    "data": e.payload,
                }
                for e in events
            ]
        },
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")


def backoff(attempts: int) -> timedelta:
    """Seconds before retry number `attempts`: base × 2^(attempts−1), capped."""
    base = float(_setting("REPORTING_PUSH_BACKOFF_SECONDS", 10))
    cap = float(_setting("REPORTING_PUSH_BACKOFF_MAX_SECONDS", 900))
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _post(body: bytes) -> tuple[int | None, str, str]:
    """POST one batch; returns (HTTP status or None, error token, nonce)."""
    url = check_base_url(_setting("REPORTING_PUSH_URL", ""), setting="REPORTING_PUSH_URL")
    secret = _setting("REPORTING_PUSH_SECRET", "")
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Exchange-Key": _setting("REPORTING_PUSH_KEY_ID", "lotteryinvoice"),
        "X-Exchange-Timestamp": timestamp,
        "X-Exchange-Nonce": nonce,
        "X-Exchange-Signature": signature(secret, timestamp, nonce, body),
    }
    timeout = float(_setting("REPORTING_PUSH_TIMEOUT", 5.0))
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(timeout, timeout))
    try:
        reply = http.request("POST", url, body=body, headers=headers, preload_content=True)
    except urllib3.exceptions.TimeoutError:
        return None, "timeout", nonce
    except urllib3.exceptions.HTTPError:
        return None, "connection_error", nonce
    finally:
        http.clear()
    if 200 <= reply.status < 300:
        return reply.status, "", nonce
    return reply.status, f"http_{reply.status}", nonce


def _try_lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _deliver_one_batch(now) -> str:
    """Send the oldest pending batch. Returns "sent", "failed", "empty", "waiting" or "busy"."""
    batch_size = int(_setting("REPORTING_PUSH_BATCH", 100))
    max_attempts = int(_setting("REPORTING_PUSH_MAX_ATTEMPTS", 12))
    with transaction.atomic():
        if not _try_lock():
            return "busy"
        events = list(
            OutboxEvent.objects.filter(status=OutboxStatus.PENDING).order_by("id")[:batch_size]
        )
        if not events:
            return "empty"
        head = events[0]
        if head.next_attempt_at is not None and head.next_attempt_at > now:
            return "waiting"
        # Retried events travel alone until they get through: a failing batch is never mixed
        # with events that have not failed yet, so back-off and dead-lettering stay per batch.
        if head.attempts:
            events = [e for e in events if e.attempts == head.attempts][:batch_size]
        body = _body(events)
        started = time.monotonic()
        status, error, nonce = _post(body)
        ids = [e.pk for e in events]
        DeliveryAttempt.objects.create(
            started_at=now,
            event_count=len(events),
            first_event=ids[0],
            last_event=ids[-1],
            nonce=nonce,
            http_status=status,
            ok=not error,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        if not error:
            OutboxEvent.objects.filter(pk__in=ids).update(
                status=OutboxStatus.DELIVERED, delivered_at=timezone.now(), last_error=""
            )
            return "sent"
        attempts = head.attempts + 1
        if attempts >= max_attempts:
            OutboxEvent.objects.filter(pk__in=ids).update(
                status=OutboxStatus.DEAD, attempts=attempts, last_error=error, next_attempt_at=None
            )
            logger.warning("outbox: %d events moved to the dead-letter list (%s)", len(ids), error)
        else:
            OutboxEvent.objects.filter(pk__in=ids).update(
                attempts=attempts, last_error=error, next_attempt_at=now + backoff(attempts)
            )
        return "failed"


def outbox_deliver(*, max_batches: int = 50) -> dict[str, int]:
    """Deliver pending events in order until none is due, a batch fails or the cap is hit."""
    result = {"batches": 0, "failed": 0}
    if not push_configured():
        return result
    try:
        cache.delete(SCHEDULE_CACHE_KEY)
    except Exception:  # the cache is an optimisation only
        logger.debug("outbox: cache unavailable")
    for _ in range(max_batches):
        outcome = _deliver_one_batch(timezone.now())
        if outcome == "sent":
            result["batches"] += 1
            continue
        if outcome == "failed":
            result["failed"] += 1
        break
    return result
