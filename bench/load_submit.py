"""Throughput of the submission path under a draw-night spike (issue 11).

Starts the project under gunicorn on 127.0.0.1 against a PostgreSQL database preloaded with
ten million invoices, and drives three authenticated endpoints of the same deployment with
`wrk` (Debian's package: `apt-get install wrk`) at 32 connections for a bounded time:

1. `GET  /bench/constant/` — a bare authenticated DRF endpoint returning a constant;
2. `POST /bench/insert/`   — a bare authenticated DRF POST validating a small body and
   inserting one row (both from the bench-only app `bench/loadapp`, never installed in
   production);
3. `POST /api/v1/invoices/` — the real submission: validation, uniqueness, verification against
   the registry, eligibility, caps, risk rules, entry and the instant draw.

These closed-loop runs (each connection sends its next request when the previous answer
arrives) give each endpoint's capacity; their latency is queueing by construction (Little's
law: mean latency = 32 / throughput). It prints requests/s, p50/p95/p99 latency and answers by
class for each, and the ratios.

Then the paced phase, which is what the target "sustains ≥ 30 % of the bare insert's rate with
p99 ≤ 150 ms" means: an open-loop load on the submission endpoint at a constant arrival rate R =
--paced-share (0.30) × the insert's closed-loop req/s of this run (or --paced-rate), for
--paced-duration seconds (30; 0 skips it), over --connections HTTP/1.1 connections (opened again
after each answer when the server closes them, as production's sync workers do), driven from
this process with asyncio (no wrk: wrk is closed-loop). Request i is due at i / R; a due request
that finds every connection busy waits for the first free one, and its latency counts from its
due time, not from when it was sent (no coordinated omission). The requests come from fresh
verified consumers made for the phase, one invoice each, pre-built as bytes. It prints the
offered and achieved rates (answers within the window / window), p50, p95, p99 and max latency,
answers by class and code (429 apart), socket errors, the driver's own CPU seconds, and a line
`PACED PASS|FAIL` for "achieved ≥ 0.98 × offered, p99 ≤ 150 ms, zero 5xx, no socket error or
timeout". The SUMMARY line's target is that verdict at a rate of at least 30 % of the insert's.

Finally it checks the correctness of both submission phases in the database: entries =
accepted submissions (plus at most one request per connection in flight when wrk stopped; the
paced driver waits for every answer), no invoice entered twice, no instant tier over its
quantity or its daily quota, no 5xx; it exits non-zero on any problem.

    .venv/bin/python bench/load_submit.py                       # 10M preload (long), then load
    .venv/bin/python bench/load_submit.py --reuse               # same database, fresh consumers
    .venv/bin/python bench/load_submit.py --preload 1000000 --duration 20
    .venv/bin/python bench/load_submit.py --reuse --paced-rate 80 --paced-duration 60
    .venv/bin/python bench/load_submit.py --reuse --paced-duration 0   # closed loop only
    .venv/bin/python bench/load_submit.py --reuse --worker-class gthread --workers 3 --threads 2
    LOAD_SUBMIT_PACED_TRACE=/tmp/paced.tsv .venv/bin/python bench/load_submit.py --reuse

The server runs production's gunicorn settings (deploy/gunicorn.conf.py: sync workers, 2 × cores
+ 1 of them, one request per connection and process at a time). `--worker-class gthread` keeps
connections alive instead; its workers race to accept them, and a worker that won most of the
paced phase's connections serves most of its requests on one core (docs/benchmarks.md).
`LOAD_SUBMIT_PACED_TRACE` writes the paced phase's requests to a file, one line each: due time
from the start (s), latency (ms), HTTP status (0: no answer) — to see when latency rose.
A reused database first gets what autovacuum would have done since the last run: the tables
the runs churn are vacuumed (`vacuum_between_runs`), and a server without autovacuum is named.

Consumers: every request of the submission run comes from a different verified consumer's
session (by default two invoices each), the way a spike of many people looks — not one client
hammering (that client would meet its own throttles and the risk rules' velocity limits, as it
should). The per-IP throttle is raised for the run: all traffic comes from 127.0.0.1 here,
which no real spike does. Sessions are made directly in the session store (the SMS sign-in is
not what is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import runpy
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT), str(BENCH)]


def database_url(args) -> str:
    base = (
        args.database_url
        or os.environ.get("DATABASE_URL")
        or "postgres://postgres@127.0.0.1:5432/x"
    )
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{args.database_name}"))


def create_database(url: str, *, reuse: bool) -> bool:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return False
        if exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def server_env(args, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "REDIS_URL": args.redis_url,
            # The cached configuration (campaigns, merchants, prize rules) belongs to one
            # database: two bench databases must not share a cache namespace.
            "CACHE_KEY_PREFIX": f"bench-{args.database_name}",
            "DJANGO_SETTINGS_MODULE": "loadapp.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
            "DJANGO_DEBUG": "false",
            "DATABASE_POOL": "true" if args.pool else "false",
            # Production's mode (the default): rollups drained by the Celery worker below.
            "REPORTING_ROLLUPS_QUEUED": (
                "true" if getattr(args, "rollups", "queued") == "queued" else "false"
            ),
            "DATABASE_POOL_MAX_SIZE": str(args.pool_size),
            "DATABASE_CONN_MAX_AGE": "600",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "API_THROTTLE_IP": "1000000/min",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def prepare(args, url: str) -> dict:
    """Migrate, preload, and make the run's consumers, registry records and sessions."""
    os.environ.update(server_env(args, url))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    created = create_database(url, reuse=args.reuse)
    print(f"database {args.database_name} ({'new' if created else 'reused'})")
    started = time.monotonic()
    call_command("migrate", verbosity=0)
    call_command("migrate", run_syncdb=True, verbosity=0)
    print(f"  migrate {time.monotonic() - started:.1f} s")

    from apps.invoices.models import Invoice

    have = Invoice.objects.count()
    if have < args.preload:
        import draw_10m

        started = time.monotonic()
        window_start = timezone.now() - timedelta(days=60)
        draw_10m.insert_population(args.preload - have, window_start)
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
        print(f"  preload {args.preload - have:,} invoices {time.monotonic() - started:.1f} s")
    print(f"  invoices on record: {Invoice.objects.count():,}")
    vacuum_between_runs(connection)
    return make_run_data(args)


