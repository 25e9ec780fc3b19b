"""Install the schedules declared in `apps.common.schedules` into django-celery-beat.

Idempotent: creates or updates each declared task and disables managed tasks that are no longer
declared (never deletes, so their history stays visible to officials).
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.common.schedules import MANAGED_MARKER, SCHEDULES


class Command(BaseCommand):
    help = "Install the declared Celery beat schedules (cron only)."

    @transaction.atomic
    def handle(self, *args, **options):
        declared = set()
        for item in SCHEDULES:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=item.minute,
                hour=item.hour,
                day_of_week=item.day_of_week,
                day_of_month=item.day_of_month,
                month_of_year=item.month_of_year,
                timezone="Asia/Shanghai",
            )
            _task, created = PeriodicTask.objects.update_or_create(
                name=item.name,
                defaults={
                    "task": item.task,
                    "crontab": crontab,
                    "interval": None,
                    "enabled": True,
                    "description": f"{item.description} {MANAGED_MARKER}",
                },
            )
            declared.add(item.name)
            self.stdout.write(f"{'created' if created else 'updated'}: {item.name}")
        stale = PeriodicTask.objects.filter(description__endswith=MANAGED_MARKER).exclude(
            name__in=declared
        )
        for task in stale.filter(enabled=True):
            task.enabled = False
            task.save(update_fields=["enabled"])
            self.stdout.write(f"disabled (no longer declared): {task.name}")
