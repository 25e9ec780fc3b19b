"""Benchmark: the case desk's pages over 100,000 open cases on PostgreSQL.

    .venv/bin/python bench/complaints_queue.py                  # 100,000 open cases
    .venv/bin/python bench/complaints_queue.py --cases 20000    # a quicker run
    .venv/bin/python bench/complaints_queue.py --reuse          # keep the data of the last run
    .venv/bin/python bench/complaints_queue.py --explain        # also print the query plans

It creates (or, with --reuse, keeps) a database of its own next to the one in DATABASE_URL
(default: postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_complaints), migrates it and
inserts set-based with generate_series: 5 queues of 4 handlers each and one supervisor of all of
them, 10 categories, `--cases` open cases spread over the queues (status, priority and due times
varied, a tenth unassigned, a few percent escalated) and a fifth as many closed ones.

Then it renders the desk's pages through Django's test client, signed in like a real staff
session (second factor passed), and prints for each the median and 95th percentile of
`--runs` renders and the number of SQL queries:

- the team queue of the supervisor (every open case of the five queues), target < 300 ms;
- the same filtered to one queue, to one handler, and its 200th page;
- "My cases" of a handler, the overdue / at-risk list and one case's page.

Benchmarks print figures; they are not timed tests. Record them in docs/complaints.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_complaints"
QUEUES = 5
HANDLERS_PER_QUEUE = 4
TARGET_MS = 300


def database_url(args) -> str:
    url = args.database_url or DEFAULT_SERVER
    parts = urlsplit(url)
    if args.database_name:
        parts = parts._replace(path="/" + args.database_name)
    return urlunsplit(parts)


def create_database(url: str, *, reuse: bool) -> bool:
    """Create the bench database; returns True if it was (re)created."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return False
        if exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def seed(cases: int) -> dict:
    """Queues, staff, categories and cases; returns the ids the timings need."""
    from decimal import Decimal

    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    from apps.accounts.models import User
    from apps.accounts.roles import ROLES_BY_CODE, sync_roles
    from apps.complaints.choices import CaseKind
    from apps.complaints.demo import seed_calendar
    from apps.complaints.models import (
        CaseCategory,
        CaseQueue,
        CaseQueueMembership,
        CaseSettings,
    )

    sync_roles()
    seed_calendar()
    CaseSettings.load()
    handler_group = Group.objects.get(name=ROLES_BY_CODE["complaint_handler"].group_name)
    supervisor_group = Group.objects.get(name=ROLES_BY_CODE["complaint_supervisor"].group_name)
    with transaction.atomic():
        supervisor = User.objects.create(username="bench_supervisor", is_staff=True)
        supervisor.groups.add(supervisor_group)
        kinds = list(CaseKind.values)
        handlers = []
        for q in range(QUEUES):
            queue = CaseQueue.objects.create(code=f"q{q}", name=f"队列 {q}")
            CaseQueueMembership.objects.create(
                queue=queue, user=supervisor, is_supervisor=True, available=False
            )
            for c in range(2):
                CaseCategory.objects.create(
                    code=f"q{q}-c{c}",
                    name=f"分类 {q}-{c}",
                    kind=kinds[(q * 2 + c) % len(kinds)],
                    queue=queue,
                    first_response_hours=Decimal(4),
                    resolution_days=Decimal(5),
                )
            for h in range(HANDLERS_PER_QUEUE):
                user = User.objects.create(username=f"bench_h{q}_{h}", is_staff=True)
                user.groups.add(handler_group)
                CaseQueueMembership.objects.create(queue=queue, user=user)
                handlers.append(user.pk)
    closed = cases // 5
    with connection.cursor() as cur, transaction.atomic():
        # Categories are numbered queue by queue, handlers too: case n of queue q gets one of
        # that queue's categories and (nine times in ten) one of its handlers.
        cur.execute(
            """
            WITH cats AS (
                SELECT id, queue_id, kind,
                       row_number() OVER (PARTITION BY queue_id ORDER BY id) - 1 AS k
                FROM complaints_casecategory
            ), queues AS (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS q FROM complaints_casequeue
            ), members AS (
                SELECT m.queue_id, m.user_id,
                       row_number() OVER (PARTITION BY m.queue_id ORDER BY m.user_id) - 1 AS h
                FROM complaints_casequeuemembership m WHERE NOT m.is_supervisor
            ), plan AS (
                SELECT n,
                       n %% %(queues)s AS q,
                       (n / %(queues)s) %% 2 AS k,
                       (n * 7) %% 10 AS r,
                       n <= %(open)s AS open,
                       now() - make_interval(mins => (n * 37) %% 20000) AS opened_at
                FROM generate_series(1, %(total)s) AS n
            )
            INSERT INTO complaints_case (
                created_at, updated_at, public_id, reference, kind, channel, status, priority,
                category_id, queue_id, assignee_id, subject, description, caller_name,
                caller_phone, caller_phone_index, hotline_ticket, opened_at, first_response_due,
                resolution_due, first_responded_at, resolved_at, closed_at, reopened_count,
                escalated, escalated_at, escalation_reason, outcome, resolution_summary,
                reported_merchant_name, rating_comment
            )
            SELECT p.opened_at, p.opened_at, gen_random_uuid(),
                   'ZX2026-' || lpad(p.n::text, 6, '0'), c.kind, 'staff',
                   CASE WHEN NOT p.open THEN 'closed'
                        WHEN p.r = 0 THEN 'new'
                        WHEN p.r < 4 THEN 'assigned'
                        WHEN p.r < 8 THEN 'in_progress'
                        ELSE 'awaiting_consumer' END,
                   1 + (p.n * 13) %% 4,
                   c.id, qu.id,
                   CASE WHEN p.open AND p.r = 0 THEN NULL ELSE mb.user_id END,
                   '基准测试案件 ' || p.n, '基准测试', '', '', NULL, NULL,
                   p.opened_at,
                   p.opened_at + interval '4 hours',
                   p.opened_at + interval '5 days',
                   CASE WHEN p.r >= 4 OR NOT p.open THEN p.opened_at + interval '1 hour' END,
                   CASE WHEN NOT p.open THEN p.opened_at + interval '2 days' END,
                   CASE WHEN NOT p.open THEN p.opened_at + interval '9 days' END,
                   0,
                   p.open AND p.n %% 29 = 0,
                   CASE WHEN p.open AND p.n %% 29 = 0 THEN p.opened_at + interval '5 hours' END,
                   CASE WHEN p.open AND p.n %% 29 = 0 THEN 'sla.first_response_breached'
                        ELSE '' END,
                   CASE WHEN NOT p.open THEN 'answered' ELSE '' END, '', '', ''
            FROM plan p
            JOIN queues qu ON qu.q = p.q
            JOIN cats c ON c.queue_id = qu.id AND c.k = p.k
            JOIN members mb ON mb.queue_id = qu.id AND mb.h = (p.n / 10) %% %(per)s
            """,
            {
                "queues": QUEUES,
                "per": HANDLERS_PER_QUEUE,
                "open": cases,
                "total": cases + closed,
            },
        )
        cur.execute(
            "INSERT INTO complaints_casesequence (year, last_value) VALUES (2026, %s) "
            "ON CONFLICT (year) DO UPDATE SET last_value = EXCLUDED.last_value",
            [cases + closed],
        )
    with connection.cursor() as cur:
        # What autovacuum does on a live system: statistics and the visibility map (which
        # lets the counts run as index-only scans).
        cur.execute("VACUUM ANALYZE complaints_case")
    return {"supervisor": supervisor.pk, "handler": handlers[0]}


