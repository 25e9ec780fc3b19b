"""The real-time rules of the submission pipeline's risk hook, and their cached configuration.

Budget: a few indexed queries per submission (well under 5 ms median; `bench/risk_realtime.py`).
- one read of the consumer's submissions of the last `LOOKBACK_DAYS` (index consumer + time):
  consumer velocity, split purchases, insider timing, round-amount bursts;
- one aggregate over the device's submissions (partial index device + time);
- one read of the consumer's payout accounts and who else uses them (blind-index index);
- one watch-list lookup by value (partial index on active entries);
- one baseline row and one count for the seller (index merchant + time).

The configuration (weights, thresholds, decision scores) is read from the cache under a
generation stamp (`apps.invoices.caching.read_through`); every change through `services`
replaces the generation (in and after the transaction), so the next submission reads the new
values, and a copy read just before a change and stored just after it is never served. Every
rule evaluates "as of" a moment `at`, so the evaluation harness can replay history through
exactly this code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

from django.core.cache import cache
from django.db.models import Count, Q

from .choices import ListKind, RiskAction, RuleCode

CONFIG_CACHE_KEY = "risk:config:v2"  # (generation, RiskConfig)
CONFIG_GENERATION_KEY = "risk:config:gen"
CONFIG_CACHE_SECONDS = 300  # (the configuration cache's expiry, INVOICE_CONFIG_CACHE_SECONDS)
LOOKBACK_DAYS = 7
MAX_RECENT_ROWS = 300

# Each rule's default points and thresholds. Staff change them in the admin (`RiskRule` rows
# override these); a parameter's type is the type of its default here.
RULE_DEFAULTS: dict[str, tuple[int, dict[str, Any]]] = {
    RuleCode.BLACKLIST: (1000, {}),
    RuleCode.SELLER_STAFF: (100, {}),
    RuleCode.CONSUMER_VELOCITY: (30, {"window_minutes": 10, "max_submissions": 4}),
    RuleCode.DEVICE_VELOCITY: (40, {"window_minutes": 60, "max_submissions": 8}),
    RuleCode.SHARED_DEVICE: (60, {"days": 30, "max_other_consumers": 1}),
    RuleCode.SHARED_ACCOUNT: (60, {"max_other_consumers": 0}),
    RuleCode.SPLIT_PURCHASE: (60, {"window_minutes": 30, "band_percent": 20, "min_related": 1}),
    RuleCode.INSIDER_TIMING: (
        60,
        {"seconds": 120, "days": 7, "min_repeats": 1, "single_points": 5},
    ),
    RuleCode.ROUND_BURST: (30, {"hours": 24, "unit": 50, "min_count": 3}),
    RuleCode.SELLER_SURGE: (60, {"factor": 4, "min_count": 20, "min_repeats": 2}),
}
DEFAULT_HOLD, DEFAULT_BLOCK = 50, 150


@dataclass(frozen=True)
class RuleConfig:
    enabled: bool
    weight: int
    params: dict[str, Any]


@dataclass(frozen=True)
class RiskConfig:
    rules: dict[str, RuleConfig]
    hold_score: int
    block_score: int

    def rule(self, code: str) -> RuleConfig | None:
        rule = self.rules.get(code)
        return rule if rule is not None and rule.enabled else None


def clean_params(code: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The rule's parameters with defaults filled in and every value of its declared type and
    not negative. Unknown keys are refused. Raises ValueError with the offending key."""
    defaults = RULE_DEFAULTS[code][1]
    params = dict(params or {})
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(sorted(unknown)[0])
    cleaned = {}
    for key, default in defaults.items():
        value = params.get(key, default)
        try:
            value = type(default)(value)
        except (TypeError, ValueError):
            raise ValueError(key) from None
        if value < 0:
            raise ValueError(key)
        cleaned[key] = value
    return cleaned