# Tables every run writes to and deletes or updates in: the rollup queue (the drain deletes
# what it applied), the idempotency keys, the rollups, the instant pools' stock and quotas and
# the funds' balances. On a live system autovacuum keeps them small; between bench runs on a
# reused database it may not have had its turn (or be off).
CHURNED_TABLES = (
    "reporting_rollupchange",
    "common_idempotencyrecord",
    "reporting_dailyrollup",
    "reporting_awardrollup",
    "reporting_dayparticipants",
    "draws_instanttier",
    "draws_instantdailyquota",
    "prizes_ledgeraccount",
)


# Tables the harness's own set-up fills just before it measures (consumers with sessions and
# registry records: thousands of rows in a second, which no live system writes at once).
SETUP_TABLES = (
    "accounts_user",
    "accounts_consumer",
    "invoices_taxinvoicerecord",
    "django_session",
)


def settle_setup_writes() -> None:
    """VACUUM (ANALYZE) the tables the set-up just filled, so that autovacuum does not take
    its turn on them inside the measured window: its launcher looks at each database once a
    minute, and its workers then vacuum and analyze every table past its thresholds on the
    same two cores (seen: a dozen tables in 1.5 s in the middle of a paced phase, whose p99 it
    decided). What the measured requests themselves write is left to autovacuum, as live."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname = ANY(%s)",
            [list(SETUP_TABLES)],
        )
        for (name,) in cur.fetchall():
            cur.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(name)}")


def vacuum_between_runs(connection) -> None:
    """What autovacuum does between two runs on a live system: the dead rows of the tables
    the previous runs churned are removed before this one measures. Warns when the server
    runs without autovacuum (production's PostgreSQL runs it; a server configured for CI may
    not, and then every run inherits the previous runs' dead rows: the rollup queue, emptied
    by the drain, was found with 149,000 dead rows and 252 live ones)."""
    started = time.monotonic()
    with connection.cursor() as cur:
        cur.execute("SHOW autovacuum")
        if cur.fetchone()[0] != "on":
            print(
                "  WARNING: autovacuum is off on this server (production runs it): dead rows "
                "pile up between and during runs; ALTER SYSTEM SET autovacuum = on"
            )
        cur.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname = ANY(%s)",
            [list(CHURNED_TABLES)],
        )
        tables = [name for (name,) in cur.fetchall()]
        for name in tables:
            cur.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(name)}")
    print(f"  vacuum {len(tables)} churned tables {time.monotonic() - started:.1f} s")


def make_run_data(args) -> dict:
    from django.utils import timezone

    from apps.common import crypto
    from apps.common.pii import normalize_for_index
    from apps.draws.choices import InstantPrizeKind, OddsMode
    from apps.draws.models import InstantDailyQuota, InstantPool, InstantTier
    from apps.invoices.models import Campaign, CampaignArea, CampaignIndustry
    from apps.prizes.choices import FundSource
    from apps.prizes.ledger import fund_accounts_ensure, fund_deposit
    from apps.prizes.models import Fund

    started = time.monotonic()
    stamp = int(time.time())
    now = timezone.now()
    # The run's campaign is the only active one (the preload's campaign covers today too).
    Campaign.objects.filter(status="active").update(status="ended")
    from apps.invoices.caching import campaign_cache_clear

    campaign_cache_clear()  # a queryset update() sends no signal: forget the cached campaigns
    campaign = Campaign.objects.create(
        code=f"load-{stamp}",
        name="高峰压测活动",
        starts_at=now - timedelta(days=10),
        ends_at=now + timedelta(days=30),
        status="active",
        cap_per_day=20,
        cap_per_month=100,
        cap_per_campaign=1000,
    )
    for code in ("52", "62"):
        CampaignIndustry.objects.create(campaign=campaign, code=code, excluded=False)
    CampaignArea.objects.create(campaign=campaign, code="4101", label="郑州市")
    fund = Fund.objects.create(
        campaign=campaign, is_default=True, name="压测奖金池", source=FundSource.CITY
    )
    fund_accounts_ensure(fund)
    fund_deposit(
        fund=fund, amount=Decimal("10000000.00"), key=f"load:{stamp}", memo="bench", actor=None
    )
    pool = InstantPool.objects.create(
        campaign=campaign,
        name="压测即时奖池",
        odds_mode=OddsMode.FIXED,
        active_from=now - timedelta(days=1),
        active_until=now + timedelta(days=30),
        max_wins_per_consumer=None,
        delay_cash_above=Decimal("100000.00"),
        delay_days=7,
    )
    # A scarce tier (its quota runs out during the run: the check that it is never exceeded
    # means something) and a plentiful one.
    for name, kind, value, quantity, quota, p in (
        ("5元现金", InstantPrizeKind.CASH, "5.00", 300, 200, "0.05"),
        ("满50减5券", InstantPrizeKind.COUPON, "5.00", 100000, 50000, "0.20"),
    ):
        tier = InstantTier.objects.create(
            pool=pool,
            name=name,
            kind=kind,
            face_value=Decimal(value),
            total_quantity=quantity,
            remaining=quantity,
            probability=Decimal(p),
        )
        InstantDailyQuota.objects.create(tier=tier, day=timezone.localdate(), quota=quota)

    name_index = crypto.blind_index("name", normalize_for_index("name", real_name()))
    issued = now - timedelta(days=1)
    run = {
        "campaign_id": campaign.pk,
        "pool_id": pool.pk,
        "stamp": stamp,
        "seller": uscc(stamp % 100_000),
        "name_index": name_index,
        "issued": issued,
        "issue_date": timezone.localtime(issued).date().isoformat(),
    }
    n = args.consumers
    tokens, submissions = make_consumers(
        run,
        n,
        args.per_consumer,
        username=f"load{stamp}-",
        first_serial=(stamp % 10_000_000) * 1000 + 1,
        key=f"load-{stamp}-",
    )
    files = {}
    out = Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "submit.tsv"
    with path.open("w") as fh:
        for token, key, body in submissions:
            fh.write(f"POST\t/api/v1/invoices/\t{token}\t{key}\t{body}\n")
    files["submit"] = path
    path = out / "constant.tsv"
    with path.open("w") as fh:
        for k, token in enumerate(tokens):
            fh.write(f"GET\t/bench/constant/\t{token}\tc-{k}\t\n")
    files["constant"] = path
    path = out / "insert.tsv"
    with path.open("w") as fh:
        for k, token in enumerate(tokens):
            body = json.dumps({"note": f"row {k}", "amount": "12.50"}, separators=(",", ":"))
            fh.write(f"POST\t/bench/insert/\t{token}\ti-{k}\t{body}\n")
    files["insert"] = path
    print(
        f"  run data: campaign {campaign.code}, {n:,} consumers with sessions, "
        f"{len(submissions):,} registry records ({time.monotonic() - started:.1f} s)"
    )
    run["files"] = files
    return run


def real_name() -> str:
    return "王小明"


def make_consumers(
    run: dict, n: int, per_consumer: int, *, username: str, first_serial: int, key: str
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """n verified consumers (users named username + i) with app sessions, and per_consumer
    registry-backed invoices each (numbers from first_serial on).

    Returns the consumers' session tokens and the submissions as (session token,
    idempotency key, JSON body), consumers interleaved so that one consumer's invoices are far
    apart: the first invoice of every consumer, then the second of every consumer, and so on.
    """
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from apps.accounts.choices import VerificationStatus
    from apps.accounts.models import Consumer, User
    from apps.accounts.sessions import SESSION_LAST_SEEN, SESSION_LOGIN_AT, session_store_class
    from apps.invoices.models import TaxInvoiceRecord

    now = timezone.now()
    unusable = make_password(None)
    first = Consumer.objects.count()  # resident ids never repeat across runs
    users = User.objects.bulk_create(
        [User(username=f"{username}{i}", password=unusable) for i in range(n)], batch_size=2000
    )
    consumers = Consumer.objects.bulk_create(
        [
            Consumer(
                user=u,
                real_name=real_name(),
                id_number=resident_id(first + i),
                verification_status=VerificationStatus.VERIFIED,
                verified_at=now,
            )
            for i, u in enumerate(users)
        ],
        batch_size=2000,
    )
    records, submissions = [], []
    serial = first_serial
    for c in consumers:
        for _ in range(per_consumer):
            number = invoice_number(serial)
            total = Decimal(120 + serial % 380) + Decimal("0.50")
            tax = (total * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
            serial += 1
            records.append(
                TaxInvoiceRecord(
                    number=number,
                    issued_at=run["issued"],
                    seller_uscc=run["seller"],
                    seller_name="郑州压测商贸有限公司",
                    buyer_name_index=run["name_index"],
                    amount=total - tax,
                    tax=tax,
                    total=total,
                    industry_code="5211",
                    area_code="410105",
                    last_synced_at=now,
                )
            )
            body = {"number": number, "issue_date": run["issue_date"], "total": str(total)}
            submissions.append((c, json.dumps(body, separators=(",", ":"))))
    TaxInvoiceRecord.objects.bulk_create(records, batch_size=5000)

    store_class = session_store_class()
    tokens = {}
    with transaction.atomic():
        for c in consumers:
            store = store_class()
            store[SESSION_KEY] = str(c.user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = c.user.get_session_auth_hash()
            store[SESSION_LOGIN_AT] = store[SESSION_LAST_SEEN] = time.time()
            store.create()
            tokens[c.pk] = store.session_key
    settle_setup_writes()
    order = sorted(range(len(submissions)), key=lambda k: (k % per_consumer, k))
    return [tokens[c.pk] for c in consumers], [
        (tokens[submissions[k][0].pk], f"{key}{k}", submissions[k][1]) for k in order
    ]


def resident_id(n: int) -> str:
    from datetime import date

    from apps.accounts.validators import resident_id_check_character

    # (birth day, sequence) is unique for n < 12,000,000 (12,000 days × 1,000 sequences).
    birth = date(1980, 1, 1) + timedelta(days=n % 12000)
    body = f"410102{birth:%Y%m%d}{(n // 12000) % 1000:03d}"
    return body + resident_id_check_character(body)


def uscc(n: int, area: str = "410105") -> str:
    """A valid credit code unique per n (n in base 31 as the entity identifier)."""
    from apps.merchants.validators import USCC_ALPHABET, uscc_check_character

    digits = []
    for _ in range(7):
        n, rem = divmod(n, 31)
        digits.append(USCC_ALPHABET[rem])
    body = "91" + area + "MA" + "".join(reversed(digits))
    return body + uscc_check_character(body)


def invoice_number(serial: int) -> str:
    """A well-formed 20-digit number of this year in Henan (41), unique per serial."""
    from django.utils import timezone

    return f"{timezone.localdate().year % 100:02d}411{serial:015d}"


def production_shape() -> dict[str, int]:
    """Workers and threads as production's gunicorn settings give them on this machine
    (deploy/gunicorn.conf.py, without the environment's overrides)."""
    saved = {
        k: os.environ.pop(k) for k in ("GUNICORN_WORKERS", "GUNICORN_THREADS") if k in os.environ
    }
    try:
        settings = runpy.run_path(str(ROOT / "deploy/gunicorn.conf.py"))
    finally:
        os.environ.update(saved)
    return {"workers": settings["workers"], "threads": settings["threads"]}


def start_server(args, url: str) -> subprocess.Popen:
    env = server_env(args, url)
    env["GUNICORN_BIND"] = f"127.0.0.1:{args.port}"
    env["GUNICORN_WORKERS"] = str(args.workers)
    env["GUNICORN_THREADS"] = str(args.threads)
    command = [
        str(ROOT / ".venv/bin/gunicorn"),
        "-c",
        str(ROOT / "deploy/gunicorn.conf.py"),
        "--access-logfile",
        "/dev/null",
        "--error-logfile",
        str(Path(args.workdir) / "gunicorn.log"),
        "lotteryinvoice.wsgi:application",
    ]
    command[1:1] = ["--worker-class", args.worker_class]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    raise SystemExit("gunicorn did not come up; see gunicorn.log")


def start_worker(args, url: str) -> subprocess.Popen:
    """A Celery worker beside gunicorn, as in production: it runs what the submissions queue
    (the rollup drains, monitoring events) on the same two cores, so its CPU counts."""
    log = Path(args.workdir) / "celery.log"
    command = [
        str(ROOT / ".venv/bin/celery"),
        "-A",
        "lotteryinvoice",
        "worker",
        "--pool",
        "solo",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
        "--logfile",
        str(log),
        "--hostname",
        f"bench-{args.port}@%h",
    ]
    return subprocess.Popen(command, cwd=ROOT, env=server_env(args, url), start_new_session=True)


def wait_for_rollups(timeout: float = 120.0) -> list[str]:
    """After the load: wait for the queued rollup changes to be drained (queued mode), print
    how many were waiting and how long the drain took."""
    from django.db import connection

    from apps.reporting.models import RollupChange

    connection.close()
    waiting = RollupChange.objects.count()
    started = time.monotonic()
    left = waiting
    while left and time.monotonic() - started < timeout:
        time.sleep(0.2)
        left = RollupChange.objects.count()
    print(
        f"  rollups: {waiting:,} queued changes when the load stopped, "
        f"drained in {time.monotonic() - started:.1f} s ({left:,} left)"
    )
    return [f"{left} rollup changes still queued after {timeout:.0f} s"] if left else []


def check_rollups(run: dict) -> list[str]:
    """The run's campaign in the daily rollups equals its invoices counted from scratch."""
    from django.db.models import Count, Q, Sum

    from apps.invoices.models import Invoice
    from apps.reporting.models import DailyRollup

    counted = DailyRollup.objects.filter(campaign_id=run["campaign_id"]).aggregate(
        accepted=Sum("accepted"), submitted=Sum("submitted")
    )
    actual = Invoice.objects.filter(campaign_id=run["campaign_id"]).aggregate(
        accepted=Count("id", filter=Q(status="accepted")), submitted=Count("id")
    )
    print(
        f"  rollups of the run's campaign: accepted {counted['accepted'] or 0:,} "
        f"(invoices {actual['accepted']:,}), submitted {counted['submitted'] or 0:,} "
        f"(invoices {actual['submitted']:,})"
    )
    if (counted["accepted"] or 0, counted["submitted"] or 0) != (
        actual["accepted"],
        actual["submitted"],
    ):
        return ["the daily rollups of the run's campaign differ from its invoices"]
    return []


def stop_server(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)


class CpuMeter:
    """CPU seconds spent by each part of the deployment, read from /proc: the gunicorn
    processes and the Celery worker (by process group), PostgreSQL and Redis (by program
    name), and the whole machine (/proc/stat). Where a request's CPU goes under load, and
    how much of the two cores the run kept busy."""

    def __init__(self, server: subprocess.Popen, worker: subprocess.Popen):
        self.groups = {server.pid: "gunicorn", worker.pid: "celery"}
        self.tick = os.sysconf("SC_CLK_TCK")

    def snapshot(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            # Own time and that of reaped children: a worker that exits (gunicorn recycles
            # them, PostgreSQL's backends end) stays counted in its parent's.
            seconds = sum(int(x) for x in fields[11:15]) / self.tick
            group = self.groups.get(int(fields[2]))
            if group is None:
                group = {"postgres": "postgres", "redis-server": "redis"}.get(name)
            if group is not None:
                totals[group] += seconds
        cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in cpu]
        totals["machine busy"] = (sum(ticks[:8]) - ticks[3] - ticks[4] - ticks[7]) / self.tick
        totals["steal"] = ticks[7] / self.tick  # taken by the hypervisor (a virtual machine)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        totals["load generator"] = children.ru_utime + children.ru_stime
        totals["harness"] = own.ru_utime + own.ru_stime
        return totals

    @staticmethod
    def report(before: dict, after: dict, requests: int, seconds: float) -> str:
        parts = []
        for group in ("gunicorn", "postgres", "celery", "redis", "load generator", "harness"):
            used = after.get(group, 0.0) - before.get(group, 0.0)
            if group == "harness" and used < 0.05 * seconds:
                continue
            parts.append(f"{group} {used * 1000 / max(requests, 1):.2f}")
        busy = after["machine busy"] - before["machine busy"]
        steal = after["steal"] - before["steal"]
        return (
            f"            CPU ms per request: {', '.join(parts)}; "
            f"machine {busy * 1000 / max(requests, 1):.2f} "
            f"({busy / max(seconds, 1e-9):.2f} of {os.cpu_count()} cores busy, "
            f"{steal / max(seconds, 1e-9):.2f} stolen)"
        )


def run_wrk(args, name: str, path: Path, meter: CpuMeter | None = None) -> dict:
    command = [
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "load_submit.lua"),
        f"http://127.0.0.1:{args.port}",
        "--",
        str(path),
        str(args.wrk_threads),
    ]
    before = meter.snapshot() if meter else None
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    after = meter.snapshot() if meter else None
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    print_result(name, result)
    if meter:
        print(meter.report(before, after, result["requests"], result["duration_us"] / 1e6))
    return result


