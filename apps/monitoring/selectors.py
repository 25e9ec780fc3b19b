"""Reads of the monitoring app: the page of the security administrator."""

from __future__ import annotations

from django.db.models import Count

from apps.audit.models import AuditChainHead, AuditEvent

from .choices import LIVE_ALERT_STATUSES, ResponseStatus, Severity
from .models import Alert, AutomaticResponse, MonitorCursor, MonitoringRule


def alert_evidence(alert: Alert) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(pk__in=alert.evidence).order_by("-seq")[:100])


def monitoring_overview() -> dict:
    live = Alert.objects.filter(status__in=LIVE_ALERT_STATUSES)
    by_severity = dict(live.values_list("severity").annotate(n=Count("pk")).order_by())
    head = AuditChainHead.objects.filter(pk=1).first()
    cursor = MonitorCursor.objects.filter(pk=1).first()
    return {
        "live_by_severity": [(s.label, by_severity.get(s.value, 0)) for s in reversed(Severity)],
        "live_alerts": list(live.select_related("rule").order_by("-created_at")[:50]),
        "responses_in_force": list(
            AutomaticResponse.objects.filter(status=ResponseStatus.ACTIVE)
            .select_related("alert")
            .order_by("-taken_at")[:50]
        ),
        "rules": list(MonitoringRule.objects.order_by("code")),
        "stream_lag": (head.seq if head else 0) - (cursor.last_seq if cursor else 0),
        "recent_resolved": list(
            Alert.objects.exclude(status__in=LIVE_ALERT_STATUSES).order_by("-resolved_at")[:10]
        ),
    }
