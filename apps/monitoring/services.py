"""Every write of the monitoring app: rules, alerts and their workflow, automatic responses,
the audit-stream consumer and the per-key memories of the counting rules."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.services import user_deactivate
from apps.accounts.sessions import revoke_user_sessions
from apps.audit.models import AuditCategory, AuditChainHead, AuditEvent
from apps.audit.services import audit_record
from apps.common.exceptions import InvalidTransition

from . import state
from .choices import (
    ALERT_TRANSITIONS,
    LIVE_ALERT_STATUSES,
    RESPONSES_FOR_SUBJECT,
    AlertStatus,
    ResponseKind,
    ResponseStatus,
    RuleCode,
    Severity,
)
from .definitions import DEFINITIONS
from .exceptions import MonitoringError
from .models import (
    Alert,
    AlertStatusChange,
    AutomaticResponse,
    KeyUsageBaseline,
    KnownNetwork,
    MonitorCursor,
    MonitoringRule,
    MonitoringRuleChange,
)

logger = logging.getLogger(__name__)

PERM_MANAGE = "monitoring.manage_alert"
PERM_REVERSE = "monitoring.reverse_response"
PERM_CHANGE_RULE = "monitoring.change_monitoringrule"
EVIDENCE_CAP = 200
RULE_FIELDS = ("enabled", "severity", "threshold", "window_minutes", "params", "response", "notify")
EWMA_WEIGHT = Decimal("0.2")


def _require(actor, perm: str) -> None:
    if actor is None or not actor.has_perm(perm):
        raise MonitoringError("monitoring.not_permitted", status_code=403)


# --- Rules -----------------------------------------------------------------------------------


def rule_validate(*, code: str, values: dict) -> None:
    """Thresholds are positive, parameters are the rule's own and whole numbers (lists of them
    for weekdays), the response fits the rule's subject."""
    definition = DEFINITIONS[code]
    if int(values.get("threshold", 1)) < 1:
        raise MonitoringError("monitoring.invalid_rule_value", detail={"field": "threshold"})
    params = values.get("params") or {}
    if not isinstance(params, dict) or set(params) - set(definition.params):
        raise MonitoringError("monitoring.invalid_rule_value", detail={"field": "params"})
    for name, value in params.items():
        default = definition.params[name]
        ok = (
            all(isinstance(v, int) and 0 <= v <= 6 for v in value)
            if isinstance(default, list)
            else isinstance(value, int | float | Decimal)
            and not isinstance(value, bool)
            and value >= 0
        )
        if not ok:
            raise MonitoringError("monitoring.invalid_rule_value", detail={"field": name})
    if values.get("response", ResponseKind.NONE) not in RESPONSES_FOR_SUBJECT[definition.subject]:
        raise MonitoringError("monitoring.invalid_rule_value", detail={"field": "response"})


def rule_update(*, rule: MonitoringRule, actor, values: dict, reason: str = "") -> MonitoringRule:
    """Change a rule's live settings. Invariant: every change leaves a history row with the
    values before and after and an audit record, in one transaction."""
    _require(actor, PERM_CHANGE_RULE)
    with transaction.atomic():
        locked = MonitoringRule.objects.select_for_update().get(pk=rule.pk)
        before = {f: getattr(locked, f) for f in RULE_FIELDS}
        after = {**before, **{k: v for k, v in values.items() if k in RULE_FIELDS}}
        rule_validate(code=locked.code, values=after)
        if after == before:
            return locked
        for name, value in after.items():
            setattr(locked, name, value)
        locked.updated_at, locked.updated_by = timezone.now(), actor
        locked.save()
        MonitoringRuleChange.objects.create(
            rule=locked, actor=actor, before=before, after=after, reason=reason[:300]
        )
        audit_record(
            action="monitoring.rule_changed",
            category=AuditCategory.CONFIG,
            target=locked,
            actor=actor,
            reason=reason,
            before=before,
            after=after,
        )
        state.invalidate()
    return locked


# --- Alerts ----------------------------------------------------------------------------------


def _history(alert: Alert, *, to_status: str, actor=None, note: str = "", from_status=None):
    AlertStatusChange.objects.create(
        alert=alert,
        from_status=from_status or alert.status,
        to_status=to_status,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        note=note,
    )


