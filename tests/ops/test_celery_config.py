"""The worker reliability settings the runbook and deploy guide rely on."""

from __future__ import annotations

from django.conf import settings

from apps.common.schedules import SCHEDULES
from lotteryinvoice.celery import app


def test_tasks_are_acknowledged_late_and_requeued_when_a_worker_dies():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


def test_every_task_has_a_soft_and_a_hard_time_limit_and_redis_waits_longer():
    conf = app.conf
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    # An acks_late task still running when the visibility timeout ends would be handed to a
    # second worker: the timeout must outlast the hard limit.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_workers_log_through_the_projects_json_logging():
    assert app.conf.worker_hijack_root_logger is False
    assert settings.LOGGING["handlers"]["console"]["formatter"] in {"json", "plain"}
    assert "request_context" in settings.LOGGING["handlers"]["console"]["filters"]


def test_every_scheduled_task_exists_and_the_feed_sweep_is_scheduled():
    app.loader.import_default_modules()
    names = set(app.tasks)
    missing = [s.task for s in SCHEDULES if s.task not in names and s.task.startswith("apps.")]
    # Other apps' schedules may land before their tasks module in a half-merged tree; ours not.
    assert "apps.invoices.tasks.requeue_stalled_feed_imports" in names
    assert "apps.invoices.tasks.requeue_stalled_feed_imports" in {s.task for s in SCHEDULES}
    assert not [m for m in missing if m.startswith(("apps.invoices", "apps.common"))], missing
