"""Benchmark: freeze and draw a periodic draw over ten million tickets on PostgreSQL.

    .venv/bin/python bench/draw_10m.py                     # 10,000,000 entries
    .venv/bin/python bench/draw_10m.py --entries 1000000   # a quicker run
    .venv/bin/python bench/draw_10m.py --reuse             # keep the data of the last run

It creates (or, with --reuse, keeps) a database of its own next to the one in DATABASE_URL
(default: postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_draws), migrates it, and
inserts the entries set-based with generate_series: one campaign, a thousand merchants (1% of
them blacklisted), one consumer per ten entries, 98% of the invoices accepted. Then it runs the
draw through the services exactly as officials would, and prints seconds for:

- freezing: the numbering (one INSERT … SELECT … row_number() into the draw's own table,
  then attached as its partition, which builds its indexes) and the digest (the stored
  tickets read back in ticket order, by index ranges, and hashed), target: freeze <= 60 s;
- the draw itself (draw_confirm: the random stream, winner look-ups by ticket number, the
  winners written), target <= 2 s;
- and, for information, a disqualification with its substitute, the replay that verifies the
  stored results, the export of both files and the stand-alone verifier on them (--verify).

Benchmarks print figures; they are not timed tests. Record them in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_draws"
TIMINGS: dict[str, float] = {}


@contextmanager
def timed(label: str, *, record: str | None = None):
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    if record:
        TIMINGS[record] = TIMINGS.get(record, 0.0) + seconds
    print(f"  {label:<46} {seconds:9.2f} s", flush=True)


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


def insert_population(entries: int, window_start) -> tuple[int, int]:
    """Users, consumers, merchants and invoices, set-based. Returns (campaign id, entries)."""
    from django.db import connection

    from apps.invoices.models import Campaign

    consumers = max(1, entries // 10)
    campaign = Campaign.objects.create(
        code="bench",
        name="压测活动",
        starts_at=window_start - timedelta(days=1),
        ends_at=window_start + timedelta(days=200),
        status="active",
    )
    with connection.cursor() as cur:
        with timed(f"insert {consumers:,} users and consumers"):
            cur.execute(
                """
                INSERT INTO accounts_user (password, is_superuser, username, first_name,
                    last_name, email, is_staff, is_active, date_joined)
                SELECT '!', false, 'bench' || g, '', '', '', false, true, now()
                FROM generate_series(1, %s) g
                """,
                [consumers],
            )
            cur.execute(
                """
                INSERT INTO accounts_consumer (created_at, updated_at, public_id, real_name,
                    id_number, phone, verification_status, status, user_id)
                SELECT now(), now(), gen_random_uuid(), '', '', '', 'unverified', 'active', u.id
                FROM accounts_user u WHERE u.username LIKE 'bench%%'
                """,
                [],
            )
        with timed("insert 1,000 merchants (1% blacklisted)"):
            cur.execute(
                """
                INSERT INTO merchants_merchant (created_at, updated_at, uscc, name, area_code,
                    industry_code, address, status, status_reason)
                SELECT now(), now(), '91410105MA' || lpad(g::text, 8, '0'), '压测商户' || g,
                    '410105', '5211', '',
                    CASE WHEN g %% 100 = 0 THEN 'blacklisted' ELSE 'active' END, ''
                FROM generate_series(1, 1000) g
                """,
                [],
            )
        cur.execute("SELECT min(id), max(id) FROM accounts_consumer")
        first_consumer, last_consumer = cur.fetchone()
        cur.execute("SELECT min(id) FROM merchants_merchant")
        (first_merchant,) = cur.fetchone()
        with timed(f"insert {entries:,} invoices (98% accepted)"):
            # One statement per million keeps each transaction (and its WAL) bounded.
            step = 1_000_000
            for low in range(1, entries + 1, step):
                high = min(entries, low + step - 1)
                cur.execute(
                    """
                    INSERT INTO invoices_invoice (created_at, updated_at, uid, number,
                        invoice_type, issue_date, seller_uscc, seller_name, buyer_name,
                        buyer_tax_id, amount, tax, total, source_channel, status,
                        rejection_code, submitted_at, decided_at, entered_at,
                        verification_attempts, campaign_id, consumer_id, merchant_id,
                        device_hash)
                    SELECT now(), now(), gen_random_uuid(),
                        '26411' || lpad(g::text, 15, '0'), '32',
                        (%(start)s + g * interval '1 second')::date, '', '', '', '',
                        176.99, 23.01, 200.00, 'app',
                        CASE WHEN g %% 50 = 0 THEN 'rejected' ELSE 'accepted' END,
                        CASE WHEN g %% 50 = 0 THEN 'invoice.below_minimum' ELSE '' END,
                        %(start)s + g * interval '1 second',
                        %(start)s + g * interval '1 second',
                        CASE WHEN g %% 50 = 0 THEN NULL
                             ELSE %(start)s + (g / 3) * interval '3 second' END,
                        0, %(campaign)s,
                        %(first_consumer)s + (g::bigint * 7919) %% %(consumers)s,
                        %(first_merchant)s + g %% 1000, ''
                    FROM generate_series(%(low)s, %(high)s) g
                    """,
                    {
                        "start": window_start,
                        "campaign": campaign.pk,
                        "first_consumer": first_consumer,
                        "consumers": last_consumer - first_consumer + 1,
                        "first_merchant": first_merchant,
                        "low": low,
                        "high": high,
                    },
                )
        with timed("ANALYZE"):
            cur.execute("ANALYZE")
    return campaign.pk


def server_counters() -> tuple[str, int]:
    """The WAL position and the count of checkpoints forced by max_wal_size."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()::text, checkpoints_req FROM pg_stat_bgwriter")
        return cur.fetchone()