def _title(rule_code: str, subject_repr: str) -> str:
    return f"{RuleCode(rule_code).label}: {subject_repr}"[:200]


def alert_raise(
    *,
    rule_code: str,
    subject_type: str,
    subject_id: str,
    subject_repr: str = "",
    source_ip: str | None = None,
    evidence: list[int] | None = None,
    details: dict | None = None,
    dedup_suffix: str = "",
    at=None,
) -> Alert | None:
    """Raise an alert, or add to the live alert of the same finding.

    Invariant: one live alert per deduplication key (rule, subject and suffix) — a repeat adds
    its evidence and an occurrence. A new alert is audited, notified after commit and, if the
    rule says so, answered by its automatic response.
    """
    settings_ = state.rule(rule_code)
    if not settings_.enabled:
        return None
    rule = MonitoringRule.objects.get(code=rule_code)
    dedup_key = ":".join(p for p in (rule_code, subject_type, subject_id, dedup_suffix) if p)
    now = at or timezone.now()
    evidence = [int(e) for e in (evidence or [])]
    for _attempt in range(2):
        try:
            with transaction.atomic():
                live = (
                    Alert.objects.select_for_update()
                    .filter(dedup_key=dedup_key, status__in=LIVE_ALERT_STATUSES)
                    .first()
                )
                if live is not None:
                    merged = list(dict.fromkeys([*live.evidence, *evidence]))[-EVIDENCE_CAP:]
                    live.evidence = merged
                    live.occurrences += 1
                    live.last_seen_at = max(live.last_seen_at, now)
                    live.details = {**live.details, **(details or {})}
                    live.save(update_fields=["evidence", "occurrences", "last_seen_at", "details"])
                    return live
                alert = Alert.objects.create(
                    rule=rule,
                    severity=settings_.severity,
                    title=_title(rule_code, subject_repr or subject_id),
                    subject_type=subject_type,
                    subject_id=str(subject_id)[:64],
                    subject_repr=(subject_repr or subject_id)[:200],
                    source_ip=source_ip or None,
                    dedup_key=dedup_key[:200],
                    evidence=evidence[:EVIDENCE_CAP],
                    details=details or {},
                    created_at=timezone.now(),
                    last_seen_at=now,
                )
                _history(alert, to_status=AlertStatus.OPEN, from_status=AlertStatus.OPEN)
                audit_record(
                    action="monitoring.alert_raised",
                    category=AuditCategory.SECURITY,
                    target=alert,
                    after={
                        "rule": rule_code,
                        "severity": alert.severity,
                        "subject": f"{subject_type}:{subject_id}",
                        "evidence": alert.evidence[:20],
                    },
                )
                if settings_.response != ResponseKind.NONE:
                    response_take(alert=alert, kind=settings_.response)
                if settings_.notify:
                    from . import tasks

                    transaction.on_commit(partial(tasks.alert_notify.delay, alert_id=alert.pk))
                return alert
        except IntegrityError:
            continue  # a parallel consumer created it: add to theirs
    return None


def counter_alert_raise(
    *,
    rule_code: str,
    subject_type: str,
    subject_id: str,
    subject_repr: str = "",
    source_ip: str | None = None,
    count: int = 0,
    details: dict | None = None,
) -> Alert | None:
    """An alert of a counting rule; its evidence is what the trail holds about the subject in
    the rule's window (failed sign-ins from the address, refusals of the person)."""
    rule = state.rule(rule_code)
    since = timezone.now() - timedelta(seconds=rule.window_seconds)
    trail = AuditEvent.objects.filter(at__gte=since)
    if subject_type == "ip":
        trail = trail.filter(ip=subject_id, outcome__in=("failure", "denied"))
    elif subject_type == "user":
        trail = trail.filter(actor_id=subject_id, outcome="denied")
    elif subject_type == "merchant_key":
        trail = trail.filter(actor_username=f"merchant-key:{subject_id}")
    evidence = list(trail.order_by("-seq").values_list("pk", flat=True)[:50])
    return alert_raise(
        rule_code=rule_code,
        subject_type=subject_type,
        subject_id=subject_id,
        subject_repr=subject_repr,
        source_ip=source_ip,
        evidence=evidence,
        details={"count": count, **(details or {})},
    )