def round_file(path: Path, r: int, rounds: int) -> Path:
    """The r-th of `rounds` contiguous slices of a request list (fresh requests per round)."""
    if rounds == 1:
        return path
    lines = path.read_text().splitlines(keepends=True)
    size = len(lines) // rounds
    part = path.with_name(f"{path.stem}.{r}{path.suffix}")
    part.write_text("".join(lines[r * size : (r + 1) * size]))
    return part


def combine(runs: list[dict]) -> dict:
    """Totals over rounds: rps from all requests over all time; the latency percentiles are the
    worst round's (percentiles of separate runs cannot be merged exactly)."""
    if len(runs) == 1:
        return runs[0]
    total = {key: sum(r[key] for r in runs) for key in runs[0] if isinstance(runs[0][key], int)}
    total["duration_us"] = sum(r["duration_us"] for r in runs)
    for key in ("p50_us", "p95_us", "p99_us", "max_us"):
        total[key] = max(r[key] for r in runs)
    total["rps"] = total["requests"] / (total["duration_us"] / 1e6)
    return total


def print_result(name: str, result: dict) -> None:
    print(
        f"  {name:<9} {result['rps']:8.1f} req/s  p50 {result['p50_us'] / 1000:7.1f} ms  "
        f"p95 {result['p95_us'] / 1000:7.1f} ms  p99 {result['p99_us'] / 1000:7.1f} ms  "
        f"2xx {result['s2']:,}  4xx {result['s4']:,}  429 {result['s429']:,}  "
        f"5xx {result['s5']:,}  socket errors {result['socket_errors']}"
        + (f"  (request list wrapped {result['wrapped']}×)" if result.get("wrapped") else "")
    )


