"""Asking Celery for a run soon after a commit: at most once per window, never failing callers."""

from __future__ import annotations

import logging
import math

from django.core.cache import cache

logger = logging.getLogger(__name__)


def queue_soon(task, *, countdown: float, what: str, once_key: str | None = None) -> None:
    """Queue `task` to run `countdown` seconds from now. With `once_key`: only if no run was
    asked for under that key within the last `countdown` seconds (`cache.add`, so across
    processes; the task may delete the key when it starts). A broker or cache that cannot be
    reached is logged, not raised: every caller has a beat entry that runs the task anyway."""
    try:
        if once_key is None or cache.add(once_key, 1, timeout=max(1, math.ceil(countdown))):
            task.apply_async(countdown=countdown)
    except Exception:
        logger.exception("could not queue %s; the beat entry will run it", what)
