"""Project-wide test set-up.

- Tests marked `postgres` need PostgreSQL: on the SQLite embedded default they are skipped and
  the summary says how many; with LOTTERYINVOICE_REQUIRE_POSTGRES=1 (CI) they fail instead.
- Celery runs eagerly unless a test starts a real worker.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from lotteryinvoice.celery import app as celery_app



def pytest_configure(config):
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _postgres_only(request):
    if request.node.get_closest_marker("postgres") is None:
        return
    if connection.vendor == "postgresql":
        return
    if os.environ.get("LOTTERYINVOICE_REQUIRE_POSTGRES") == "1":
        pytest.fail("This test needs PostgreSQL and LOTTERYINVOICE_REQUIRE_POSTGRES=1 is set.")
    pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "needs PostgreSQL" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep(
            "=",
            f"{len(skipped)} tests skipped because they need PostgreSQL "
            "(embedded SQLite default; set DATABASE_URL to run them)",
            yellow=True,
        )
    elif connection.vendor != "postgresql":
        terminalreporter.write_line("Ran on SQLite (embedded default); no test needed PostgreSQL.")