def _transition(alert: Alert, target: str, *, actor, note: str) -> Alert:
    _require(actor, PERM_MANAGE)
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if target not in ALERT_TRANSITIONS[locked.status]:
            raise InvalidTransition(
                "monitoring.invalid_transition",
                _("This alert cannot move from %(from)s to %(to)s.")
                % {"from": locked.get_status_display(), "to": AlertStatus(target).label},
            )
        previous = locked.status
        now = timezone.now()
        if target == AlertStatus.ACKNOWLEDGED:
            locked.acknowledged_at, locked.acknowledged_by = now, actor
        if target == AlertStatus.RESOLVED:
            locked.resolved_at, locked.resolved_by = now, actor
        locked.status = target
        locked.save()
        _history(locked, from_status=previous, to_status=target, actor=actor, note=note)
        audit_record(
            action=f"monitoring.alert_{target}",
            category=AuditCategory.SECURITY,
            target=locked,
            actor=actor,
            reason=note,
            before={"status": previous},
            after={"status": target},
        )
    return locked


def alert_acknowledge(*, alert: Alert, actor, note: str = "") -> Alert:
    """open → acknowledged: somebody is looking at it."""
    return _transition(alert, AlertStatus.ACKNOWLEDGED, actor=actor, note=note.strip())


def alert_resolve(*, alert: Alert, actor, note: str) -> Alert:
    """→ resolved, with a note saying what was found and done (required)."""
    note = (note or "").strip()
    if not note:
        raise MonitoringError("monitoring.note_required")
    return _transition(alert, AlertStatus.RESOLVED, actor=actor, note=note)


def alert_add_note(*, alert: Alert, actor, note: str) -> AlertStatusChange:
    _require(actor, PERM_MANAGE)
    note = (note or "").strip()
    if not note:
        raise MonitoringError("monitoring.note_required")
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        _history(locked, to_status=locked.status, actor=actor, note=note)
        audit_record(
            action="monitoring.alert_noted",
            category=AuditCategory.SECURITY,
            target=locked,
            actor=actor,
            reason=note,
        )
    return locked.history.last()


# --- Automatic responses ---------------------------------------------------------------------


def response_take(*, alert: Alert, kind: str) -> AutomaticResponse | None:
    """Carry out a rule's automatic response for a new alert (in the alert's transaction).

    - lock_account: the staff account is deactivated and every session of it deleted at once
      (`user_deactivate`); a superuser is never locked by a machine.
    - require_reauth: every session of the account is deleted; it signs in again (with TOTP).
    - suspend_key: the merchant key is refused from the next request (`MonitoringMiddleware`);
      a suspension, not `merchant_key_revoke`, because a revocation can never be undone.
    - block_source: the address is refused for the rule's `block_minutes`.
    """
    rule = state.rule(alert.rule.code)
    detail: dict = {}
    expires_at = None
    status = ResponseStatus.ACTIVE
    target_type, target_id, target_repr = alert.subject_type, alert.subject_id, alert.subject_repr
    if kind in (ResponseKind.LOCK_ACCOUNT, ResponseKind.REQUIRE_REAUTH):
        if alert.subject_type != "user":
            return None
        user = get_user_model().objects.filter(pk=alert.subject_id).first()
        if user is None or user.is_superuser:
            return None
        if kind == ResponseKind.LOCK_ACCOUNT:
            if not user.is_active:
                return None
            user_deactivate(
                user=user, actor=None, reason=f"monitoring alert #{alert.pk}: {alert.title}"
            )
            detail = {"was_active": True}
        else:
            detail = {"sessions_revoked": revoke_user_sessions(user)}
            status = ResponseStatus.COMPLETED
    elif kind == ResponseKind.SUSPEND_KEY:
        if alert.subject_type != "merchant_key":
            return None
    elif kind == ResponseKind.BLOCK_SOURCE:
        if alert.subject_type != "ip":
            return None
        expires_at = timezone.now() + timedelta(minutes=int(rule.param("block_minutes") or 30))
    else:
        return None
    response = AutomaticResponse.objects.create(
        alert=alert,
        kind=kind,
        status=status,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        detail=detail,
        expires_at=expires_at,
    )
    audit_record(
        action="monitoring.response_taken",
        category=AuditCategory.SECURITY,
        target=response,
        after={
            "kind": kind,
            "target": f"{target_type}:{target_id}",
            "alert": alert.pk,
            "expires_at": expires_at.isoformat() if expires_at else None,
            **detail,
        },
    )
    state.invalidate()
    return response


