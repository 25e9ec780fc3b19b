"""The one hook in the audit trail: after a transaction that appended audit records commits,
make sure a consumer run is queued.

Cost on the request: one `cache.add` (a flag that lives `PENDING_TTL_SECONDS`) and, when the
flag was not already set, one `delay()` of the consumer task. The task clears the flag before
it reads, so an event committed after the read queues a new run; the beat job
(`housekeeping`, every minute) catches anything a lost task missed.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

PENDING_KEY = "monitoring:stream:pending"
PENDING_TTL_SECONDS = 30


def audit_committed() -> None:
    from celery import current_task

    if current_task and current_task.request.is_eager:
        # Eager mode (the embedded default, tests): a task must not start another one
        # synchronously; the next trigger or the beat job reads these events.
        return
    try:
        if not cache.add(PENDING_KEY, 1, PENDING_TTL_SECONDS):
            return
        from .tasks import events_process

        events_process.delay()
    except Exception:  # monitoring never breaks the request that was audited
        logger.exception("could not queue the monitoring stream consumer")


def clear_pending() -> None:
    try:
        cache.delete(PENDING_KEY)
    except Exception:
        logger.warning("monitoring pending flag not cleared", exc_info=True)