def signed_in_client(user_id: int):
    """A test client with a staff session that passed password and TOTP (like
    tests.accounts.helpers.sign_in_staff)."""
    from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY
    from allauth.mfa.models import Authenticator
    from django.test import Client
    from django.utils import timezone

    from apps.accounts.models import User

    user = User.objects.get(pk=user_id)
    User.objects.filter(pk=user.pk).update(password_changed_at=timezone.now())
    client = Client()
    client.force_login(user)
    session = client.session
    now = time.time()
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {"method": "password", "at": now, "username": user.get_username()},
        {"method": "mfa", "at": now, "type": Authenticator.Type.TOTP},
    ]
    session["account_authentication_methods_user"] = str(user.pk)
    session.save()
    return client


ROW = re.compile(rb'<tr class="priority-')


def measure(client, url: str, runs: int) -> tuple[float, float, float, float, int, int]:
    """(median ms, p95 ms, median CPU ms of this process, SQL ms, queries, cases on the
    page) of rendering `url`. CPU time is what the web process itself spends (Python and
    the driver), the SQL time what the database answers took: under a loaded machine the
    wall-clock figures wait for a core, these two much less."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # warm: templates, caches, the session row
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    sql_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    return (
        statistics.median(times),
        p95,
        statistics.median(cpu),
        sql_ms,
        len(queries),
        len(ROW.findall(response.content)),
    )


def explain(querysets: list[tuple[str, object]]) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        for label, queryset in querysets:
            sql, params = queryset.query.sql_with_params()
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
            print(f"\n-- {label}")
            for (line,) in cur.fetchall():
                print("   ", line)


def run(args) -> None:
    url = database_url(args)
    created = create_database(url, reuse=args.reuse)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")
    # As deployed (templates cached, no query log), unless --debug.
    os.environ["DJANGO_DEBUG"] = "1" if args.debug else "0"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.urls import reverse

    print(f"database: {urlsplit(url).path.lstrip('/')}  DEBUG={settings.DEBUG}")
    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"  migrate {time.perf_counter() - start:.1f} s")

    from apps.accounts.models import User
    from apps.complaints.models import Case, CaseQueue

    if created or not Case.objects.exists():
        start = time.perf_counter()
        ids = seed(args.cases)
        print(
            f"  seeded {args.cases:,} open cases (+{args.cases // 5:,} closed) "
            f"in {time.perf_counter() - start:.1f} s"
        )
    else:
        ids = {
            "supervisor": User.objects.get(username="bench_supervisor").pk,
            "handler": User.objects.get(username="bench_h0_0").pk,
        }
    open_count = Case.objects.exclude(status__in=["resolved", "closed"]).count()
    print(f"  open cases: {open_count:,}; all cases: {Case.objects.count():,}")

    supervisor = signed_in_client(ids["supervisor"])
    handler = signed_in_client(ids["handler"])
    first_queue = CaseQueue.objects.order_by("pk").first().pk
    one_case = Case.objects.filter(assignee_id=ids["handler"]).order_by("pk").first()
    queue_url = reverse("complaints:queue")
    pages = [
        ("team queue, all queues (supervisor)", supervisor, queue_url),
        ("team queue, one queue", supervisor, f"{queue_url}?queue={first_queue}"),
        ("team queue, one handler", supervisor, f"{queue_url}?assignee={ids['handler']}"),
        ("team queue, page 200", supervisor, f"{queue_url}?page=200"),
        ("my cases (handler)", handler, reverse("complaints:mine")),
        ("overdue / at risk (supervisor)", supervisor, reverse("complaints:at_risk")),
        ("case page", handler, reverse("complaints:case_detail", args=[one_case.reference])),
    ]
    print(f"\n  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"  {'page':<40} {'median':>9} {'p95':>9} {'CPU':>9} {'SQL':>9} {'queries':>8} {'rows':>5}"
    )
    worst = 0.0
    for label, client, page_url in pages:
        median, p95, cpu_ms, sql_ms, queries, shown = measure(client, page_url, args.runs)
        worst = max(worst, median) if label.startswith("team queue, all") else worst
        print(
            f"  {label:<40} {median:6.1f} ms {p95:6.1f} ms {cpu_ms:6.1f} ms {sql_ms:6.1f} ms "
            f"{queries:8d} {shown:5d}"
        )
    verdict = "met" if worst < TARGET_MS else "NOT met"
    print(f"\n  target: team queue page < {TARGET_MS} ms (median) — {verdict}")
    if args.explain:
        from apps.complaints import selectors

        user = User.objects.get(pk=ids["supervisor"])
        queryset = selectors.case_list_queue(user=user)
        from django.db.models import Count

        explain(
            [
                ("queue page rows", queryset[:50]),
                ("queue page count", queryset.order_by().values("status").annotate(n=Count("id"))),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--database-name", default=None)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--debug", action="store_true", help="render with DEBUG=True")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