def load_config() -> RiskConfig:
    """The configuration from the database (rows over code defaults)."""
    from .models import RiskRule, RiskSettings

    rules = {code: RuleConfig(True, weight, dict(p)) for code, (weight, p) in RULE_DEFAULTS.items()}
    for row in RiskRule.objects.all():
        if row.code in RULE_DEFAULTS:
            try:
                params = clean_params(row.code, row.params)
            except ValueError:
                params = dict(RULE_DEFAULTS[row.code][1])
            rules[row.code] = RuleConfig(row.enabled, row.weight, params)
    settings_row = RiskSettings.objects.order_by("pk").first()
    hold = settings_row.hold_score if settings_row else DEFAULT_HOLD
    block = settings_row.block_score if settings_row else DEFAULT_BLOCK
    return RiskConfig(rules, hold, block)


def current_config() -> RiskConfig:
    from apps.invoices.caching import read_through

    return read_through(CONFIG_GENERATION_KEY, CONFIG_CACHE_KEY, load_config)


def invalidate_config() -> None:
    """A new generation: every copy read before now is void (`services` calls this in the
    changing transaction and again after its commit)."""
    cache.set(CONFIG_GENERATION_KEY, uuid4().hex, None)


@dataclass(frozen=True)
class Submission:
    """What the rules look at: who submits which invoice from where, and when."""

    consumer_id: int
    consumer_public_id: str
    seller_uscc: str
    merchant_id: int | None
    total: Decimal
    issued_at: datetime | None
    at: datetime
    min_total: Decimal
    device_hash: str = ""
    exclude_invoice_id: int | None = None