def run(args) -> None:
    url = database_url(args)
    created = create_database(url, reuse=args.reuse)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")
    import django

    django.setup()
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import User
    from apps.draws import selectors, services
    from apps.draws.models import DrawWinner, PeriodicDraw
    from apps.invoices.models import Campaign

    print(f"database {urlsplit(url).path.lstrip('/')} ({'new' if created else 'reused'})")
    with timed("migrate"):
        call_command("migrate", verbosity=0)

    window_start = timezone.now() - timedelta(days=200)
    campaign = Campaign.objects.filter(code="bench").first()
    if campaign is None:
        insert_population(args.entries, window_start)
        campaign = Campaign.objects.get(code="bench")
    else:
        window_start = campaign.starts_at + timedelta(days=1)
        print("  population reused; earlier bench draws removed")
        with connection.cursor() as cur:
            # TRUNCATE fires no row trigger: the bench's own database only. CASCADE: the
            # prizes of earlier bench draws go too.
            cur.execute(
                "TRUNCATE draws_drawwinner, draws_drawticket, draws_drawstatuschange, "
                "draws_drawtier, draws_periodicdraw CASCADE"
            )
            # The earlier draws' partitions (migration 0003), emptied by the TRUNCATE.
            cur.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'draws_drawticket'::regclass "
                "AND c.relname <> 'draws_drawticket_default'"
            )
            for (name,) in cur.fetchall():
                # Detached first: the winners' foreign key reaches every partition.
                cur.execute(f'ALTER TABLE draws_drawticket DETACH PARTITION "{name}"')
                cur.execute(f'DROP TABLE "{name}"')
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM invoices_invoice WHERE campaign_id = %s", [campaign.pk])
        print(f"  invoices in the campaign: {cur.fetchone()[0]:,}")

    staff = {}
    for name, perms in (
        ("bench_manager", ["manage_draw", "disqualify_winner"]),
        ("bench_a", ["execute_draw"]),
        ("bench_b", ["execute_draw"]),
    ):
        user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": True})
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="draws", codename__in=perms)
        )
        staff[name] = User.objects.get(pk=user.pk)
    manager = staff["bench_manager"]

    code = f"BENCH-{int(time.time())}"
    now = timezone.now()
    draw = services.draw_create(
        campaign=campaign,
        code=code,
        name="压测定期开奖",
        window_starts_at=window_start,
        # A few seconds for create and commit (each audited, with the monitoring hooks) to
        # happen inside the window; the freeze then waits for the cut-off.
        window_ends_at=now + timedelta(seconds=15),
        cutoff_at=now + timedelta(seconds=15),
        tiers=[
            services.TierSpec(1, "一等奖", Decimal("800.00"), 10),
            services.TierSpec(2, "二等奖", Decimal("300.00"), 100),
            services.TierSpec(3, "三等奖", Decimal("50.00"), 1000),
        ],
        per_holder_limit=1,
        actor=manager,
    )
    draw = services.draw_commit(
        draw=draw, actor=manager, randomness_source="bench: a fixed string after the freeze"
    )
    time.sleep(max(0.0, (draw.cutoff_at - timezone.now()).total_seconds()) + 0.1)

    print("freeze")
    numbering, digest = services._number_tickets_set_based, services._digest_stored_tickets

    def timed_numbering(*a, **k):
        with timed("numbering (INSERT … SELECT row_number())", record="numbering"):
            return numbering(*a, **k)

    def timed_digest(*a, **k):
        with timed("digest (read back in ticket order + sha256)", record="digest"):
            return digest(*a, **k)

    services._number_tickets_set_based, services._digest_stored_tickets = (
        timed_numbering,
        timed_digest,
    )
    wal_before, checkpoints_before = server_counters()
    try:
        with timed("freeze in total (one transaction, committed)", record="freeze"):
            draw = services.draw_freeze(draw=draw, actor=manager)
    finally:
        services._number_tickets_set_based, services._digest_stored_tickets = numbering, digest
    wal_after, checkpoints_after = server_counters()
    print(f"  tickets: {draw.ticket_count:,}  digest {draw.tickets_digest}")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(%s, %s)", [wal_after, wal_before])
        wal_bytes = int(cur.fetchone()[0])
    print(
        f"  WAL written during the freeze: {wal_bytes / 2**30:.2f} GiB; checkpoints forced by "
        f"max_wal_size meanwhile: {checkpoints_after - checkpoints_before}"
    )

    draw = services.draw_record_randomness(draw=draw, value="4 7 1 / 2026-04-01", actor=manager)
    services.draw_start(draw=draw, actor=staff["bench_a"])
    print("draw")
    with timed("draw_confirm (1,110 slots, L = 1)", record="draw"):
        draw = services.draw_confirm(draw=draw, actor=staff["bench_b"])
    print(f"  winners: {DrawWinner.objects.filter(draw=draw).count():,}")

    draw = services.draw_publish(draw=draw, actor=manager)
    first = DrawWinner.objects.filter(draw=draw).order_by("counter").first()
    with timed("one disqualification with its substitute", record="disqualify"):
        services.draw_disqualify(
            draw=draw, ticket_no=first.ticket_no, reason="red_flushed", actor=manager
        )
    draw = PeriodicDraw.objects.get(pk=draw.pk)
    with timed("replay (re-hash tickets, re-run the draw)", record="replay"):
        report = selectors.draw_replay(draw)
    print(f"  replay ok: {report.ok}")
    if args.verify:
        with tempfile.TemporaryDirectory() as out:
            with timed("draw_export (bundle.json + tickets.csv)", record="export"):
                call_command("draw_export", draw.code, out, stdout=open(os.devnull, "w"))  # noqa: SIM115
            with timed("tools/verify_draw.py on the export", record="verify"):
                result = subprocess.run(
                    [sys.executable, str(ROOT / "tools" / "verify_draw.py"),
                     f"{out}/bundle.json", f"{out}/tickets.csv"],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
            print(f"  verifier exit status {result.returncode}: {result.stdout.splitlines()[-1]}")

    print()
    print(f"SUMMARY tickets={draw.ticket_count}")
    for key in (
        "numbering",
        "digest",
        "freeze",
        "draw",
        "disqualify",
        "replay",
        "export",
        "verify",
    ):
        if key in TIMINGS:
            print(f"SUMMARY {key}={TIMINGS[key]:.2f}s")
    freeze_ok = TIMINGS["freeze"] <= 60
    draw_ok = TIMINGS["draw"] <= 2
    print(f"SUMMARY targets: freeze <= 60 s {'met' if freeze_ok else 'MISSED'}, "
          f"draw <= 2 s {'met' if draw_ok else 'MISSED'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--database-name", default=None)
    parser.add_argument("--reuse", action="store_true", help="keep an existing bench database")
    parser.add_argument("--verify", action="store_true", help="also export and verify")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
