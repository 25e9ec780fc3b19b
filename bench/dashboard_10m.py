"""Benchmark: every dashboard panel over ten million invoices, next to the raw GROUP BY it
replaces.

    .venv/bin/python bench/dashboard_10m.py                      # 10,000,000 invoices
    .venv/bin/python bench/dashboard_10m.py --invoices 1000000   # a quicker run
    .venv/bin/python bench/dashboard_10m.py --reuse              # keep the last run's data

It creates (or, with --reuse, keeps) its own database (default
postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_dashboard), migrates it and inserts,
set-based with generate_series (server side, a million rows per statement): one campaign over
180 days, 5,000 merchants in 13 Zhengzhou districts × 24 industry classes, one consumer per ten
invoices, 80% entered, 15% rejected for six reasons, 2% reversed, 2% held, 1% pending. Then it
builds the rollups from scratch (`apps.reporting.rebuild.rebuild`, the same code as
`manage.py reporting_rebuild`) and times, for the whole campaign period and for the last 30
days, each panel (`apps.reporting.selectors.PANELS`; median of 5 runs after a warm-up) and the
raw query over `invoices_invoice` that computes the same figures without rollups (median of
2). Target: each panel <= 100 ms. Awards are not generated here (their rollup is read the same
way and is far smaller). Benchmarks print figures; they are not timed tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_dashboard"
AREAS = [
    "410102", "410103", "410104", "410105", "410106", "410108", "410122",
    "410181", "410182", "410183", "410184", "410185", "410171",
]  # fmt: skip
INDUSTRIES = [
    "5211", "5212", "5221", "5223", "5231", "5232", "5241", "5251", "5261", "5271", "5281",
    "5291", "6210", "6220", "6231", "6232", "6241", "6291", "6110", "8051", "8052", "9011",
    "9013", "9030",
]  # fmt: skip
KNOWN_TEXT_COLUMNS = [
    "number", "invoice_type", "seller_uscc", "seller_name", "buyer_name", "buyer_tax_id",
    "source_channel", "status", "rejection_code",
]  # fmt: skip
REASONS = [
    "invoice.below_minimum", "limit.daily_reached", "invoice.name_mismatch", "invoice.duplicate",
    "invoice.not_eligible_industry", "risk.blocked",
]  # fmt: skip


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    yield
    print(f"  {label:<52} {time.perf_counter() - start:9.2f} s", flush=True)


def create_database(url: str, *, reuse: bool) -> bool:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return False
        if exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def insert_population(invoices: int, start) -> int:
    from django.db import connection

    from apps.invoices.models import Campaign

    consumers = max(1, invoices // 10)
    campaign = Campaign.objects.create(
        code="bench",
        name="压测活动",
        starts_at=start - timedelta(days=1),
        ends_at=start + timedelta(days=200),
        status="active",
    )
    with connection.cursor() as cur:
        with timed(f"insert {consumers:,} users and consumers"):
            cur.execute(
                "INSERT INTO accounts_user (password, is_superuser, username, first_name, "
                "last_name, email, is_staff, is_active, date_joined) "
                "SELECT '!', false, 'bench' || g, '', '', '', false, true, now() "
                "FROM generate_series(1, %s) g",
                [consumers],
            )
            cur.execute(
                "INSERT INTO accounts_consumer (created_at, updated_at, public_id, real_name, "
                "id_number, phone, verification_status, status, user_id) "
                "SELECT now(), now(), gen_random_uuid(), '', '', '', 'unverified', 'active', u.id "
                "FROM accounts_user u WHERE u.username LIKE 'bench%%'"
            )
        with timed("insert 5,000 merchants (13 areas x 24 industries)"):
            cur.execute(
                "INSERT INTO merchants_merchant (created_at, updated_at, uscc, name, area_code, "
                "industry_code, address, status, status_reason) "
                "SELECT now(), now(), '91410105MA' || lpad(g::text, 8, '0'), '压测商户' || g, "
                "(%s::text[])[1 + g %% 13], (%s::text[])[1 + (g / 13) %% 24], '', 'active', '' "
                "FROM generate_series(1, 5000) g",
                [AREAS, INDUSTRIES],
            )
        cur.execute("SELECT min(id), max(id) FROM accounts_consumer")
        first_consumer, last_consumer = cur.fetchone()
        cur.execute("SELECT min(id) FROM merchants_merchant")
        (first_merchant,) = cur.fetchone()
        seconds = 180 * 86400
        # Text columns other apps add with a NOT NULL default ('') — filled with ''.
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'invoices_invoice' AND is_nullable = 'NO' AND data_type IN ('text', "
            "'character varying') AND column_name <> ALL(%s)",
            [KNOWN_TEXT_COLUMNS],
        )
        extra = [name for (name,) in cur.fetchall()]
        extra_columns = "".join(f", {name}" for name in extra)
        extra_values = ", ''" * len(extra)
        # Load first, index after: plain indexes and foreign keys of the invoice table are
        # dropped for the load and recreated (validated) in bulk afterwards.
        cur.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'invoices_invoice'::regclass AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        )
        indexes = cur.fetchall()
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'invoices_invoice'::regclass AND contype = 'f'"
        )
        foreign_keys = cur.fetchall()
        for name, _definition in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        for name, _definition in foreign_keys:
            cur.execute(f'ALTER TABLE invoices_invoice DROP CONSTRAINT "{name}"')
        with timed(f"insert {invoices:,} invoices over 180 days"):
            step = 1_000_000
            for low in range(1, invoices + 1, step):
                high = min(invoices, low + step - 1)
                cur.execute(
                    f"""
                    INSERT INTO invoices_invoice (created_at, updated_at, uid, number,
                        invoice_type, issue_date, seller_uscc, seller_name, buyer_name,
                        buyer_tax_id, amount, tax, total, source_channel, status,
                        rejection_code, submitted_at, decided_at, entered_at,
                        verification_attempts, campaign_id, consumer_id, merchant_id{extra_columns})
                    SELECT now(), now(), gen_random_uuid(),
                        '26411' || lpad(g::text, 15, '0'), '32', s::date, '', '', '', '',
                        CASE WHEN st = 'pending' THEN NULL ELSE t - round(t * 0.115, 2) END,
                        CASE WHEN st = 'pending' THEN NULL ELSE round(t * 0.115, 2) END,
                        t, 'app', st,
                        CASE WHEN st = 'rejected' THEN (%(reasons)s::text[])[1 + g %% 6]
                             ELSE '' END,
                        s, s, CASE WHEN st IN ('accepted', 'reversed') THEN s END, 0,
                        CASE WHEN st IN ('accepted', 'reversed', 'held') THEN %(campaign)s END,
                        %(first_consumer)s + (g::bigint * 7919) %% %(consumers)s,
                        CASE WHEN st = 'pending' THEN NULL
                             ELSE %(first_merchant)s + (g::bigint * 104729) %% 5000 END
                        {extra_values}
                    FROM (
                        SELECT g,
                            %(start)s + ((g::bigint * 15485863) %% %(seconds)s) * interval '1 s'
                                AS s,
                            (100 + (g * 37) %% 900)::numeric(14, 2) AS t,
                            CASE WHEN g %% 100 < 80 THEN 'accepted'
                                 WHEN g %% 100 < 95 THEN 'rejected'
                                 WHEN g %% 100 < 97 THEN 'reversed'
                                 WHEN g %% 100 < 99 THEN 'held'
                                 ELSE 'pending' END AS st
                        FROM generate_series(%(low)s, %(high)s) g
                    ) x
                    """,
                    {
                        "start": start,
                        "seconds": seconds,
                        "reasons": REASONS,
                        "campaign": campaign.pk,
                        "first_consumer": first_consumer,
                        "consumers": last_consumer - first_consumer + 1,
                        "first_merchant": first_merchant,
                        "low": low,
                        "high": high,
                    },
                )
        with timed(f"recreate {len(indexes)} indexes and {len(foreign_keys)} foreign keys"):
            for _name, definition in indexes:
                cur.execute(definition)
            for name, definition in foreign_keys:
                cur.execute(f'ALTER TABLE invoices_invoice ADD CONSTRAINT "{name}" {definition}')
        with timed("ANALYZE"):
            cur.execute("ANALYZE")
    return campaign.pk


# The raw queries each panel replaces: the same figures straight from invoices (and merchants).
LOCAL_DAY = "(i.submitted_at AT TIME ZONE 'Asia/Shanghai')::date"
RAW = {
    "today": f"""SELECT count(*), count(*) FILTER (WHERE status = 'accepted'),
        count(*) FILTER (WHERE status = 'rejected'), count(DISTINCT consumer_id)
        FROM invoices_invoice i WHERE {LOCAL_DAY} = %(to)s""",
    "trend": f"""SELECT {LOCAL_DAY} d, count(*), count(*) FILTER (WHERE status = 'accepted'),
        count(*) FILTER (WHERE status = 'rejected'), count(DISTINCT consumer_id),
        sum(total) FILTER (WHERE status = 'accepted')
        FROM invoices_invoice i WHERE {LOCAL_DAY} BETWEEN %(from)s AND %(to)s GROUP BY d""",
    "funnel": f"""SELECT count(*), count(amount), count(*) FILTER (WHERE status IN
        ('accepted', 'reversed')) FROM invoices_invoice i
        WHERE {LOCAL_DAY} BETWEEN %(from)s AND %(to)s""",
    "areas": f"""SELECT m.area_code, count(*), count(*) FILTER (WHERE i.status = 'accepted'),
        sum(i.total) FILTER (WHERE i.status = 'accepted')
        FROM invoices_invoice i LEFT JOIN merchants_merchant m ON m.id = i.merchant_id
        WHERE {LOCAL_DAY} BETWEEN %(from)s AND %(to)s GROUP BY 1""",
    "industries": f"""SELECT substr(m.industry_code, 1, 2), count(*),
        count(*) FILTER (WHERE i.status = 'accepted')
        FROM invoices_invoice i LEFT JOIN merchants_merchant m ON m.id = i.merchant_id
        WHERE {LOCAL_DAY} BETWEEN %(from)s AND %(to)s GROUP BY 1""",
    "day_x_area": f"""SELECT {LOCAL_DAY}, m.area_code, count(*)
        FROM invoices_invoice i LEFT JOIN merchants_merchant m ON m.id = i.merchant_id
        WHERE {LOCAL_DAY} BETWEEN %(from)s AND %(to)s GROUP BY 1, 2""",
    "rejections": f"""SELECT rejection_code, count(*) FROM invoices_invoice i
        WHERE status = 'rejected' AND {LOCAL_DAY} BETWEEN %(from)s AND %(to)s GROUP BY 1""",
    "risk": f"""SELECT count(*) FILTER (WHERE status = 'held'),
        count(*) FILTER (WHERE status = 'pending') FROM invoices_invoice i
        WHERE {LOCAL_DAY} BETWEEN %(from)s AND %(to)s""",
    "merchants": f"""SELECT merchant_id, count(*), count(*) FILTER (WHERE status = 'accepted')
        FROM invoices_invoice i WHERE merchant_id IS NOT NULL
        AND {LOCAL_DAY} BETWEEN %(from)s AND %(to)s
        GROUP BY 1 ORDER BY 3 DESC LIMIT 20""",
}


def _median_ms(function, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(date_from, date_to, label: str, *, raw_runs: int) -> list[tuple]:
    from django.db import connection

    from apps.reporting import selectors

    filters = selectors.Filters(date_from=date_from, date_to=date_to)
    print(f"\n{label}: {date_from} … {date_to}")
    print(f"  {'panel':<12} {'rollup (ms)':>12} {'raw GROUP BY (ms)':>18} {'speed-up':>9}")
    rows = []
    for key in [*selectors.PANELS, "day_x_area"]:
        if key == "day_x_area":

            def run_panel():
                list(
                    selectors.DailyRollup.objects.filter(filters.q())
                    .values("day", "area_code")
                    .annotate(n=selectors.Sum("submitted"))
                )
        else:

            def run_panel(key=key):
                selectors.panel(key, filters, suppressed=False)

        run_panel()  # warm-up
        panel_ms = _median_ms(run_panel, 5)
        raw_ms = None
        if key in RAW:
            params = {"from": date_from, "to": date_to}

            def run_raw(sql=RAW[key], params=params):
                with connection.cursor() as cur:
                    cur.execute(sql, params)
                    cur.fetchall()

            raw_ms = _median_ms(run_raw, raw_runs)
        ratio = f"{raw_ms / panel_ms:8.0f}x" if raw_ms else ""
        raw_text = f"{raw_ms:18.0f}" if raw_ms is not None else f"{'—':>18}"
        print(f"  {key:<12} {panel_ms:12.1f} {raw_text} {ratio}", flush=True)
        rows.append((key, panel_ms, raw_ms))
    return rows


def ensure_tables() -> None:
    """A reused database made by an older version of this app: add any rollup table it lacks."""
    from django.apps import apps
    from django.db import connection

    existing = set(connection.introspection.table_names())
    created = []
    with connection.schema_editor() as editor:
        for model in apps.get_app_config("reporting").get_models():
            if not model._meta.proxy and model._meta.db_table not in existing:
                editor.create_model(model)
                created.append(model._meta.db_table)
    if "reporting_merchanttotal" in created:
        with connection.cursor() as cur, timed("fill reporting_merchanttotal"):
            cur.execute(
                "INSERT INTO reporting_merchanttotal (merchant_id, campaign_id, submitted, "
                "accepted, entered_total) SELECT merchant_id, campaign_id, sum(submitted), "
                "sum(accepted), sum(entered_total) FROM reporting_merchantrollup "
                "GROUP BY merchant_id, campaign_id"
            )
            cur.execute("ANALYZE reporting_merchanttotal")


def run(args) -> None:
    url = args.database_url or DEFAULT_URL
    created = create_database(url, reuse=args.reuse)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from apps.invoices.models import Invoice
    from apps.reporting import rebuild
    from apps.reporting.models import DailyRollup

    print(f"database {urlsplit(url).path.lstrip('/')} ({'new' if created else 'reused'})")
    start = (timezone.now() - timedelta(days=180)).replace(microsecond=0)
    if created:
        with timed("migrate"):
            call_command("migrate", verbosity=0)
        insert_population(args.invoices, start)
    else:
        ensure_tables()
    if created or args.rebuild:
        with timed("build the rollups from scratch (reporting_rebuild)"):
            rebuild.rebuild()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM invoices_invoice")
        (count,) = cur.fetchone()
        cur.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('invoices_invoice')), "
            "pg_size_pretty(pg_total_relation_size('reporting_dailyrollup'))"
        )
        sizes = cur.fetchone()
    cells = DailyRollup.objects.count()
    print(f"\n{count:,} invoices ({sizes[0]}); {cells:,} daily rollup cells ({sizes[1]})")
    first = timezone.localtime(Invoice.objects.order_by("submitted_at").first().submitted_at)
    last = timezone.localdate()
    results = measure(first.date(), last, "whole campaign", raw_runs=args.raw_runs)
    results += measure(last - timedelta(days=29), last, "last 30 days", raw_runs=args.raw_runs)
    worst = max(ms for _key, ms, _raw in results)
    print(f"\nslowest panel: {worst:.1f} ms (target <= 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=10_000_000)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="rebuild rollups when reusing")
    parser.add_argument("--raw-runs", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    run(parser.parse_args())


if __name__ == "__main__":
    main()