def response_reverse(*, response: AutomaticResponse, actor, note: str) -> AutomaticResponse:
    """Undo an automatic response in force: the account is active again (it signs in afresh),
    the key is accepted again, the address is let through. Audited with the note."""
    _require(actor, PERM_REVERSE)
    note = (note or "").strip()
    if not note:
        raise MonitoringError("monitoring.note_required")
    with transaction.atomic():
        locked = AutomaticResponse.objects.select_for_update().get(pk=response.pk)
        if locked.status != ResponseStatus.ACTIVE:
            raise MonitoringError("monitoring.response_not_active", status_code=409)
        if locked.kind == ResponseKind.LOCK_ACCOUNT:
            User = get_user_model()
            user = User.objects.select_for_update().get(pk=locked.target_id)
            user.is_active = True
            user.save(update_fields=["is_active"])
        locked.status = ResponseStatus.REVERSED
        locked.reversed_at, locked.reversed_by, locked.reversal_note = (
            timezone.now(),
            actor,
            note[:300],
        )
        locked.save()
        alert = Alert.objects.select_for_update().get(pk=locked.alert_id)
        _history(
            alert,
            to_status=alert.status,
            actor=actor,
            note=_("Reversed: %(response)s — %(note)s")
            % {"response": locked.get_kind_display(), "note": note},
        )
        audit_record(
            action="monitoring.response_reversed",
            category=AuditCategory.SECURITY,
            target=locked,
            actor=actor,
            reason=note,
            before={"status": ResponseStatus.ACTIVE},
            after={
                "status": ResponseStatus.REVERSED,
                "kind": locked.kind,
                "target": f"{locked.target_type}:{locked.target_id}",
            },
        )
        state.invalidate()
    return locked


def responses_expire(*, now=None) -> int:
    """Mark address blocks past their end as expired (they stopped working at that time)."""
    now = now or timezone.now()
    count = AutomaticResponse.objects.filter(
        status=ResponseStatus.ACTIVE, expires_at__isnull=False, expires_at__lte=now
    ).update(status=ResponseStatus.EXPIRED)
    if count:
        state.invalidate()
    return count


# --- The audit-stream consumer ---------------------------------------------------------------


def _locked_cursor() -> MonitorCursor:
    try:
        return MonitorCursor.objects.select_for_update().get(pk=1)
    except MonitorCursor.DoesNotExist:
        MonitorCursor.objects.bulk_create([MonitorCursor(pk=1, last_seq=0)], ignore_conflicts=True)
        return MonitorCursor.objects.select_for_update().get(pk=1)


def cursor_move_to_head() -> None:
    """Start (or restart) the consumer at the trail's end: history is not replayed."""
    head = AuditChainHead.objects.filter(pk=1).first()
    MonitorCursor.objects.update_or_create(
        pk=1, defaults={"last_seq": head.seq if head else 0, "updated_at": timezone.now()}
    )


def events_process(*, batch_size: int = 500, max_batches: int = 20) -> int:
    """Evaluate the stream rules on the events committed after the cursor, in `seq` order.

    Invariant: each event is evaluated once — the cursor row is locked for the batch and moved
    in the same transaction. One rule failing on one event is logged and skipped (its
    savepoint rolled back) rather than stopping the stream. The rules' settings are read once
    per run.
    """
    with state.pinned():
        return _events_process(batch_size=batch_size, max_batches=max_batches)


