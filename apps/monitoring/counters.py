"""The rules that count on the request path, in the cache (Redis in production).

Counts live in fixed windows (`bucket = now // window`), so a counter is one `INCR` and
disappears with its window. A threshold is crossed exactly once per window (the count passes it
by one), which is when the alert is raised: at once for the rules that block (failed sign-ins,
SMS-code requests), through a Celery task for the others.
"""

from __future__ import annotations

import logging
import math
import re
import time
from decimal import Decimal
from functools import partial

from django.core.cache import cache
from django.db import transaction

from apps.common import crypto

from . import state
from .choices import RuleCode

logger = logging.getLogger(__name__)

PREFIX = "monitoring:c:"
# The last numeric path segment and what surrounds it (`/admin/x/alert/42/detail/`).
_NUMERIC_ID = re.compile(r"^(?P<base>.*/)(?P<id>[0-9]{1,18})(?P<rest>/[^0-9]*)?$")


def _incr(key: str, ttl: int) -> int:
    try:
        return cache.incr(key)
    except ValueError:  # first hit of the window (a race just loses one count)
        if cache.add(key, 1, ttl):
            return 1
        return cache.incr(key)


def bump(rule: state.RuleSettings, subject: str, *, now: float | None = None) -> int:
    """Count one occurrence for `subject` in the rule's current window; return the count."""
    now = time.time() if now is None else now
    window = rule.window_seconds
    return _incr(f"{PREFIX}{rule.code}:{subject}:{int(now // window)}", window + 5)


