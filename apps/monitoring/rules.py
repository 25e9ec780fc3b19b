"""The stream rules: each reads one committed audit event (and, for context, the trail and a
few tables) and may raise an alert through `services.alert_raise`.

Windows are measured back from the event's own time, so a late consumer run judges events
exactly as a prompt one would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q

from apps.audit.models import AuditCategory, AuditEvent, AuditOutcome

from . import services, state
from .choices import RuleCode
from .models import KnownNetwork

EVIDENCE_LIMIT = 50

# Configuration changes watched near a draw's cut-off: pools, draws, prize rules and funds,
# and anything of the risk app.
CONFIG_ACTIONS = frozenset(
    {
        "draw.created",
        "draw.configured",
        "draw.tiers_changed",
        "instant_pool.quotas_planned",
        "instant_tier.saved",
        "prize_policy.saved",
        "fund.saved",
    }
)
CONFIG_TARGET_PREFIXES = ("draws.", "risk.", "prizes.prizepolicy", "prizes.fund")
OPEN_DRAW_STATUSES = ("scheduled", "committed")


def _staff_user(user_id):
    if user_id is None:
        return None
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not (user.is_staff or user.is_superuser):
        return None
    return user


# --- Personal data ---------------------------------------------------------------------------


def _is_reveal_or_export(event: AuditEvent) -> bool:
    return (
        event.category in (AuditCategory.REVEAL, AuditCategory.EXPORT)
        and event.outcome == AuditOutcome.SUCCESS
        and event.actor_id is not None
    )


def reveal_burst(event: AuditEvent) -> None:
    rule = state.rule(RuleCode.REVEAL_BURST)
    since = event.at - timedelta(minutes=rule.window_minutes)
    recent = AuditEvent.objects.filter(
        actor_id=event.actor_id,
        category__in=(AuditCategory.REVEAL, AuditCategory.EXPORT),
        outcome=AuditOutcome.SUCCESS,
        at__gt=since,
        seq__lte=event.seq,
    )
    count = recent.count()
    if count < rule.threshold:
        return
    services.alert_raise(
        rule_code=rule.code,
        subject_type="user",
        subject_id=str(event.actor_id),
        subject_repr=event.actor_username,
        source_ip=event.ip,
        evidence=list(recent.order_by("-seq").values_list("pk", flat=True)[:EVIDENCE_LIMIT]),
        details={"count": count, "window_minutes": rule.window_minutes},
        at=event.at,
    )


def reveal_after_hours(event: AuditEvent) -> None:
    rule = state.rule(RuleCode.REVEAL_AFTER_HOURS)
    local = event.at.astimezone(ZoneInfo(settings.TIME_ZONE))
    start, end = int(rule.param("work_start_hour")), int(rule.param("work_end_hour"))
    weekdays = {int(d) for d in rule.param("work_weekdays")}
    if local.weekday() in weekdays and start <= local.hour < end:
        return
    services.alert_raise(
        rule_code=rule.code,
        subject_type="user",
        subject_id=str(event.actor_id),
        subject_repr=event.actor_username,
        source_ip=event.ip,
        evidence=[event.pk],
        details={"local_time": local.strftime("%Y-%m-%d %H:%M"), "action": event.action},
        at=event.at,
    )


# --- Sign-in ---------------------------------------------------------------------------------


def _user_networks(user_id: int, before_seq: int, rule) -> set[str]:
    """The networks the account is known to have signed in from; the first time, learnt from
    the trail (so installing monitoring on a running system does not flag everybody)."""
    known = set(
        KnownNetwork.objects.filter(kind="user", subject_id=str(user_id)).values_list(
            "network", flat=True
        )
    )
    if known:
        return known
    ips = (
        AuditEvent.objects.filter(
            action="auth.login", actor_id=user_id, seq__lt=before_seq, ip__isnull=False
        )
        .values_list("ip", flat=True)
        .distinct()[:1000]
    )
    return {
        state.network_of(
            ip,
            ipv4_prefix=int(rule.param("ipv4_prefix")),
            ipv6_prefix=int(rule.param("ipv6_prefix")),
        )
        for ip in ips
    }


def new_network_signin(event: AuditEvent) -> None:
    rule = state.rule(RuleCode.NEW_NETWORK_SIGNIN)
    if not event.ip or _staff_user(event.actor_id) is None:
        return
    network = state.network_of(
        event.ip,
        ipv4_prefix=int(rule.param("ipv4_prefix")),
        ipv6_prefix=int(rule.param("ipv6_prefix")),
    )
    known = _user_networks(event.actor_id, event.seq, rule)
    for seen in known | {network}:
        KnownNetwork.objects.get_or_create(
            kind="user", subject_id=str(event.actor_id), network=seen
        )
    KnownNetwork.objects.filter(
        kind="user", subject_id=str(event.actor_id), network=network
    ).update(last_seen_at=event.at)
    if not known or network in known:
        return  # the first sign-in ever teaches, it does not alarm
    services.alert_raise(
        rule_code=rule.code,
        subject_type="user",
        subject_id=str(event.actor_id),
        subject_repr=event.actor_username,
        source_ip=event.ip,
        evidence=[event.pk],
        details={"network": network, "known_networks": sorted(known)[:20]},
        dedup_suffix=network,
        at=event.at,
    )


def dormant_account(event: AuditEvent) -> None:
    rule = state.rule(RuleCode.DORMANT_ACCOUNT)
    user = _staff_user(event.actor_id)
    if user is None:
        return
    days = int(rule.param("dormant_days"))
    previous = (
        AuditEvent.objects.filter(action="auth.login", actor_id=user.pk, seq__lt=event.seq)
        .order_by("-seq")
        .first()
    )
    last_active = previous.at if previous is not None else user.date_joined
    idle = event.at - last_active
    if idle < timedelta(days=days):
        return
    evidence = [event.pk] + ([previous.pk] if previous is not None else [])
    services.alert_raise(
        rule_code=rule.code,
        subject_type="user",
        subject_id=str(user.pk),
        subject_repr=user.get_username(),
        source_ip=event.ip,
        evidence=evidence,
        details={"idle_days": idle.days, "previous_sign_in": last_active.isoformat()},
        at=event.at,
    )


# --- Privileges and configuration ------------------------------------------------------------


def privilege_change(event: AuditEvent) -> None:
    rule = state.rule(RuleCode.PRIVILEGE_CHANGE)
    services.alert_raise(
        rule_code=rule.code,
        subject_type="user" if event.target_type.endswith(".user") else "group",
        subject_id=event.target_id,
        subject_repr=event.target_repr,
        source_ip=event.ip,
        evidence=[event.pk],
        details={"action": event.action, "change": event.after, "by": event.actor_username},
        dedup_suffix=str(event.seq),
        at=event.at,
    )


def _is_watched_config(event: AuditEvent) -> bool:
    if event.action in CONFIG_ACTIONS:
        return True
    return event.category == AuditCategory.CONFIG and event.target_type.startswith(
        CONFIG_TARGET_PREFIXES
    )


def config_near_cutoff(event: AuditEvent) -> None:
    from apps.draws.models import PeriodicDraw

    rule = state.rule(RuleCode.CONFIG_NEAR_CUTOFF)
    horizon = event.at + timedelta(minutes=rule.window_minutes)
    draws = PeriodicDraw.objects.filter(
        status__in=OPEN_DRAW_STATUSES, cutoff_at__gt=event.at, cutoff_at__lte=horizon
    ).order_by("cutoff_at")
    if event.target_type == "draws.periodicdraw":
        draws = draws.filter(pk=event.target_id)
    for draw in draws[:5]:
        minutes = int((draw.cutoff_at - event.at).total_seconds() // 60)
        services.alert_raise(
            rule_code=rule.code,
            subject_type="draw",
            subject_id=str(draw.pk),
            subject_repr=str(draw)[:200],
            source_ip=event.ip,
            evidence=[event.pk],
            details={
                "action": event.action,
                "target": event.target_repr,
                "by": event.actor_username,
                "minutes_before_cutoff": minutes,
            },
            at=event.at,
        )


def maker_checker_pair(event: AuditEvent) -> None:
    from apps.prizes.models import PayoutBatch

    rule = state.rule(RuleCode.MAKER_CHECKER_PAIR)
    batch = PayoutBatch.objects.filter(pk=event.target_id).first()
    if batch is None or batch.approved_by_id is None:
        return
    since = event.at - timedelta(minutes=rule.window_minutes)
    approved = PayoutBatch.objects.filter(approved_at__gt=since, approved_at__lte=event.at)
    totals = approved.aggregate(
        total=Count("pk"),
        pair=Count(
            "pk", filter=Q(created_by_id=batch.created_by_id, approved_by_id=batch.approved_by_id)
        ),
    )
    total, pair = totals["total"], totals["pair"]
    if total < int(rule.param("min_batches")) or pair * 100 < rule.threshold * total:
        return
    evidence = list(
        AuditEvent.objects.filter(
            action="payout_batch.approved",
            target_type="prizes.payoutbatch",
            target_id__in=[
                str(pk)
                for pk in approved.filter(
                    created_by_id=batch.created_by_id, approved_by_id=batch.approved_by_id
                ).values_list("pk", flat=True)[:EVIDENCE_LIMIT]
            ],
        ).values_list("pk", flat=True)
    )
    pair_key = f"{batch.created_by_id}-{batch.approved_by_id}"
    services.alert_raise(
        rule_code=rule.code,
        subject_type="pair",
        subject_id=pair_key,
        subject_repr=f"{batch.created_by} → {batch.approved_by}",
        source_ip=event.ip,
        evidence=evidence,
        details={"pair_batches": pair, "all_batches": total, "share_percent": pair * 100 // total},
        at=event.at,
    )


# --- Dispatch --------------------------------------------------------------------------------

Handler = Callable[[AuditEvent], None]


def handlers_for(event: AuditEvent) -> list[tuple[str, Handler]]:
    """The (rule, handler) pairs an event concerns; monitoring's own records concern none."""
    if event.action.startswith("monitoring."):
        return []
    found: list[tuple[str, Handler]] = []
    if _is_reveal_or_export(event):
        found += [(RuleCode.REVEAL_BURST, reveal_burst)]
        found += [(RuleCode.REVEAL_AFTER_HOURS, reveal_after_hours)]
    if event.action == "auth.login":
        found += [(RuleCode.NEW_NETWORK_SIGNIN, new_network_signin)]
        found += [(RuleCode.DORMANT_ACCOUNT, dormant_account)]
    # A change without a person behind it is the role table synchronised by a deploy
    # (`sync_roles` on migrate), reviewed in code, not at run time.
    if event.category == AuditCategory.PERMISSION and (event.actor_id or event.actor_username):
        found.append((RuleCode.PRIVILEGE_CHANGE, privilege_change))
    if _is_watched_config(event):
        found.append((RuleCode.CONFIG_NEAR_CUTOFF, config_near_cutoff))
    if event.action == "payout_batch.approved":
        found.append((RuleCode.MAKER_CHECKER_PAIR, maker_checker_pair))
    return found
