"""Write a draw's published files: `python manage.py draw_export DRAW_CODE OUTDIR`.

- `tickets.csv`: the tickets file of spec §2 (from freezing on), checked against the frozen
  count and digest while it is written;
- `bundle.json`: the publication bundle of spec §7 (only once the draw is published: it holds
  the server seed).

Check both with `python3 tools/verify_draw.py OUTDIR/bundle.json OUTDIR/tickets.csv`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.draws import engine
from apps.draws.exceptions import DrawError
from apps.draws.models import PeriodicDraw
from apps.draws.selectors import draw_bundle, tickets_public, write_tickets_file


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename: a reader never
    sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as sink:
            write(sink)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = "Write bundle.json and tickets.csv of a periodic draw into a directory."

    def add_arguments(self, parser):
        parser.add_argument("code", help="the draw's public code, e.g. ZZ-2026-03-B")
        parser.add_argument("outdir", help="directory to write into (created if missing)")

    def handle(self, *args, code, outdir, **options):
        try:
            draw = PeriodicDraw.objects.get(code=code)
        except PeriodicDraw.DoesNotExist:
            raise CommandError(f"no draw with code {code!r}") from None
        if not tickets_public(draw):
            raise CommandError(f"draw {code} has no frozen ticket list yet (status {draw.status})")
        directory = Path(outdir)
        directory.mkdir(parents=True, exist_ok=True)
        try:
            _atomic_write(directory / "tickets.csv", lambda sink: write_tickets_file(draw, sink))
        except DrawError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        written = ["tickets.csv"]
        if draw.is_published:
            text = engine.bundle_json(draw_bundle(draw)).encode("utf-8")
            _atomic_write(directory / "bundle.json", lambda sink: sink.write(text))
            written.append("bundle.json")
        else:
            self.stderr.write(
                f"draw {code} is not published yet (status {draw.status}): bundle.json, which "
                "reveals the server seed, is written only after publication."
            )
        audit_record(
            action="draw.exported",
            category=AuditCategory.EXPORT,
            target=draw,
            after={"files": written, "ticket_count": draw.ticket_count},
        )
        for name in written:
            self.stdout.write(str(directory / name))
