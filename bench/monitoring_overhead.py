"""Benchmark: what abnormal-behaviour monitoring adds to a request, and how fast the audit-stream
consumer keeps up.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_monitoring \
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/monitoring_overhead.py
    ... --requests 2000 --events 5000     # bigger samples

Needs PostgreSQL (DATABASE_URL; the database is created and migrated if missing) and Redis
(REDIS_URL): the cache and the Celery broker are measured for real. Celery tasks are queued,
not run eagerly, to a private queue that is deleted at the end, so no worker picks them up.

It prints medians and 95th percentiles of:

1. the audit hook (`apps.monitoring.hooks.audit_committed`, run after each commit that wrote
   audit records): when a consumer run is already queued (one `cache.add`) and when it queues
   one (`cache.add` + `delay()` to Redis);
2. one `audit_record` in its own transaction, with the hook and with the hook switched off;
3. a whole request through Django's test client (the public page `/draws/verify/`; `/healthz` is
   answered before the middleware stack), with `MonitoringMiddleware` and without it, and a 404
   (which the enumeration rule also counts);
4. the consumer: audit events evaluated per second by `services.events_process`.

Benchmarks print figures; they are not timed tests. Record them in docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_QUEUE = "bench_monitoring_overhead"


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    return f"median {statistics.median(samples) * 1000:7.3f} ms   p95 {p95 * 1000:7.3f} ms"


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def interleaved(a, b, n: int) -> tuple[list[float], list[float]]:
    """Time `a` and `b` alternately, so that load on the machine hits both alike."""
    first, second = [], []
    for _ in range(n):
        for fn, out in ((a, first), (b, second)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return first, second


def diff(a: list[float], b: list[float]) -> str:
    return f"{(statistics.median(a) - statistics.median(b)) * 1000:+7.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("Set DATABASE_URL (PostgreSQL) and REDIS_URL.")
    ensure_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client, override_settings
    from django_redis import get_redis_connection

    from apps.audit import services as audit_services
    from apps.audit.models import AuditCategory
    from apps.monitoring import hooks, services, state
    from apps.monitoring.models import MonitoringRule
    from lotteryinvoice.celery import app as celery_app

    call_command("migrate", verbosity=0)
    import logging

    logging.disable(logging.WARNING)  # 404s and task logs would drown the figures
    settings.ALLOWED_HOSTS = ["*"]
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_routes = {"apps.monitoring.tasks.*": {"queue": BENCH_QUEUE}}
    services.cursor_move_to_head()
    redis = get_redis_connection("default")
    n = args.requests
    print(f"monitoring overhead — {n} samples each, PostgreSQL + Redis\n")

    try:
        # 0. For scale: one round trip to the cache (Redis), which is what most of it costs.
        print("one cache.get (Redis)        ", ms(timed(lambda: cache.get("bench:none"), n)))

        # 1. The hook alone.
        cache.add(hooks.PENDING_KEY, 1, 600)
        print("hook, run already queued     ", ms(timed(hooks.audit_committed, n)))

        def queue_one():
            hooks.clear_pending()
            hooks.audit_committed()

        clear_cost = timed(hooks.clear_pending, n)
        queued = timed(queue_one, n)
        print(
            "hook, queues a consumer run  ",
            ms([q - c for q, c in zip(queued, clear_cost, strict=True)]),
        )

        # 2. audit_record in its own transaction, with and without the hook.
        def record():
            with transaction.atomic():
                audit_services.audit_record(
                    action="bench.event", category=AuditCategory.STATE, target_repr="bench"
                )

        cache.add(hooks.PENDING_KEY, 1, 600)
        original = audit_services._monitoring_hook

        def record_without_hook():
            audit_services._monitoring_hook = lambda: None
            try:
                record()
            finally:
                audit_services._monitoring_hook = original

        with_hook, without_hook = interleaved(record, record_without_hook, n)
        print("audit_record + hook          ", ms(with_hook))
        print("audit_record, hook off       ", ms(without_hook))
        print("  → the hook adds (median)   ", diff(with_hook, without_hook))

        # 3. Whole requests, with and without the middleware (alternating, to share the noise).
        # A test client builds its middleware chain on its first request: one client each.
        stack = list(settings.MIDDLEWARE)
        without = [m for m in stack if not m.endswith("MonitoringMiddleware")]
        clients = {}
        for name, middleware in (("on", stack), ("off", without)):
            with override_settings(MIDDLEWARE=middleware):
                clients[name] = Client()
                clients[name].get("/draws/verify/")
        for path in ("/draws/verify/", "/no-such-page/"):
            on, off = interleaved(
                lambda path=path: clients["on"].get(path),
                lambda path=path: clients["off"].get(path),
                n,
            )
            print(f"GET {path:14} with middleware   ", ms(on))
            print(f"GET {path:14} without middleware", ms(off))
            print("  → the middleware adds (median)", diff(on, off))

        # 4. The consumer's throughput.
        from django.contrib.auth import get_user_model

        staff = [
            get_user_model().objects.get_or_create(
                username=f"bench_staff_{i}", defaults={"is_staff": True}
            )[0]
            for i in range(500)
        ]
        # A quiet stream (no alerts): reveals inside working hours, below the burst threshold.
        MonitoringRule.objects.filter(code="reveal_after_hours").update(
            params={"work_start_hour": 0, "work_end_hour": 24, "work_weekdays": list(range(7))}
        )
        cache.delete(state.STATE_KEY)
        services.cursor_move_to_head()
        for i in range(args.events):
            if i % 3:  # two in three: a reveal by one of 500 staff (the reveal rules run)
                audit_services.audit_record(
                    action="personal_data.revealed",
                    category=AuditCategory.REVEAL,
                    target_repr="bench consumer",
                    actor=staff[i % len(staff)],
                    after={"field": "phone"},
                )
            else:  # one in three: an event no rule looks at
                audit_services.audit_record(action="bench.event")
        start = time.perf_counter()
        total = 0
        while True:
            done = services.events_process(batch_size=500, max_batches=1000)
            total += done
            if not done:
                break
        elapsed = time.perf_counter() - start
        print(f"consumer: {total} events in {elapsed:.2f} s = {total / elapsed:,.0f} events/s")
    finally:
        redis.delete(BENCH_QUEUE)


if __name__ == "__main__":
    main()
