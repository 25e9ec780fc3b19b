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

It prints requests/s, p50/p95/p99 latency and answers by class for each, the ratios, and then
checks the run's correctness in the database: entries = accepted submissions, no invoice entered
twice, no instant tier over its quantity or its daily quota, no 5xx.

    .venv/bin/python bench/load_submit.py                       # 10M preload (long), then load
    .venv/bin/python bench/load_submit.py --reuse               # same database, fresh consumers
    .venv/bin/python bench/load_submit.py --preload 1000000 --duration 20

Consumers: every request of the submission run comes from a different verified consumer's
session (by default two invoices each), the way a spike of many people looks — not one client
hammering (that client would meet its own throttles and the risk rules' velocity limits, as it
should). The per-IP throttle is raised for the run: all traffic comes from 127.0.0.1 here,
which no real spike does. Sessions are made directly in the session store (the SMS sign-in is
not what is measured).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
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
            "DJANGO_SETTINGS_MODULE": "loadapp.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
            "DJANGO_DEBUG": "false",
            "DATABASE_POOL": "true" if args.pool else "false",
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
    return make_run_data(args)


def make_run_data(args) -> dict:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.db import transaction
    from django.utils import timezone

    from apps.accounts.choices import VerificationStatus
    from apps.accounts.models import Consumer, User
    from apps.accounts.sessions import SESSION_LAST_SEEN, SESSION_LOGIN_AT, session_store_class
    from apps.common import crypto
    from apps.common.pii import normalize_for_index
    from apps.draws.choices import InstantPrizeKind, OddsMode
    from apps.draws.models import InstantDailyQuota, InstantPool, InstantTier
    from apps.invoices.models import Campaign, CampaignArea, CampaignIndustry, TaxInvoiceRecord
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

    n = args.consumers
    from django.contrib.auth.hashers import make_password

    unusable = make_password(None)
    first = Consumer.objects.count()  # resident ids never repeat across runs
    real_name = "王小明"
    users = User.objects.bulk_create(
        [User(username=f"load{stamp}-{i}", password=unusable) for i in range(n)], batch_size=2000
    )
    consumers = Consumer.objects.bulk_create(
        [
            Consumer(
                user=u,
                real_name=real_name,
                id_number=resident_id(first + i),
                verification_status=VerificationStatus.VERIFIED,
                verified_at=now,
            )
            for i, u in enumerate(users)
        ],
        batch_size=2000,
    )
    name_index = crypto.blind_index("name", normalize_for_index("name", real_name))
    issued = now - timedelta(days=1)
    issue_date = timezone.localtime(issued).date().isoformat()
    seller = uscc(stamp % 100_000)
    records, submissions = [], []
    serial = (stamp % 10_000_000) * 1000
    for c in consumers:
        for _ in range(args.per_consumer):
            serial += 1
            number = invoice_number(serial)
            total = Decimal(120 + serial % 380) + Decimal("0.50")
            tax = (total * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
            records.append(
                TaxInvoiceRecord(
                    number=number,
                    issued_at=issued,
                    seller_uscc=seller,
                    seller_name="郑州压测商贸有限公司",
                    buyer_name_index=name_index,
                    amount=total - tax,
                    tax=tax,
                    total=total,
                    industry_code="5211",
                    area_code="410105",
                    last_synced_at=now,
                )
            )
            body = {"number": number, "issue_date": issue_date, "total": str(total)}
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

    files = {}
    out = Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    # Submissions: consumers interleaved, so that one consumer's two invoices are far apart.
    order = sorted(range(len(submissions)), key=lambda k: (k % args.per_consumer, k))
    path = out / "submit.tsv"
    with path.open("w") as fh:
        for k in order:
            c, body = submissions[k]
            fh.write(f"POST\t/api/v1/invoices/\t{tokens[c.pk]}\tload-{stamp}-{k}\t{body}\n")
    files["submit"] = path
    path = out / "constant.tsv"
    with path.open("w") as fh:
        for k, c in enumerate(consumers):
            fh.write(f"GET\t/bench/constant/\t{tokens[c.pk]}\tc-{k}\t\n")
    files["constant"] = path
    path = out / "insert.tsv"
    with path.open("w") as fh:
        for k, c in enumerate(consumers):
            body = json.dumps({"note": f"row {k}", "amount": "12.50"}, separators=(",", ":"))
            fh.write(f"POST\t/bench/insert/\t{tokens[c.pk]}\ti-{k}\t{body}\n")
    files["insert"] = path
    print(
        f"  run data: campaign {campaign.code}, {n:,} consumers with sessions, "
        f"{len(records):,} registry records ({time.monotonic() - started:.1f} s)"
    )
    return {"campaign_id": campaign.pk, "pool_id": pool.pk, "files": files, "stamp": stamp}


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
    if args.threads > 1:
        command[1:1] = ["--worker-class", "gthread"]
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


def stop_server(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)


def run_wrk(args, name: str, path: Path) -> dict:
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
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    print_result(name, result)
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


def check_correctness(run: dict, submit: dict, connections: int) -> list[str]:
    from django.db import connection
    from django.db.models import Count

    from apps.draws.models import InstantAward, InstantDailyQuota, InstantTier
    from apps.invoices.choices import LIVE_INVOICE_STATUSES, InvoiceStatus
    from apps.invoices.models import Invoice

    connection.close()
    problems = []
    invoices = Invoice.objects.filter(consumer__user__username__startswith=f"load{run['stamp']}-")
    entered = invoices.filter(status=InvoiceStatus.ACCEPTED).count()
    held = invoices.filter(status=InvoiceStatus.HELD).count()
    outcomes = invoices.values_list("status", "rejection_code").annotate(n=Count("id"))
    print(
        "  outcomes: "
        + ", ".join(f"{s} {c or ''} {n:,}".replace("  ", " ") for s, c, n in outcomes)
    )
    print(
        f"  entries {entered:,} (held {held:,}); answers 'accepted' {submit['accepted']:,}; "
        f"2xx {submit['s2']:,}"
    )
    # wrk stops reading at the deadline: up to one request per connection was still in flight,
    # completed by the server but not counted by wrk.
    if not submit["accepted"] <= entered <= submit["accepted"] + connections:
        problems.append(
            f"entries {entered} do not match the accepted answers {submit['accepted']} "
            f"(+ at most {connections} in flight)"
        )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--database-name", default="lotteryinvoice_bench_load")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/3")
    )
    parser.add_argument("--reuse", action="store_true", help="keep an existing bench database")
    parser.add_argument("--preload", type=int, default=10_000_000, help="invoices on record")
    parser.add_argument("--consumers", type=int, default=20_000)
    parser.add_argument("--per-consumer", type=int, default=2)
    parser.add_argument("--duration", type=int, default=30, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (gthread)")
    parser.add_argument("--pool", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--pool-size", type=int, default=8)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run constant, insert, submit this many times in turn (each on fresh requests) "
        "and compare the totals: on a shared machine the background load drifts between runs",
    )
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench-load"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    url = database_url(args)
    run = prepare(args, url)
    print(
        f"server: gunicorn {args.workers} workers × {args.threads} threads, "
        f"{'pool' if args.pool else 'persistent connections'}; wrk {args.connections} "
        f"connections, {args.duration} s per endpoint"
    )
    server = start_server(args, url)
    try:
        rounds: dict[str, list[dict]] = {"constant": [], "insert": [], "submit": []}
        for r in range(args.rounds):
            if args.rounds > 1:
                print(f"  round {r + 1}/{args.rounds}")
            for name in rounds:
                path = round_file(run["files"][name], r, args.rounds)
                rounds[name].append(run_wrk(args, name, path))
        results = {name: combine(runs) for name, runs in rounds.items()}
        if args.rounds > 1:
            for name, result in results.items():
                print_result(f"{name} (all)", result)
    finally:
        stop_server(server)
    submit, insert, constant = results["submit"], results["insert"], results["constant"]
    print(
        f"ratios: submit/insert {submit['rps'] / insert['rps']:.0%}  "
        f"submit/constant {submit['rps'] / constant['rps']:.0%}  "
        f"insert/constant {insert['rps'] / constant['rps']:.0%}"
    )
    # Each wrk run may leave one request per connection in flight when it stops.
    problems = check_correctness(run, submit, args.connections * args.rounds)
    five = sum(r["s5"] for r in results.values())
    if five:
        problems.append(f"{five} answers were 5xx")
    target = submit["rps"] >= 0.3 * insert["rps"] and submit["p99_us"] <= 150_000
    print(
        f"SUMMARY submit_rps={submit['rps']:.1f} insert_rps={insert['rps']:.1f} "
        f"constant_rps={constant['rps']:.1f} submit_p99_ms={submit['p99_us'] / 1000:.1f} "
        f"target={'met' if target and not problems else 'MISSED'}"
    )
    for p in problems:
        print(f"  PROBLEM: {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
