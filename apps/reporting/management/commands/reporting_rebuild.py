"""`manage.py reporting_rebuild [--check]`: recompute every rollup from scratch, or only check.

With `--check` nothing is written: the stored rollups are compared with a from-scratch
recomputation and every difference is printed (exit status 1 if there is any).
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from apps.reporting import rebuild, rollups


class Command(BaseCommand):
    help = "Recompute the statistics rollups from scratch (or --check them)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="compare only, write nothing")

    def handle(self, *args, check: bool = False, **options):
        started = time.monotonic()
        if check:
            if connection.vendor != "postgresql":
                # The recomputation (`rebuild.expected`) is PostgreSQL SQL (time zones, FILTER).
                raise CommandError("--check needs PostgreSQL (DATABASE_URL)")
            rollups.drain()  # changes still queued are not counted yet (queued mode)
            diff = rebuild.differences()
            for table, rows in diff.items():
                for key, want, have in rows[:20]:
                    self.stdout.write(f"{table} {key}: expected {want}, stored {have}")
            if diff:
                raise CommandError(
                    f"rollups differ from a recomputation in {', '.join(sorted(diff))}"
                )
            self.stdout.write(self.style.SUCCESS("rollups equal a from-scratch recomputation"))
            return
        rebuild.rebuild()
        self.stdout.write(
            self.style.SUCCESS(f"rollups rebuilt in {time.monotonic() - started:.1f} s")
        )
