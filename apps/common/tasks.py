"""Housekeeping tasks. Tasks stay thin: they take ids and call one service or command."""

from celery import shared_task
from django.core.management import call_command


@shared_task(name="apps.common.tasks.clear_expired_sessions")
def clear_expired_sessions() -> None:
    call_command("clearsessions")


@shared_task(name="apps.common.tasks.purge_personal_data")
def purge_personal_data() -> None:
    call_command("purge_personal_data")


@shared_task(name="apps.common.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    from .idempotency import purge_expired_idempotency_records

    return purge_expired_idempotency_records()