# ---------------------------------------------------------------------------------------------
# Paced (open-loop) phase: a constant arrival rate, latency from each request's intended time.


def make_paced_requests(args, run: dict, count: int) -> list[bytes]:
    """count submissions, each from a different fresh verified consumer (one invoice each, made
    now, the same way as the closed-loop run's), as ready-to-send HTTP/1.1 request bytes."""
    stamp = run["stamp"]
    started = time.monotonic()
    # Invoice numbers 10^14 + … never meet the closed-loop run's ((stamp % 10^7) * 1000 + k).
    _, submissions = make_consumers(
        run,
        count,
        1,
        username=f"loadp{stamp}-",
        first_serial=10**14 + (stamp % 10_000_000) * 1_000_000,
        key=f"paced-{stamp}-",
    )
    host = f"127.0.0.1:{args.port}"
    requests = []
    for token, key, body in submissions:
        data = body.encode()
        requests.append(
            (
                f"POST /api/v1/invoices/ HTTP/1.1\r\nHost: {host}\r\n"
                f"X-Session-Token: {token}\r\nIdempotency-Key: {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
    print(
        f"  paced run data: {count:,} consumers with sessions, one registry-backed invoice each "
        f"({time.monotonic() - started:.1f} s)"
    )
    return requests


ACCEPTED = b'"status":"accepted"'


async def _exchange(reader: asyncio.StreamReader, writer, payload: bytes) -> tuple[int, bool, bool]:
    """Send one request, read its answer: (status, accepted, server closes the connection).
    Parses only the status line, Content-Length / chunked framing and Connection: close."""
    writer.write(payload)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    low = head.lower()
    at = low.find(b"\r\ncontent-length:")
    if at >= 0:
        end = low.find(b"\r\n", at + 17)
        body = await reader.readexactly(int(low[at + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in low:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            parts.append(await reader.readexactly(size + 2))
        body = b"".join(parts)
    elif b"\r\nconnection: close" in low:
        body = await reader.read()
    else:
        body = b""
    return status, 200 <= status < 300 and ACCEPTED in body, b"\r\nconnection: close" in low


def driver_loop_factory():
    """uvloop's event loop for the paced driver when it is installed (requirements-dev.txt),
    else asyncio's own: the driver runs on the server's two cores, and what it spends per
    request — a connection per request against production's sync workers — the server does not
    have. asyncio's loop took about 0.7–1.0 ms of CPU per request there, uvloop's less
    (docs/benchmarks.md). `LOAD_SUBMIT_DRIVER_LOOP=asyncio` keeps asyncio's."""
    if os.environ.get("LOAD_SUBMIT_DRIVER_LOOP") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def paced_drive(
    port: int,
    requests: list[bytes],
    rate: float,
    connections: int,
    *,
    timeout: float = 10.0,
    drain: float = 10.0,
) -> dict:
    """Open loop: request i is due at t0 + i / rate, whatever happened before. `connections`
    persistent keep-alive connections take the due requests in order; a due request that finds
    every connection busy waits for the first free one, and its latency still counts from its
    due time (no coordinated omission). After the last arrival the backlog is still sent, for
    at most `drain` seconds; requests never sent by then count with the time they had waited
    (a lower bound)."""
    loop = asyncio.get_running_loop()
    n = len(requests)
    due_time = 1.0 / rate
    latency = [0.0] * n
    sent_late = [0.0] * n  # send time − due time (waiting for a free connection)
    finished = [0.0] * n
    status = [0] * n  # HTTP status; 0: no answer (socket error or timeout)
    accepted = [False] * n
    state = {"next": 0, "retries": 0, "reconnects": 0, "errors": {}}
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    t0 = loop.time() + 0.1
    window_end = t0 + n * due_time
    give_up = window_end + drain

    async def worker(c: int) -> None:
        reader, writer = conns[c]
        while True:
            i = state["next"]
            if i >= n:
                return
            due = t0 + i * due_time
            now = loop.time()
            if now > give_up:
                return
            state["next"] = i + 1
            if due > now:
                await asyncio.sleep(due - now)
                now = loop.time()
            sent_late[i] = now - due
            for attempt in (0, 1):
                try:
                    async with asyncio.timeout(timeout):
                        if writer is None or reader.at_eof() or writer.is_closing():
                            if writer is not None:
                                writer.close()
                            reader, writer = await asyncio.open_connection("127.0.0.1", port)
                            state["reconnects"] += 1
                        code, ok, close = await _exchange(reader, writer, requests[i])
                except (asyncio.IncompleteReadError, ConnectionError) as error:
                    # The server closed the keep-alive connection (idle timeout, worker
                    # recycled) before answering: send again once on a fresh connection; the
                    # same Idempotency-Key makes a repeat harmless.
                    partial = isinstance(error, asyncio.IncompleteReadError) and error.partial
                    if writer is not None:
                        writer.close()
                        writer = None
                    if attempt == 0 and not partial:
                        state["retries"] += 1
                        continue
                    code, ok, close = 0, False, False
                    name = type(error).__name__
                    state["errors"][name] = state["errors"].get(name, 0) + 1
                except TimeoutError:
                    if writer is not None:
                        writer.close()
                        writer = None
                    code, ok, close = 0, False, False
                    state["errors"]["timeout"] = state["errors"].get("timeout", 0) + 1
                break
            done = loop.time()
            finished[i] = done
            latency[i] = done - due
            status[i] = code
            accepted[i] = ok
            if close and writer is not None:
                writer.close()
                writer = None

    await asyncio.gather(*(worker(c) for c in range(connections)))
    stopped = loop.time()
    for _, writer in conns:
        writer.close()
    unsent = n - state["next"]
    for i in range(state["next"], n):
        latency[i] = stopped - (t0 + i * due_time)
    answered = sum(1 for i in range(state["next"]) if status[i] and finished[i] <= window_end)
    ordered = sorted(latency)
    trace = os.environ.get("LOAD_SUBMIT_PACED_TRACE")
    if trace:  # one line per request: due time from the start (s), latency (ms), status
        with open(trace, "w") as out:
            for i in range(n):
                out.write(f"{i * due_time:.4f}\t{latency[i] * 1e3:.1f}\t{status[i]}\n")

    def pct(p: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))]  # nearest rank

    by_code: dict[int, int] = {}
    for code in status[: state["next"]]:
        if code:
            by_code[code] = by_code.get(code, 0) + 1
    sent = state["next"]
    waited = [x for x in sent_late[:sent] if x > 0.002]
    return {
        "offered_rps": rate,
        "requests": n,
        "window_s": window_end - t0,
        "achieved_rps": answered / (window_end - t0),
        "last_answer_s": max(finished[:sent], default=t0) - t0,
        "p50_us": pct(50) * 1e6,
        "p95_us": pct(95) * 1e6,
        "p99_us": pct(99) * 1e6,
        "max_us": ordered[-1] * 1e6,
        "mean_us": sum(latency) / n * 1e6,
        "by_code": by_code,
        "s2": sum(v for k, v in by_code.items() if 200 <= k < 300),
        "s4": sum(v for k, v in by_code.items() if 400 <= k < 500 and k != 429),
        "s429": by_code.get(429, 0),
        "s5": sum(v for k, v in by_code.items() if k >= 500),
        "other": sum(v for k, v in by_code.items() if k < 200 or 300 <= k < 400),
        "accepted": sum(accepted),
        "socket_errors": sum(state["errors"].values()),
        "errors": state["errors"],
        "unsent": unsent,
        "retries": state["retries"],
        "reconnects": state["reconnects"],
        "waited": len(waited),
        "max_wait_us": max(sent_late[:sent], default=0.0) * 1e6,
    }


def run_paced(args, run: dict, insert_rps: float, meter: CpuMeter | None = None) -> dict:
    if args.paced_rate:
        rate, basis = args.paced_rate, "--paced-rate"
    else:
        rate = args.paced_share * insert_rps
        basis = f"{args.paced_share:.0%} of the one-row insert's {insert_rps:.1f} req/s"
    count = max(1, round(rate * args.paced_duration))
    print(
        f"paced: {rate:.1f} req/s offered ({basis}) for {args.paced_duration} s = {count:,} "
        f"submissions, open loop over {args.connections} connections"
    )
    requests = make_paced_requests(args, run, count)
    from django.db import connection

    connection.close()  # the server has the database to itself while the driver runs
    gc.collect()
    gc.freeze()
    gc.disable()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    before = meter.snapshot() if meter else None
    try:
        with asyncio.Runner(loop_factory=driver_loop_factory()) as runner:
            result = runner.run(paced_drive(args.port, requests, rate, args.connections))
    finally:
        gc.enable()
        gc.unfreeze()
    after_cpu = meter.snapshot() if meter else None
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["driver_cpu_s"] = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    result["loop"] = "uvloop" if driver_loop_factory() else "asyncio's event loop"
    print_paced(result)
    if meter:
        answered = result["s2"] + result["s4"] + result["s429"] + result["s5"]
        print(meter.report(before, after_cpu, answered, result["last_answer_s"]))
    return result


def paced_verdict(result: dict) -> tuple[bool, str]:
    checks = [
        (
            result["achieved_rps"] >= 0.98 * result["offered_rps"],
            f"achieved {result['achieved_rps']:.1f} ≥ 0.98 × offered "
            f"{result['offered_rps']:.1f} req/s",
        ),
        (result["p99_us"] <= 150_000, f"p99 {result['p99_us'] / 1000:.1f} ≤ 150 ms"),
        (result["s5"] == 0, f"5xx {result['s5']} = 0"),
        (
            result["socket_errors"] == 0 and result["unsent"] == 0,
            f"no socket errors/timeouts ({result['socket_errors']}) or unsent requests "
            f"({result['unsent']})",
        ),
    ]
    ok = all(passed for passed, _ in checks)
    return ok, "; ".join(f"{text} {'yes' if passed else 'NO'}" for passed, text in checks)


def print_paced(result: dict) -> None:
    ms = {k: result[f"{k}_us"] / 1000 for k in ("p50", "p95", "p99", "max", "mean")}
    codes = ", ".join(f"{code} {n:,}" for code, n in sorted(result["by_code"].items()))
    print(
        f"  paced     offered {result['offered_rps']:.1f} req/s, achieved "
        f"{result['achieved_rps']:.1f} req/s (answers within the {result['window_s']:.1f} s "
        f"window; last answer at {result['last_answer_s']:.1f} s)"
    )
    print(
        f"  paced     latency from intended send time: p50 {ms['p50']:.1f} ms  p95 "
        f"{ms['p95']:.1f} ms  p99 {ms['p99']:.1f} ms  max {ms['max']:.1f} ms  "
        f"(mean {ms['mean']:.1f} ms)"
    )
    print(
        f"  paced     answers: 2xx {result['s2']:,} (accepted {result['accepted']:,})  "
        f"4xx {result['s4']:,}  429 {result['s429']:,}  5xx {result['s5']:,}  "
        f"other {result['other']:,}  — by code: {codes or 'none'}"
    )
    print(
        f"  paced     socket errors/timeouts {result['socket_errors']}"
        f"{' ' + str(result['errors']) if result['errors'] else ''}  "
        f"unsent {result['unsent']}  resent after a closed keep-alive {result['retries']}  "
        f"reconnects {result['reconnects']}  requests that waited for a free connection "
        f"{result['waited']:,} (longest {result['max_wait_us'] / 1000:.1f} ms)"
    )
    print(
        f"  paced     driver CPU {result['driver_cpu_s']:.2f} s "
        f"({result['driver_cpu_s'] / max(result['last_answer_s'], 1e-9):.1%} of one core, "
        f"{result['driver_cpu_s'] * 1000 / max(result['requests'], 1):.2f} ms per request; "
        f"{result['loop']})"
    )
    ok, text = paced_verdict(result)
    print(f"PACED {'PASS' if ok else 'FAIL'}: {text}")


def check_correctness(
    run: dict, submit: dict, connections: int, paced: dict | None = None
) -> list[str]:
    from django.db import connection
    from django.db.models import Count, Q

    from apps.draws.models import InstantAward, InstantDailyQuota, InstantTier
    from apps.invoices.choices import LIVE_INVOICE_STATUSES, InvoiceStatus
    from apps.invoices.models import Invoice

    connection.close()
    problems = []
    # wrk stops reading at the deadline: up to one request per connection was still in flight,
    # completed by the server but not counted by wrk. The paced driver waits for every answer;
    # only a request that met a socket error or a timeout may have been entered unanswered.
    phases = [
        (
            "closed loop",
            Q(consumer__user__username__startswith=f"load{run['stamp']}-"),
            submit,
            connections,
            "in flight when wrk stopped",
        )
    ]
    if paced is not None:
        phases.append(
            (
                "paced",
                Q(consumer__user__username__startswith=f"loadp{run['stamp']}-"),
                paced,
                paced["socket_errors"],
                "without an answer",
            )
        )
    for label, who, result, slack, why in phases:
        invoices = Invoice.objects.filter(who)
        entered = invoices.filter(status=InvoiceStatus.ACCEPTED).count()
        held = invoices.filter(status=InvoiceStatus.HELD).count()
        outcomes = invoices.values_list("status", "rejection_code").annotate(n=Count("id"))
        print(
            f"  {label} outcomes: "
            + ", ".join(f"{s} {c or ''} {n:,}".replace("  ", " ") for s, c, n in outcomes)
        )
        print(
            f"  {label} entries {entered:,} (held {held:,}); answers 'accepted' "
            f"{result['accepted']:,}; 2xx {result['s2']:,}"
        )
        if not result["accepted"] <= entered <= result["accepted"] + slack:
            problems.append(
                f"{label}: entries {entered} do not match the accepted answers "
                f"{result['accepted']} (+ at most {slack} {why})"
            )
    invoices = Invoice.objects.filter(Q.create([p[1] for p in phases], connector=Q.OR))
    accepted_without_entry = invoices.filter(
        status=InvoiceStatus.ACCEPTED, entered_at__isnull=True
    ).count()
    if accepted_without_entry:
        problems.append(f"{accepted_without_entry} accepted invoices without an entry")
    twice = (
        invoices.filter(status__in=LIVE_INVOICE_STATUSES)
        .values("number")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    if twice:
        problems.append(f"{twice} invoice numbers entered more than once")
    for tier in InstantTier.objects.filter(pool_id=run["pool_id"]):
        awards = InstantAward.objects.filter(tier=tier).count()
        print(f"  tier {tier.name}: {awards:,} awarded of {tier.total_quantity:,}")
        if awards > tier.total_quantity or tier.remaining < 0:
            problems.append(f"tier {tier.name} over its quantity ({awards})")
        for quota in InstantDailyQuota.objects.filter(tier=tier):
            day_awards = InstantAward.objects.filter(tier=tier, day=quota.day).count()
            if day_awards > quota.quota:
                problems.append(f"tier {tier.name} over its daily quota on {quota.day}")
    return problems


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench database and cache (shared with `profile_submit.py`)."""
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--database-name", default="lotteryinvoice_bench_load")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/3")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_arguments(parser)
    parser.add_argument("--reuse", action="store_true", help="keep an existing bench database")
    parser.add_argument("--preload", type=int, default=10_000_000, help="invoices on record")
    parser.add_argument("--consumers", type=int, default=20_000)
    parser.add_argument("--per-consumer", type=int, default=2)
    parser.add_argument("--duration", type=int, default=30, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=int,
        help="gunicorn worker processes (default: production's, deploy/gunicorn.conf.py)",
    )
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default: production's; gthread)"
    )
    parser.add_argument(
        "--worker-class",
        choices=["gthread", "sync"],
        default="sync",
        help="gunicorn's worker class: sync (production's, deploy/gunicorn.conf.py) answers one "
        "request per connection and process at a time; gthread keeps connections alive",
    )
    parser.add_argument("--pool", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--pool-size", type=int, default=8)
    parser.add_argument(
        "--rollups",
        choices=["queued", "inline"],
        default="queued",
        help="statistics rollups drained by the Celery worker (production's default) or "
        "written inside every submission's transaction",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run constant, insert, submit this many times in turn (each on fresh requests) "
        "and compare the totals: on a shared machine the background load drifts between runs",
    )
    parser.add_argument(
        "--paced-duration",
        type=int,
        default=30,
        help="seconds of the paced (open-loop) submission phase after the closed-loop rounds; "
        "0 skips it",
    )
    parser.add_argument(
        "--paced-share",
        type=float,
        default=0.30,
        help="paced rate as a share of the one-row insert's closed-loop req/s in this run",
    )
    parser.add_argument(
        "--paced-rate", type=float, help="paced rate in req/s (instead of --paced-share)"
    )
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench-load"))
    args = parser.parse_args()
    production = production_shape()
    args.workers = args.workers or production["workers"]
    args.threads = args.threads or production["threads"]
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    url = database_url(args)
    run = prepare(args, url)
    print(
        f"server: gunicorn {args.worker_class}, {args.workers} workers × {args.threads} "
        "threads, "
        f"{'pool' if args.pool else 'persistent connections'}, rollups {args.rollups}, "
        f"a Celery worker; wrk {args.connections} connections, {args.duration} s per endpoint"
    )
    server = start_server(args, url)
    worker = start_worker(args, url)
    meter = CpuMeter(server, worker)
    try:
        rounds: dict[str, list[dict]] = {"constant": [], "insert": [], "submit": []}
        for r in range(args.rounds):
            if args.rounds > 1:
                print(f"  round {r + 1}/{args.rounds}")
            for name in rounds:
                path = round_file(run["files"][name], r, args.rounds)
                rounds[name].append(run_wrk(args, name, path, meter))
        results = {name: combine(runs) for name, runs in rounds.items()}
        if args.rounds > 1:
            for name, result in results.items():
                print_result(f"{name} (all)", result)
        paced = None
        if args.paced_duration > 0:
            paced = run_paced(args, run, results["insert"]["rps"], meter)
    finally:
        stop_server(server)
    try:
        problems = wait_for_rollups() if args.rollups == "queued" else []
    finally:
        stop_server(worker)
    submit, insert, constant = results["submit"], results["insert"], results["constant"]
    print(
        f"ratios: submit/insert {submit['rps'] / insert['rps']:.0%}  "
        f"submit/constant {submit['rps'] / constant['rps']:.0%}  "
        f"insert/constant {insert['rps'] / constant['rps']:.0%}"
    )
    # Each wrk run may leave one request per connection in flight when it stops.
    problems += check_correctness(run, submit, args.connections * args.rounds, paced)
    problems += check_rollups(run)
    five = sum(r["s5"] for r in [*results.values(), *([paced] if paced else [])])
    if five:
        problems.append(f"{five} answers were 5xx")
    if paced is None:
        # Closed loop only: the latency is queueing at 32 connections (Little's law).
        target = submit["rps"] >= 0.3 * insert["rps"] and submit["p99_us"] <= 150_000
        paced_fields = ""
    else:
        # The target: the submission sustains 30 % of the insert rate, i.e. an offered
        # rate of at least that share is achieved with p99 ≤ 150 ms and zero 5xx.
        target = paced_verdict(paced)[0] and paced["offered_rps"] >= 0.3 * insert["rps"] - 1e-9
        paced_fields = (
            f"paced_offered_rps={paced['offered_rps']:.1f} "
            f"paced_achieved_rps={paced['achieved_rps']:.1f} "
            f"paced_p99_ms={paced['p99_us'] / 1000:.1f} "
        )
    print(
        f"SUMMARY submit_rps={submit['rps']:.1f} insert_rps={insert['rps']:.1f} "
        f"constant_rps={constant['rps']:.1f} submit_p99_ms={submit['p99_us'] / 1000:.1f} "
        f"{paced_fields}target={'met' if target and not problems else 'MISSED'}"
    )
    for p in problems:
        print(f"  PROBLEM: {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