@dataclass
class Hit:
    rule: str
    points: int
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "points": self.points, "detail": self.detail}

    def reason(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"{self.rule}(+{self.points}{': ' + shown if shown else ''})"


@dataclass(frozen=True)
class Facts:
    """Everything the rules read about one submission, fetched in one go."""

    recent: list[tuple]  # (submitted_at, seller_uscc, total, issued_at, status), newest first
    device_others: int
    device_recent: int
    account_indexes: list[str]
    account_others: int
    watch: list[tuple[str, str, str]]  # (kind, value, merchant_uscc) of matching entries
    seller_daily_mean: Decimal
    seller_24h: int


@dataclass(frozen=True)
class _Windows:
    recent_since: datetime
    device_since: datetime
    device_recent_since: datetime
    seller_since: datetime


def _windows(config: RiskConfig, sub: Submission) -> _Windows:
    shared, velocity = config.rule(RuleCode.SHARED_DEVICE), config.rule(RuleCode.DEVICE_VELOCITY)
    days = shared.params["days"] if shared else 1
    minutes = velocity.params["window_minutes"] if velocity else 0
    return _Windows(
        recent_since=sub.at - timedelta(days=LOOKBACK_DAYS),
        device_since=sub.at - timedelta(days=days),
        device_recent_since=sub.at - timedelta(minutes=minutes),
        seller_since=sub.at - timedelta(days=1),
    )


def _watch_values(sub: Submission) -> list[str]:
    return [v for v in (sub.consumer_public_id, sub.seller_uscc, sub.device_hash) if v]


FACTS_SQL = """
SELECT r.ts, r.sellers, r.totals, r.issued, r.statuses,
       d.others, d.recent, a0.idx, coalesce(a.others, 0), w.hits,
       (SELECT daily_mean FROM {baseline} WHERE merchant_id = %(m)s),
       CASE WHEN %(m)s IS NULL THEN 0 ELSE (
           SELECT count(*) FROM {invoice}
           WHERE merchant_id = %(m)s AND submitted_at >= %(seller_since)s
             AND submitted_at < %(at)s AND id <> %(ex)s) END
FROM (
    SELECT array_agg(submitted_at) AS ts, array_agg(seller_uscc) AS sellers,
           array_agg(total) AS totals, array_agg(issued_at) AS issued,
           array_agg(status) AS statuses
    FROM (SELECT submitted_at, seller_uscc, total, issued_at, status FROM {invoice}
          WHERE consumer_id = %(c)s AND submitted_at >= %(recent_since)s
            AND submitted_at < %(at)s AND id <> %(ex)s
          ORDER BY submitted_at DESC LIMIT {limit}) x
) r,
LATERAL (
    SELECT count(DISTINCT consumer_id) FILTER (WHERE consumer_id <> %(c)s) AS others,
           count(*) FILTER (WHERE submitted_at >= %(device_recent_since)s) AS recent
    FROM {invoice}
    WHERE %(dev)s <> '' AND device_hash = %(dev)s AND submitted_at >= %(device_since)s
      AND submitted_at < %(at)s AND id <> %(ex)s
) d,
LATERAL (
    SELECT coalesce(array_agg(account_no_index), '{{}}') AS idx FROM {account}
    WHERE consumer_id = %(c)s AND account_no_index IS NOT NULL
) a0,
LATERAL (
    SELECT count(DISTINCT consumer_id) AS others FROM {account}
    WHERE cardinality(a0.idx) > 0 AND account_no_index = ANY(a0.idx)
      AND consumer_id <> %(c)s
      -- `+ interval '0'`: keep the planner on the account-number index (an array it cannot
      -- see at plan time otherwise makes it intersect with the whole created_at index).
      AND created_at + interval '0 seconds' < %(at)s
) a,
LATERAL (
    SELECT array_agg(ARRAY[kind, value, merchant_uscc]) AS hits FROM {watch}
    WHERE active AND (value = ANY(%(values)s) OR value = ANY(a0.idx))
) w
"""


def _facts_sql(sub: Submission, win: _Windows) -> Facts:
    from apps.common.queries import fetch_one
    from apps.invoices.models import Invoice
    from apps.prizes.models import PayoutAccount

    from .models import MerchantBaseline, WatchEntry

    sql = FACTS_SQL.format(
        invoice=Invoice._meta.db_table,
        account=PayoutAccount._meta.db_table,
        watch=WatchEntry._meta.db_table,
        baseline=MerchantBaseline._meta.db_table,
        limit=MAX_RECENT_ROWS,
    )
    params = {
        "c": sub.consumer_id,
        "m": sub.merchant_id,
        "at": sub.at,
        "ex": sub.exclude_invoice_id or 0,
        "dev": sub.device_hash,
        "values": _watch_values(sub),
        "recent_since": win.recent_since,
        "device_since": win.device_since,
        "device_recent_since": win.device_recent_since,
        "seller_since": win.seller_since,
    }
    row = fetch_one(sql, params)  # with any read queued to travel along (`read_ahead`)
    ts, sellers, totals, issued, statuses = (row[i] or [] for i in range(5))
    return Facts(
        recent=list(zip(ts, sellers, totals, issued, statuses, strict=True)),
        device_others=row[5] or 0,
        device_recent=row[6] or 0,
        account_indexes=list(row[7] or []),
        account_others=row[8] or 0,
        watch=[tuple(hit) for hit in (row[9] or [])],
        seller_daily_mean=row[10] or Decimal("0"),
        seller_24h=row[11] or 0,
    )


def _facts_orm(sub: Submission, win: _Windows) -> Facts:
    """The same facts through the ORM (the embedded SQLite default)."""
    from apps.invoices.models import Invoice
    from apps.prizes.models import PayoutAccount

    from .models import MerchantBaseline, WatchEntry

    def excluding(queryset):
        return queryset.exclude(pk=sub.exclude_invoice_id) if sub.exclude_invoice_id else queryset

    recent = list(
        excluding(
            Invoice.objects.filter(
                consumer_id=sub.consumer_id,
                submitted_at__gte=win.recent_since,
                submitted_at__lt=sub.at,
            )
        )
        .order_by("-submitted_at")
        .values_list("submitted_at", "seller_uscc", "total", "issued_at", "status")[
            :MAX_RECENT_ROWS
        ]
    )
    device = {"others": 0, "recent": 0}
    if sub.device_hash:
        device = excluding(
            Invoice.objects.filter(
                device_hash=sub.device_hash,
                submitted_at__gte=win.device_since,
                submitted_at__lt=sub.at,
            )
        ).aggregate(
            others=Count("consumer_id", distinct=True, filter=~Q(consumer_id=sub.consumer_id)),
            recent=Count("pk", filter=Q(submitted_at__gte=win.device_recent_since)),
        )
    indexes = [
        i
        for i in PayoutAccount.objects.filter(consumer_id=sub.consumer_id).values_list(
            "account_no_index", flat=True
        )
        if i
    ]
    others = 0
    if indexes:
        others = (
            PayoutAccount.objects.filter(account_no_index__in=indexes, created_at__lt=sub.at)
            .exclude(consumer_id=sub.consumer_id)
            .values("consumer_id")
            .distinct()
            .count()
        )
    watch = list(
        WatchEntry.objects.filter(
            active=True, value__in=[*_watch_values(sub), *indexes]
        ).values_list("kind", "value", "merchant_uscc")
    )
    mean, count = Decimal("0"), 0
    if sub.merchant_id is not None:
        mean = (
            MerchantBaseline.objects.filter(merchant_id=sub.merchant_id)
            .values_list("daily_mean", flat=True)
            .first()
        ) or Decimal("0")
        count = excluding(
            Invoice.objects.filter(
                merchant_id=sub.merchant_id,
                submitted_at__gte=win.seller_since,
                submitted_at__lt=sub.at,
            )
        ).count()
    return Facts(
        recent=recent,
        device_others=device["others"] or 0,
        device_recent=device["recent"] or 0,
        account_indexes=indexes,
        account_others=others,
        watch=watch,
        seller_daily_mean=mean,
        seller_24h=count,
    )


def fetch_facts(sub: Submission, config: RiskConfig) -> Facts:
    from django.db import connection

    win = _windows(config, sub)
    if connection.vendor == "postgresql":
        return _facts_sql(sub, win)
    return _facts_orm(sub, win)


def _watch_hits(config: RiskConfig, sub: Submission, facts: Facts) -> list[Hit]:
    hits: list[Hit] = []
    blacklist, staff = config.rule(RuleCode.BLACKLIST), config.rule(RuleCode.SELLER_STAFF)
    expected = {
        ListKind.MERCHANT: sub.seller_uscc,
        ListKind.CONSUMER: sub.consumer_public_id,
        ListKind.DEVICE: sub.device_hash,
    }
    for kind, value, merchant_uscc in facts.watch:
        if kind == ListKind.SELLER_STAFF:
            if staff and value == sub.consumer_public_id and merchant_uscc == sub.seller_uscc:
                hits.append(Hit(RuleCode.SELLER_STAFF, staff.weight, {}))
        elif blacklist and (
            (kind == ListKind.ACCOUNT and value in facts.account_indexes)
            or (kind in expected and expected[kind] == value)
        ):
            hits.append(Hit(RuleCode.BLACKLIST, blacklist.weight, {"list": kind}))
    return hits[:3]


def _recent_rules(config: RiskConfig, sub: Submission, facts: Facts) -> list[Hit]:
    rows = facts.recent
    hits: list[Hit] = []
    rule = config.rule(RuleCode.CONSUMER_VELOCITY)
    if rule:
        since = sub.at - timedelta(minutes=rule.params["window_minutes"])
        count = sum(1 for row in rows if row[0] >= since)
        if count >= rule.params["max_submissions"]:
            hits.append(Hit(RuleCode.CONSUMER_VELOCITY, rule.weight, {"n": count}))
    live = [row for row in rows if row[4] != "rejected"]
    rule = config.rule(RuleCode.SPLIT_PURCHASE)
    if rule and sub.seller_uscc:
        ceiling = sub.min_total * (1 + Decimal(rule.params["band_percent"]) / 100)
        if sub.min_total <= sub.total < ceiling:
            since = sub.at - timedelta(minutes=rule.params["window_minutes"])
            related = sum(
                1
                for at, seller, total, _issued, _status in live
                if at >= since and seller == sub.seller_uscc and sub.min_total <= total < ceiling
            )
            if related >= rule.params["min_related"] > 0:
                hits.append(Hit(RuleCode.SPLIT_PURCHASE, rule.weight, {"related": related}))
    rule = config.rule(RuleCode.INSIDER_TIMING)
    if rule and sub.issued_at is not None:
        fast = timedelta(seconds=rule.params["seconds"])
        if timedelta(0) <= sub.at - sub.issued_at <= fast:
            since = sub.at - timedelta(days=min(rule.params["days"], LOOKBACK_DAYS))
            repeats = sum(
                1
                for at, seller, _total, issued, _status in live
                if at >= since
                and seller == sub.seller_uscc
                and issued is not None
                and timedelta(0) <= at - issued <= fast
            )
            seconds = int((sub.at - sub.issued_at).total_seconds())
            if repeats >= rule.params["min_repeats"] > 0:
                hits.append(
                    Hit(RuleCode.INSIDER_TIMING, rule.weight, {"s": seconds, "repeats": repeats})
                )
            elif rule.params["single_points"]:
                hits.append(
                    Hit(RuleCode.INSIDER_TIMING, rule.params["single_points"], {"s": seconds})
                )
    rule = config.rule(RuleCode.ROUND_BURST)
    if rule and rule.params["unit"] > 0 and sub.total % rule.params["unit"] == 0:
        since = sub.at - timedelta(hours=rule.params["hours"])
        unit = rule.params["unit"]
        count = 1 + sum(1 for at, _s, total, _i, _st in live if at >= since and total % unit == 0)
        if count >= rule.params["min_count"]:
            hits.append(Hit(RuleCode.ROUND_BURST, rule.weight, {"n": count}))
    return hits


def _device_rules(config: RiskConfig, sub: Submission, facts: Facts) -> list[Hit]:
    shared, velocity = config.rule(RuleCode.SHARED_DEVICE), config.rule(RuleCode.DEVICE_VELOCITY)
    hits = []
    if not sub.device_hash:
        return hits
    if shared and facts.device_others > shared.params["max_other_consumers"]:
        hits.append(Hit(RuleCode.SHARED_DEVICE, shared.weight, {"others": facts.device_others}))
    if velocity and facts.device_recent + 1 > velocity.params["max_submissions"]:
        hits.append(Hit(RuleCode.DEVICE_VELOCITY, velocity.weight, {"n": facts.device_recent + 1}))
    return hits


def _account_rules(config: RiskConfig, facts: Facts) -> list[Hit]:
    rule = config.rule(RuleCode.SHARED_ACCOUNT)
    if rule and facts.account_others > rule.params["max_other_consumers"]:
        return [Hit(RuleCode.SHARED_ACCOUNT, rule.weight, {"others": facts.account_others})]
    return []


def _seller_rules(config: RiskConfig, sub: Submission, facts: Facts) -> list[Hit]:
    """A seller far above its usual day, and this consumer one of the few buyers carrying the
    surge: fake sales are entered again and again by the same hands, while a promotion or a
    new popular shop brings many different customers (who are not held)."""
    rule = config.rule(RuleCode.SELLER_SURGE)
    if not rule or sub.merchant_id is None:
        return []
    mean = facts.seller_daily_mean
    limit = max(Decimal(rule.params["min_count"]), Decimal(rule.params["factor"]) * mean)
    count = facts.seller_24h + 1
    if count <= limit:
        return []
    repeats = sum(1 for row in facts.recent if row[1] == sub.seller_uscc and row[4] != "rejected")
    if repeats < rule.params["min_repeats"]:
        return []
    return [
        Hit(
            RuleCode.SELLER_SURGE,
            rule.weight,
            {"n24h": count, "usual": str(mean), "repeats": repeats},
        )
    ]


@dataclass(frozen=True)
class Evaluation:
    action: str
    score: int
    hits: tuple[Hit, ...]


def evaluate(sub: Submission, config: RiskConfig | None = None) -> Evaluation:
    """Score one submission: the sum of the triggered rules' points decides allow, hold or
    block against the configured scores."""
    config = config or current_config()
    facts = fetch_facts(sub, config)
    hits = [
        *_watch_hits(config, sub, facts),
        *_recent_rules(config, sub, facts),
        *_device_rules(config, sub, facts),
        *_account_rules(config, facts),
        *_seller_rules(config, sub, facts),
    ]
    score = sum(hit.points for hit in hits)
    if score >= config.block_score:
        action = RiskAction.BLOCK
    elif score >= config.hold_score:
        action = RiskAction.HOLD
    else:
        action = RiskAction.ALLOW
    hits.sort(key=lambda hit: -hit.points)
    return Evaluation(action, score, tuple(hits))
