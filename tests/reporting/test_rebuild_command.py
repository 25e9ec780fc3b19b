"""`manage.py reporting_rebuild --check` on the embedded default: a clear refusal, not SQL noise."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

pytestmark = pytest.mark.django_db


def test_check_off_postgresql_says_it_needs_postgresql(monkeypatch):
    # The recomputation is PostgreSQL SQL; on SQLite it used to fail with a syntax error.
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="needs PostgreSQL"):
        call_command("reporting_rebuild", "--check")
