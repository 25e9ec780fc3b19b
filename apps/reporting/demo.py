"""Demo data for the dashboard: the demo seed writes its invoices and awards in bulk (past the
services' hooks), so the rollups are recomputed from scratch afterwards."""

from __future__ import annotations

from django.db import connection


def rebuild_for_demo() -> str:
    """Recompute the rollups over whatever the seed wrote; returns a line for its report."""
    from .models import DailyRollup
    from .rebuild import rebuild

    rebuild()
    cells = DailyRollup.objects.filter(submitted__gt=0).count()
    where = "SQL" if connection.vendor == "postgresql" else "the hooks"
    return (
        f"statistics rollups rebuilt ({cells} day × area × industry × campaign cells, via {where})"
    )
