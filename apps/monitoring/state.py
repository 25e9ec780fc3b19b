"""What the request path needs to know, kept in the cache so that a request costs one cache
read: the rules' live settings and the blocks in force (suspended keys, blocked addresses).

The database is the source of truth; the cache copy lives `STATE_TTL_SECONDS` and is dropped
whenever a rule or a response changes (after commit).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import time
from dataclasses import asdict, dataclass

from django.core.cache import cache
from django.db import transaction

from .choices import ResponseKind, ResponseStatus
from .definitions import DEFINITIONS

logger = logging.getLogger(__name__)

STATE_KEY = "monitoring:state:v1"
STATE_TTL_SECONDS = 60
# A consumer run reads the state once and pins it for all the events of the run.
_pinned: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "monitoring_state", default=None
)


@dataclass(frozen=True)
class RuleSettings:
    code: str
    enabled: bool
    severity: str
    threshold: int
    window_minutes: int
    params: dict
    response: str
    notify: bool

    def param(self, name: str):
        value = (self.params or {}).get(name)
        return DEFINITIONS[self.code].params.get(name) if value is None else value

    @property
    def window_seconds(self) -> int:
        return max(60, self.window_minutes * 60)


def ensure_rules() -> None:
    """Create the row of every defined rule that has none yet, with its defaults."""
    from .models import MonitoringRule

    MonitoringRule.objects.bulk_create(
        [
            MonitoringRule(
                code=d.code,
                severity=d.severity,
                threshold=d.threshold,
                window_minutes=d.window_minutes,
                params=dict(d.params),
                response=d.response,
            )
            for d in DEFINITIONS.values()
        ],
        ignore_conflicts=True,
    )


def _load() -> dict:
    from .models import AutomaticResponse, MonitoringRule

    if MonitoringRule.objects.count() < len(DEFINITIONS):
        ensure_rules()
    rules = {
        r.code: asdict(
            RuleSettings(
                code=r.code,
                enabled=r.enabled,
                severity=r.severity,
                threshold=r.threshold,
                window_minutes=r.window_minutes,
                params=r.params or {},
                response=r.response,
                notify=r.notify,
            )
        )
        for r in MonitoringRule.objects.all()
    }
    now = time.time()
    blocked_ips: dict[str, float] = {}
    suspended_keys: list[str] = []
    for kind, target, expires in AutomaticResponse.objects.filter(
        status=ResponseStatus.ACTIVE, kind__in=[ResponseKind.BLOCK_SOURCE, ResponseKind.SUSPEND_KEY]
    ).values_list("kind", "target_id", "expires_at"):
        if kind == ResponseKind.SUSPEND_KEY:
            suspended_keys.append(target)
        elif expires is None or expires.timestamp() > now:
            until = expires.timestamp() if expires else now + 365 * 86400
            blocked_ips[target] = max(until, blocked_ips.get(target, 0))
    return {"rules": rules, "blocked_ips": blocked_ips, "suspended_keys": suspended_keys}


def current() -> dict:
    """The cached state; on a miss (or a cache outage) it is read from the database."""
    pinned = _pinned.get()
    if pinned is not None:
        return pinned
    try:
        state = cache.get(STATE_KEY)
    except Exception:  # the cache is down: monitoring must not take requests down with it
        logger.warning("monitoring state cache unavailable", exc_info=True)
        state = None
    if state is None:
        state = _load()
        try:
            cache.set(STATE_KEY, state, STATE_TTL_SECONDS)
        except Exception:
            logger.warning("monitoring state cache unavailable", exc_info=True)
    return state


@contextlib.contextmanager
def pinned():
    """Within the block, every read of the state returns the same snapshot (one cache read)."""
    token = _pinned.set(current())
    try:
        yield
    finally:
        _pinned.reset(token)


def rule(code: str) -> RuleSettings:
    return RuleSettings(**current()["rules"][code])


def invalidate() -> None:
    """Drop the cached state after the current transaction commits."""

    def drop():
        try:
            cache.delete(STATE_KEY)
        except Exception:
            logger.warning("monitoring state cache unavailable", exc_info=True)

    transaction.on_commit(drop)


def network_of(ip: str, *, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str:
    """The network an address belongs to for the "new network" rules (`203.0.113.0/24`)."""
    address = ipaddress.ip_address(ip)
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
