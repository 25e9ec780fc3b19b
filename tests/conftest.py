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
    # Each xdist worker gets its own cache key space (the Redis server is shared).
    from django.conf import settings

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-{worker}-{os.getpid()}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters, verification answers and rate limits never leak between tests."""
    from django.core.cache import cache

    if hasattr(cache, "delete_pattern"):  # django-redis: only this worker's keys
        cache.delete_pattern("*")
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def _postgres_only(request):
    if request.node.get_closest_marker("postgres") is None:
        return
    if connection.vendor == "postgresql":
        return
    if os.environ.get("LOTTERYINVOICE_REQUIRE_POSTGRES") == "1":
        pytest.fail("This test needs PostgreSQL and LOTTERYINVOICE_REQUIRE_POSTGRES=1 is set.")
    pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def redis_cache():
    """The default cache's Redis client, for tests of what runs only on Redis: skipped on the
    embedded default (local memory), failing in CI, which always runs with REDIS_URL."""
    from django.core.cache import caches

    if not type(caches["default"]).__module__.startswith("django_redis"):
        if os.environ.get("LOTTERYINVOICE_REQUIRE_POSTGRES") == "1":
            pytest.fail("CI runs with REDIS_URL: the cache must be Redis here.")
        pytest.skip("needs Redis (set REDIS_URL)")
    from django_redis import get_redis_connection

    return get_redis_connection("default")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Let transactional tests flush the append-only audit table of the test database only."""
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cur:
        name = connection.settings_dict["NAME"]
        cur.execute(f"ALTER DATABASE \"{name}\" SET lotteryinvoice.allow_audit_truncate = 'on'")
        cur.execute("SET lotteryinvoice.allow_audit_truncate = 'on'")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "needs PostgreSQL" in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.write_sep(
            "=",
            f"{len(skipped)} tests skipped because they need PostgreSQL "
            "(embedded SQLite default; set DATABASE_URL to run them)",
            yellow=True,
        )
    elif connection.vendor != "postgresql":
        terminalreporter.write_line("Ran on SQLite (embedded default); no test needed PostgreSQL.")


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's superuser client, signed in the way the back office admits staff:
    password and second factor (real sign-in flows are tested in tests/accounts)."""
    from tests.accounts.helpers import sign_in_staff

    return sign_in_staff(client, admin_user)


@pytest.fixture
def kicks(monkeypatch):
    """The drain task's `apply_async` calls, recorded (nothing runs: Celery is eager in tests,
    so a kick on commit would drain at once and empty the queue under the test)."""
    from apps.reporting import rollups, tasks

    calls: list[dict] = []
    # This process has not kicked yet (an earlier test's commit may have, within the delay).
    monkeypatch.setattr(rollups, "_last_kick", [0.0])
    monkeypatch.setattr(tasks.rollups_drain_task, "apply_async", lambda *a, **kw: calls.append(kw))
    return calls