def _events_process(*, batch_size: int, max_batches: int) -> int:
    from .rules import handlers_for

    processed = 0
    for _batch in range(max_batches):
        with transaction.atomic():
            cursor = _locked_cursor()
            events = list(
                AuditEvent.objects.filter(seq__gt=cursor.last_seq).order_by("seq")[:batch_size]
            )
            if not events:
                break
            rules = state.current()["rules"]
            for event in events:
                for code, handler in handlers_for(event):
                    if not rules.get(code, {}).get("enabled"):
                        continue
                    try:
                        with transaction.atomic():
                            handler(event)
                    except Exception:
                        logger.exception("monitoring rule %s failed on event #%s", code, event.seq)
            cursor.last_seq = events[-1].seq
            cursor.updated_at = timezone.now()
            cursor.save(update_fields=["last_seq", "updated_at"])
        processed += len(events)
        if len(events) < batch_size:
            break
    return processed


# --- Merchant keys ---------------------------------------------------------------------------


def key_network_observe(*, key_id: str, network: str, ip: str) -> Alert | None:
    """Remember a network a key was used from; a new one for a key with a history alerts."""
    with transaction.atomic():
        known = set(
            KnownNetwork.objects.filter(kind="merchant_key", subject_id=key_id).values_list(
                "network", flat=True
            )
        )
        row, created = KnownNetwork.objects.get_or_create(
            kind="merchant_key", subject_id=key_id, network=network
        )
        if not created:
            KnownNetwork.objects.filter(pk=row.pk).update(last_seen_at=timezone.now())
            return None
        if not known:
            return None  # the key's first network
        from apps.accounts.models import MerchantAPIKey

        key = MerchantAPIKey.objects.filter(key_id=key_id).select_related("merchant").first()
        return alert_raise(
            rule_code="key_new_network",
            subject_type="merchant_key",
            subject_id=key_id,
            subject_repr=str(key) if key else key_id,
            source_ip=ip,
            evidence=list(
                AuditEvent.objects.filter(actor_username=f"merchant-key:{key_id}")
                .order_by("-seq")
                .values_list("pk", flat=True)[:10]
            ),
            details={"network": network, "known_networks": sorted(known)[:20]},
            dedup_suffix=network,
        )


def key_rate_fold(*, key_id: str, minute: int) -> KeyUsageBaseline | None:
    """Fold one finished busy minute of a key into its usual rate (EWMA)."""
    from . import counters

    count = counters.minute_count(key_id, minute)
    if not count:
        return None
    with transaction.atomic():
        baseline, _created = KeyUsageBaseline.objects.select_for_update().get_or_create(
            key_id=key_id, defaults={"per_minute": Decimal(count), "samples": 0}
        )
        if baseline.last_minute >= minute:
            return baseline
        if baseline.samples:
            baseline.per_minute = (
                (1 - EWMA_WEIGHT) * baseline.per_minute + EWMA_WEIGHT * Decimal(count)
            ).quantize(Decimal("0.01"))
        baseline.samples += 1
        baseline.last_minute = minute
        baseline.save()
    counters.set_baseline(key_id, str(baseline.per_minute), baseline.samples)
    return baseline


# --- Nightly summary -------------------------------------------------------------------------


def summary_build(*, since, until) -> dict:
    from django.db.models import Count

    alerts = Alert.objects.filter(created_at__gte=since, created_at__lt=until)
    by_rule = dict(alerts.values_list("rule__code").annotate(n=Count("pk")).order_by())
    by_severity = dict(alerts.values_list("severity").annotate(n=Count("pk")).order_by())
    responses = AutomaticResponse.objects.filter(taken_at__gte=since, taken_at__lt=until)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "alerts": alerts.count(),
        "by_rule": by_rule,
        "by_severity": {s: by_severity.get(s, 0) for s in Severity.values},
        "open": Alert.objects.filter(status__in=LIVE_ALERT_STATUSES).count(),
        "responses": responses.count(),
        "responses_in_force": AutomaticResponse.objects.filter(
            status=ResponseStatus.ACTIVE
        ).count(),
    }


def nightly_summary_send(*, now=None) -> dict:
    """Mail the last 24 hours' alerts and responses to the security administrators."""
    from . import notify

    until = now or timezone.now()
    summary = summary_build(since=until - timedelta(days=1), until=until)
    sent = notify.send_summary(summary)
    audit_record(
        action="monitoring.summary_sent",
        category=AuditCategory.SECURITY,
        after={**summary, "recipients": sent},
    )
    return summary