def bump_distinct(
    rule: state.RuleSettings, subject: str, member: str, *, now: float | None = None
) -> int:
    """Count `member` once per window for `subject`; return how many different members were
    seen (0 when this member was already counted)."""
    now = time.time() if now is None else now
    window = rule.window_seconds
    bucket = int(now // window)
    if not cache.add(f"{PREFIX}{rule.code}:{subject}:{bucket}:m:{member}", 1, window + 5):
        return 0
    return _incr(f"{PREFIX}{rule.code}:{subject}:{bucket}", window + 5)


def fingerprint(purpose: str, value: str) -> str:
    """A keyed hash of an identifier (login name, phone): counted, never stored in clear."""
    return crypto.blind_index(f"monitoring_{purpose}", value.strip().lower())[:20]


def _later(task, **kwargs) -> None:
    """Queue a task once the request's transaction (if any) has committed: the request itself
    never waits for the rule's database work."""
    transaction.on_commit(partial(task.delay, **kwargs), robust=True)


def _raise(rule: state.RuleSettings, *, blocking: bool, **kwargs) -> None:
    from . import services, tasks

    if blocking:
        services.counter_alert_raise(rule_code=rule.code, **kwargs)
    else:
        _later(tasks.counter_alert, rule_code=rule.code, **kwargs)


def failed_login(*, ip: str | None, login: str, actor_hint: str = "") -> None:
    """A failed sign-in: count distinct attempted logins per source address."""
    rule = state.rule(RuleCode.FAILED_LOGIN_BURST)
    if not rule.enabled or not ip or not login:
        return
    if bump_distinct(rule, ip, fingerprint("login", login)) == rule.threshold:
        _raise(
            rule,
            blocking=True,
            subject_type="ip",
            subject_id=ip,
            source_ip=ip,
            count=rule.threshold,
            details={"distinct_logins": rule.threshold},
        )


def sms_code_request(*, ip: str | None, phone: str) -> None:
    """A sign-in code request: count distinct phones per source address."""
    rule = state.rule(RuleCode.SMS_CODE_BURST)
    if not rule.enabled or not ip or not phone:
        return
    digits = "".join(ch for ch in phone if ch.isdigit())[-11:]
    if bump_distinct(rule, ip, fingerprint("phone", digits)) == rule.threshold:
        _raise(
            rule,
            blocking=True,
            subject_type="ip",
            subject_id=ip,
            source_ip=ip,
            count=rule.threshold,
            details={"distinct_phones": rule.threshold},
        )


def permission_denied(*, user, ip: str | None, path: str) -> None:
    rule = state.rule(RuleCode.PERMISSION_DENIED)
    if not rule.enabled:
        return
    if bump(rule, str(user.pk)) == rule.threshold:
        _raise(
            rule,
            blocking=False,
            subject_type="user",
            subject_id=str(user.pk),
            subject_repr=user.get_username(),
            source_ip=ip,
            count=rule.threshold,
            details={"last_path": path[:200]},
        )


def not_found_or_refused(*, ip: str | None, path: str, status: int, actor: str = "") -> None:
    """A 404 (or a 403/404 on a numeric ID): enumeration counters per source address."""
    rule = state.rule(RuleCode.ENUMERATION)
    if not rule.enabled or not ip:
        return
    fired = False
    if status == 404 and bump(rule, f"{ip}:404") == rule.threshold:
        fired = True
        reason = "not_found"
    match = _NUMERIC_ID.match(path)
    if match and not fired:
        last_key = f"{PREFIX}{rule.code}:{ip}:last:{match['base']}#{match['rest'] or ''}"
        current_id = int(match["id"])
        last = cache.get(last_key)
        cache.set(last_key, current_id, rule.window_seconds)
        sequential = last is not None and abs(current_id - int(last)) == 1
        if sequential and bump(rule, f"{ip}:seq") == int(rule.param("sequential_threshold")):
            fired = True
            reason = "sequential_ids"
    if fired:
        _raise(
            rule,
            blocking=False,
            subject_type="ip",
            subject_id=ip,
            source_ip=ip,
            count=rule.threshold,
            details={"pattern": reason, "last_path": path[:200], "actor": actor},
        )


def merchant_key_used(*, key_id: str, ip: str | None, now: float | None = None) -> None:
    """A merchant API request that authenticated: new-network and rate checks."""
    from . import tasks

    st = state.current()["rules"]
    net_rule = state.RuleSettings(**st[RuleCode.KEY_NEW_NETWORK])
    rate_rule = state.RuleSettings(**st[RuleCode.KEY_RATE])
    now = time.time() if now is None else now
    if net_rule.enabled and ip:
        network = state.network_of(
            ip,
            ipv4_prefix=int(net_rule.param("ipv4_prefix")),
            ipv6_prefix=int(net_rule.param("ipv6_prefix")),
        )
        seen_key = f"{PREFIX}keynet:{key_id}:{network}"
        if cache.get(seen_key) is None:
            cache.set(seen_key, 1, 86400)
            _later(tasks.key_network_observe, key_id=key_id, network=network, ip=ip)
    if not rate_rule.enabled:
        return
    minute = int(now // 60)
    count = _incr(f"{PREFIX}keyrate:{key_id}:{minute}", 180)
    if count == 1:
        _later(tasks.key_rate_fold, key_id=key_id, minute=minute - 1)
    min_requests = int(rate_rule.param("min_requests") or 30)
    if count < min(min_requests, rate_rule.threshold):
        return
    limit = rate_rule.threshold
    baseline = cache.get(f"{PREFIX}keybase:{key_id}")
    if baseline is not None and baseline["samples"] >= int(rate_rule.param("min_samples")):
        multiplier = Decimal(str(rate_rule.param("multiplier")))
        usual = math.ceil(Decimal(baseline["per_minute"]) * multiplier)
        limit = min(limit, max(min_requests, usual))
    if count >= limit and cache.add(f"{PREFIX}keyrate:fired:{key_id}:{minute}", 1, 120):
        _raise(
            rate_rule,
            blocking=False,
            subject_type="merchant_key",
            subject_id=key_id,
            source_ip=ip,
            count=count,
            details={"requests_this_minute": count, "limit": limit, "baseline": baseline},
        )


def minute_count(key_id: str, minute: int) -> int | None:
    return cache.get(f"{PREFIX}keyrate:{key_id}:{minute}")


def set_baseline(key_id: str, per_minute: str, samples: int) -> None:
    cache.set(f"{PREFIX}keybase:{key_id}", {"per_minute": per_minute, "samples": samples}, 86400)
