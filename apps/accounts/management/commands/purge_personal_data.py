"""Erase personal data of consumers past the retention period (crypto-shred), keeping money
records pseudonymous. Safe to run repeatedly; scheduled nightly."""

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.services import consumer_purge_expired_personal_data


class Command(BaseCommand):
    help = "Erase names, ID numbers and phones of consumers inactive beyond the retention period."

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention-days", type=int, default=settings.PERSONAL_DATA_RETENTION_DAYS
        )

    def handle(self, *args, retention_days, **options):
        if retention_days < 180:
            self.stderr.write("Refusing: retention shorter than 180 days (audit needs 6 months).")
            raise SystemExit(2)
        erased = consumer_purge_expired_personal_data(retention_days=retention_days)
        self.stdout.write(f"erased personal data of {erased} consumers")
