"""Periodic work, declared in code and installed by `manage.py setup_periodic_tasks`.

Every schedule is a cron expression in Asia/Shanghai time. Apps add their entries here as their
features land, so one file answers "what runs when".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CronSchedule:
    name: str  # unique, stable: the PeriodicTask's name
    task: str  # dotted Celery task name
    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    description: str = ""


SCHEDULES: tuple[CronSchedule, ...] = (
    CronSchedule(
        name="common.clear_expired_sessions",
        task="apps.common.tasks.clear_expired_sessions",
        minute="17",
        hour="3",
        description="Delete expired sessions from the session table every night.",
    ),
    CronSchedule(
        name="accounts.purge_personal_data",
        task="apps.common.tasks.purge_personal_data",
        minute="40",
        hour="3",
        description="Erase personal data of consumers past the retention period.",
    ),
    CronSchedule(
        name="invoices.recheck_due_invoices",
        task="apps.invoices.tasks.recheck_due_invoices",
        minute="*/5",
        description="Re-verify pending invoices whose next check is due (tax database lag).",
    ),
    CronSchedule(
        name="invoices.requeue_stalled_feed_imports",
        task="apps.invoices.tasks.requeue_stalled_feed_imports",
        minute="*/10",
        description="Queue again uploaded tax feeds whose import was never started.",
    ),
    CronSchedule(
        name="common.purge_idempotency_records",
        task="apps.common.tasks.purge_idempotency_records",
        minute="25",
        hour="*/6",
        description="Forget Idempotency-Key replies older than IDEMPOTENCY_KEY_TTL_HOURS.",
    ),
    CronSchedule(
        name="draws.freeze_due_draws",
        task="apps.draws.tasks.freeze_due_draws",
        minute="*",
        description="Freeze the ticket list of every committed periodic draw past its cut-off.",
    ),
    CronSchedule(
        name="prizes.payouts_poll",
        task="apps.prizes.tasks.payouts_poll",
        minute="*",
        description="Send approved payouts not yet sent; ask the provider about unknown ones.",
    ),
    CronSchedule(
        name="reporting.rollups_drain",
        task="apps.reporting.tasks.rollups_drain",
        minute="*",
        description="Bring the statistics up to date with queued invoice and award changes.",
    ),
    CronSchedule(
        name="reporting.outbox_deliver",
        task="apps.reporting.tasks.outbox_deliver",
        minute="*",
        description="Push pending statistics events to the government app (in order, signed).",
    ),
    CronSchedule(
        name="prizes.awards_release_due",
        task="apps.prizes.tasks.awards_release_due",
        minute="*/10",
        description="Re-verify held prizes past their delay and make them payable.",
    ),
    CronSchedule(
        name="prizes.awards_expire_due",
        task="apps.prizes.tasks.awards_expire_due",
        minute="30",
        hour="2",
        description="Expire unclaimed prizes and unused coupons; their money returns to the fund.",
    ),
    CronSchedule(
        name="risk.nightly_model",
        task="apps.risk.tasks.nightly_model",
        minute="10",
        hour="1",
        description="Score merchants and consumers against their peers; raise risk alerts.",
    ),
    CronSchedule(
        name="risk.reverify_sweep",
        task="apps.risk.tasks.reverify_sweep",
        minute="45",
        hour="*/2",
        description="Re-verify entered invoices at the tax authority; withdraw red-flushed ones.",
    ),
    CronSchedule(
        name="complaints.cases_check_sla",
        task="apps.complaints.tasks.cases_check_sla",
        minute="*/5",
        description="Warn before case SLAs run out, escalate breaches, close resolved cases.",
    ),
    CronSchedule(
        name="content.articles_publish_due",
        task="apps.content.tasks.articles_publish_due",
        minute="*",
        description="Publish scheduled publicity articles whose time has come.",
    ),
    CronSchedule(
        name="monitoring.housekeeping",
        task="apps.monitoring.tasks.housekeeping",
        minute="*",
        description="Catch up the monitoring rules on the audit trail; expire address blocks.",
    ),
    CronSchedule(
        name="monitoring.nightly_summary",
        task="apps.monitoring.tasks.nightly_summary",
        minute="5",
        hour="7",
        description="Mail the security administrators the last 24 hours of monitoring alerts.",
    ),
)

# Tasks installed by the command carry this marker so stale ones can be found and disabled.
MANAGED_MARKER = "[managed by setup_periodic_tasks]"
