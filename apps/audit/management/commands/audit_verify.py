"""Walk the audit chain and report the first broken or missing record (exit 1 if any)."""

import sys

from django.core.management.base import BaseCommand

from apps.audit.services import audit_verify


class Command(BaseCommand):
    help = "Verify the audit trail's HMAC chain from the first record to the head."

    def handle(self, *args, **options):
        result = audit_verify()
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"audit chain OK: {result.checked} records"))
            return
        self.stderr.write(
            f"audit chain BROKEN after {result.checked} good records: {result.problem}"
        )
        sys.exit(1)
