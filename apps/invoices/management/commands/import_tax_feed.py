"""Import tax-authority feed files into the registry (format: docs/formats.md).

    python manage.py import_tax_feed FILE [FILE …]

Each file becomes a `FeedImport` (visible in the admin with its error report). A progress bar
on stderr shows rows, rate and the estimated time left while the file is read, then the
database phases. Exit status 1 if any file failed as a whole; bad rows do not fail a file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from apps.invoices.feed import Progress, feed_import_run
from apps.invoices.models import FeedImport, FeedImportStatus

BAR_WIDTH = 24
PHASES = {
    "reading": "reading",
    "ranking": "checking",
    "writing": "writing",
    "reversals": "reversals",
    "done": "done",
}


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """One line, redrawn in place on a terminal; on a pipe, a line every few seconds."""

    def __init__(self, stream, *, redraw: bool):
        self.stream = stream
        self.redraw = redraw
        self.last_line = 0.0
        self.width = 0

    def render(self, p: Progress) -> str:
        elapsed = max(time.monotonic() - p.started, 1e-6)
        rate = p.rows / elapsed
        if p.phase == "reading" and p.bytes_total:
            fraction = min(1.0, p.fraction)
            eta = elapsed / fraction - elapsed if fraction > 0 else 0
            filled = int(BAR_WIDTH * fraction)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            return (
                f"reading   [{bar}] {fraction:4.0%}  {p.rows:,} rows  {rate:,.0f} rows/s  "
                f"ETA {_duration(eta)}"
            )
        label = PHASES.get(p.phase, p.phase)
        return f"{label:<9} {p.rows:,} rows  {rate:,.0f} rows/s  elapsed {_duration(elapsed)}"

    def __call__(self, p: Progress) -> None:
        line = self.render(p)
        now = time.monotonic()
        if self.redraw:
            padding = " " * max(0, self.width - len(line))
            self.stream.write("\r" + line + padding)
            self.width = len(line)
            if p.phase == "done":
                self.stream.write("\n")
        elif p.phase == "done" or now - self.last_line >= 5:
            self.stream.write(line + "\n")
            self.last_line = now
        self.stream.flush()


class Command(BaseCommand):
    help = "Import tax-authority feed CSV files into the invoice registry."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--progress",
            choices=("auto", "always", "never"),
            default="auto",
            help="Progress bar on stderr: redrawn on a terminal (auto), always, or never.",
        )
        parser.add_argument(
            "--user", help="Username recorded as the uploader of these imports (optional)."
        )

    def handle(self, *args, files, progress, user, **options):
        uploader = None
        if user:
            try:
                uploader = get_user_model().objects.get(username=user)
            except get_user_model().DoesNotExist:
                raise CommandError(_("No user %(name)s.") % {"name": user}) from None
        paths = [Path(f) for f in files]
        for path in paths:
            if not path.is_file():
                raise CommandError(_("No such file: %(path)s") % {"path": path})
        failed = 0
        for path in paths:
            feed_import = FeedImport.objects.create(
                file_name=str(path)[:300], uploaded_by=uploader, bytes_total=path.stat().st_size
            )
            bar = None
            if progress != "never":
                stderr = self.stderr._out if hasattr(self.stderr, "_out") else sys.stderr
                redraw = progress == "always" or (progress == "auto" and stderr.isatty())
                if progress == "always" or redraw:
                    bar = ProgressBar(stderr, redraw=redraw)
            self.stdout.write(
                _("Importing %(path)s (import #%(id)s)") % {"path": path, "id": feed_import.pk}
            )
            timings: dict[str, float] = {}
            with path.open("rb") as stream:
                feed_import = feed_import_run(
                    feed_import=feed_import, stream=stream, on_progress=bar, timings=timings
                )
            self.stdout.write(self._summary(feed_import))
            if options["verbosity"] >= 2 and timings:
                steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
                self.stdout.write(_("Steps: %(steps)s") % {"steps": steps})
            if feed_import.status != FeedImportStatus.DONE:
                failed += 1
        if failed:
            raise CommandError(
                _("%(failed)d of %(count)d files failed.") % {"failed": failed, "count": len(paths)}
            )

    def _summary(self, fi: FeedImport) -> str:
        seconds = (fi.finished_at - fi.started_at).total_seconds() if fi.finished_at else 0
        rate = fi.total_rows / seconds if seconds else 0
        if fi.status != FeedImportStatus.DONE:
            return self.style.ERROR(_("Failed: %(reason)s") % {"reason": fi.error_message})
        text = _(
            "%(rows)s rows in %(seconds).1f s (%(rate)s rows/s): %(inserted)s inserted, "
            "%(updated)s updated, %(unchanged)s unchanged, %(red)s red applied, "
            "%(withdrawn)s entries withdrawn, %(errors)s rows with errors."
        ) % {
            "rows": f"{fi.total_rows:,}",
            "seconds": seconds,
            "rate": f"{rate:,.0f}",
            "inserted": f"{fi.inserted:,}",
            "updated": f"{fi.updated:,}",
            "unchanged": f"{fi.unchanged:,}",
            "red": f"{fi.red_applied:,}",
            "withdrawn": f"{fi.entries_withdrawn:,}",
            "errors": f"{fi.error_rows:,}",
        }
        return self.style.WARNING(text) if fi.error_rows else self.style.SUCCESS(text)
