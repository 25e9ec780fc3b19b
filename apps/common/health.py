"""Liveness and readiness probes for load balancers, systemd and monitoring.

- `/healthz`: the process is up and answering. No dependency is touched, so a database outage
  never makes the supervisor restart healthy web processes.
- `/readyz`: this process can do useful work: the database answers, the cache answers, the
  Celery broker accepts a connection and no migration is left unapplied. 200 when all pass,
  503 otherwise, with one word per check.

Both are answered by `HealthCheckMiddleware`, placed right after the request-id middleware and
before everything else: no session, no sign-in, no CSRF, no rate limit, no HTTPS redirect and no
ALLOWED_HOSTS check (a load balancer probes by address over plain HTTP on the private network),
and no personal data or error text in the answer (the details go to the log, with the request
id). nginx's sample config keeps `/readyz` to the private network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
# Seconds a probe may spend on one dependency; a probe that hangs is worse than one that fails.
BROKER_TIMEOUT = 2.0
CACHE_KEY = "health:readyz"

_migrations_done = False  # once all applied, they stay applied for this process's code
_migrations_lock = threading.Lock()


def check_database() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):  # pragma: no cover - a database that cannot count
            raise RuntimeError("unexpected answer to SELECT 1")


def check_cache() -> None:
    from django.core.cache import cache

    token = str(time.monotonic_ns())
    cache.set(CACHE_KEY, token, timeout=30)
    if cache.get(CACHE_KEY) != token:
        raise RuntimeError("the cache did not return what was just stored")


def check_broker() -> str:
    """Open (and close) a connection to the Celery broker. Eager mode has no broker to check."""
    from lotteryinvoice.celery import app

    if app.conf.task_always_eager:
        return "eager"
    with app.connection_for_write(connect_timeout=BROKER_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)
    return "ok"


def check_migrations() -> None:
    global _migrations_done
    if _migrations_done:
        return
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    with _migrations_lock:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise RuntimeError(f"{len(plan)} unapplied migrations")
        _migrations_done = True


def _reset_migration_memo() -> None:
    """Tests only: forget that migrations were found applied."""
    global _migrations_done
    _migrations_done = False


CHECKS: tuple[tuple[str, Callable[[], str | None]], ...] = (
    ("database", check_database),
    ("migrations", check_migrations),
    ("cache", check_cache),
    ("broker", check_broker),
)


def readiness() -> tuple[bool, dict[str, str]]:
    """Run every check; a failed database check skips the migration check (it needs the DB)."""
    results: dict[str, str] = {}
    for name, check in CHECKS:
        if name == "migrations" and results.get("database") != "ok":
            results[name] = "skipped"
            continue
        try:
            results[name] = check() or "ok"
        except Exception as exc:
            # The class name only: messages can carry host names and credentials from URLs.
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "fail"
    ready = all(value in {"ok", "eager"} for value in results.values())
    return ready, results


def _answer(payload: dict, status: int = 200) -> HttpResponse:
    response = JsonResponse(payload, status=status)
    response["Cache-Control"] = "no-store"
    return response


def healthz_response() -> HttpResponse:
    return _answer({"status": "ok"})


def readyz_response() -> HttpResponse:
    ready, checks = readiness()
    payload = {"status": "ok" if ready else "unavailable", "checks": checks}
    return _answer(payload, 200 if ready else 503)


class HealthCheckMiddleware:
    """Answers GET/HEAD /healthz and /readyz before any other middleware sees the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path in (HEALTH_PATH, READY_PATH):
            if request.method not in ("GET", "HEAD"):
                response = HttpResponse(status=405)
                response["Allow"] = "GET, HEAD"
                return response
            return healthz_response() if path == HEALTH_PATH else readyz_response()
        return self.get_response(request)
