"""Where a submission's time goes, in one process (issue 11).

Builds its data with `load_submit.py`'s own set-up (campaign, instant pool, verified consumers
with app sessions, registry-backed invoices) in the bench database, then sends the real
submission endpoint N requests through Django's WSGI handler in this process, one after
another: no HTTP server, no load generator, so the figures are the application's own. Prints
per request: the Python CPU time of this process, the CPU time of its PostgreSQL backend (read
from /proc), wall time and queries, by outcome; with `--profile` the top functions by own and
by cumulative time (cProfile).

    .venv/bin/python bench/profile_submit.py --database-name lotteryinvoice_bench_small \\
        --preload 200000 --requests 2000 --profile
"""

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import load_submit  # noqa: E402


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a local PostgreSQL backend process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wsgi_environ(token: str, key: str, body: str) -> dict:
    data = body.encode()
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/invoices/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_X_SESSION_TOKEN": token,
        "HTTP_IDEMPOTENCY_KEY": key,
        "wsgi.input": io.BytesIO(data),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    load_submit.add_database_arguments(parser)
    parser.add_argument("--preload", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--profile-out", help="with --profile: also save the raw stats here")
    parser.add_argument(
        "--statement-times", action="store_true", help="wall time per statement, by outcome"
    )
    parser.add_argument("--filter", help="only functions whose file matches this pattern")
    parser.add_argument(
        "--rollups",
        choices=["queued", "inline"],
        default="queued",
        help="rollups queued for the drain (production's default; the drain is not timed "
        "here) or written in each submission",
    )
    parser.add_argument(
        "--show-queries",
        nargs="?",
        const="short",
        choices=["short", "full"],
        help="print the SQL of the first request per outcome (full: whole statements)",
    )
    args = parser.parse_args()
    # load_submit's set-up reads these.
    args.reuse, args.pool, args.pool_size = True, False, 8
    args.consumers, args.per_consumer = args.requests + args.warmup, 1
    args.workdir = str(ROOT / "var" / "bench-profile")

    url = load_submit.database_url(args)
    run = load_submit.prepare(args, url)
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    application = WSGIHandler()
    lines = run["files"]["submit"].read_text().splitlines()
    requests = [line.split("\t")[2:5] for line in lines]
    warm, timed = requests[: args.warmup], requests[args.warmup :]

    def send(token: str, key: str, body: str) -> tuple[str, bytes]:
        status = []
        chunks = application(wsgi_environ(token, key, body), lambda s, h: status.append(s))
        content = b"".join(chunks)
        chunks.close()
        return status[0], content

    for request in warm:
        send(*request)
    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]

    # Statements are recorded by an execute wrapper, not by DEBUG's query log: the log renders
    # every statement with its parameters (mogrify), which would be counted as our CPU time.
    executed: list[tuple[str, float]] = []

    def record(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            executed.append((sql, time.perf_counter() - start))

    # Redis round trips (a pipeline or script call is one), listed with the statements.
    import redis.connection

    send_packed = redis.connection.AbstractConnection.send_packed_command
    redis_sent: list[str] = []

    def send_packed_command(self, command, check_health=True):
        first = command if isinstance(command, bytes | str) else b"".join(command[:1])
        words = bytes(first if isinstance(first, bytes) else first.encode()).split(b"\r\n")
        redis_sent.append("REDIS " + " ".join(w.decode(errors="replace") for w in words[2:6:2]))
        return send_packed(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command

    outcome_of = Counter()
    py, db, wall, queries = (defaultdict(float) for _ in range(4))
    # outcome -> statement (first 60 characters) -> [count, seconds] (wall)
    statement_times: dict = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    # CPU time, not wall time: the waits for PostgreSQL and Redis are not ours.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    for token, key, body in timed:
        executed.clear()
        redis_sent.clear()
        db0, py0, wall0 = backend_cpu_seconds(backend), time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        with connection.execute_wrapper(record):
            status, content = send(token, key, body)
        if profiler:
            profiler.disable()
        py1, wall1 = time.process_time(), time.perf_counter()
        outcome = status.split()[0]
        if b'"status":"accepted"' in content:
            outcome += " accepted" + (" instant win" if b'"instant_prize":{' in content else "")
        if args.show_queries and not outcome_of[outcome]:
            print(f"--- {outcome}: {len(executed)} queries, {len(redis_sent)} Redis round trips")
            for sql, _seconds in executed:
                print(f"  {sql if args.show_queries == 'full' else sql[:300]}")
            for command in redis_sent:
                print(f"  {command}")
        outcome_of[outcome] += 1
        py[outcome] += py1 - py0
        wall[outcome] += wall1 - wall0
        queries[outcome] += len(executed)
        for sql, seconds in executed:
            text = re.sub(r"\d+", "#", " ".join(sql.split()))[:60]
            entry = statement_times[outcome][text]
            entry[0] += 1
            entry[1] += seconds
        db[outcome] += backend_cpu_seconds(backend) - db0
    total = sum(outcome_of.values())
    print(f"{total:,} submissions, one after another, in this process")
    for outcome, n in sorted(outcome_of.items()):
        print(
            f"  {outcome:28} {n:6,}  python {py[outcome] / n * 1000:6.2f} ms  "
            f"postgres {db[outcome] / n * 1000:5.2f} ms  wall {wall[outcome] / n * 1000:6.2f} ms  "
            f"queries {queries[outcome] / n:5.1f}"
        )
    all_py, all_db = sum(py.values()) / total, sum(db.values()) / total
    print(
        f"  all: python {all_py * 1000:.2f} ms + postgres {all_db * 1000:.2f} ms per submission "
        f"= {2 / (all_py + all_db):.0f} submissions/s on two cores at best"
    )
    if args.statement_times:
        for outcome, statements in sorted(statement_times.items()):
            n = outcome_of[outcome]
            print(f"--- {outcome}: wall time per request by statement (ms)")
            ranked = sorted(statements.items(), key=lambda kv: -kv[1][1])[: args.top]
            for text, (count, seconds) in ranked:
                print(f"  {seconds / n * 1000:6.3f}  ×{count / n:4.1f}  {text}")
    if profiler and args.profile_out:
        profiler.dump_stats(args.profile_out)
    if profiler:
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats(key)
            restrictions = [args.filter, args.top] if args.filter else [args.top]
            stats.print_stats(*restrictions)
            print(out.getvalue())


if __name__ == "__main__":
    main()
