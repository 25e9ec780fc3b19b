"""Thin Celery tasks around the monitoring services (idempotent: safe to run late or twice)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import services


@shared_task(name="apps.monitoring.tasks.events_process")
def events_process() -> int:
    """Run the stream rules on the audit events committed since the last run."""
    from .hooks import clear_pending

    clear_pending()
    return services.events_process()


@shared_task(name="apps.monitoring.tasks.counter_alert")
def counter_alert(**kwargs) -> int | None:
    alert = services.counter_alert_raise(**kwargs)
    return alert.pk if alert else None


@shared_task(name="apps.monitoring.tasks.key_network_observe")
def key_network_observe(*, key_id: str, network: str, ip: str) -> int | None:
    alert = services.key_network_observe(key_id=key_id, network=network, ip=ip)
    return alert.pk if alert else None


@shared_task(name="apps.monitoring.tasks.key_rate_fold")
def key_rate_fold(*, key_id: str, minute: int) -> None:
    services.key_rate_fold(key_id=key_id, minute=minute)


@shared_task(
    name="apps.monitoring.tasks.alert_notify",
    autoretry_for=(Exception,),
    retry_backoff=30,
    max_retries=5,
)
def alert_notify(*, alert_id: int) -> dict:
    from . import notify
    from .models import Alert

    alert = Alert.objects.select_related("rule").get(pk=alert_id)
    sent = notify.send_alert(alert)
    Alert.objects.filter(pk=alert_id).update(notified_at=timezone.now())
    return sent


@shared_task(name="apps.monitoring.tasks.housekeeping")
def housekeeping() -> dict:
    """Every minute: catch up the stream (a lost trigger) and expire address blocks."""
    return {"events": services.events_process(), "expired": services.responses_expire()}


@shared_task(name="apps.monitoring.tasks.nightly_summary")
def nightly_summary() -> dict:
    return services.nightly_summary_send()
