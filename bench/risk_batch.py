"""Benchmark: the nightly risk model (apps.risk.batch) over a generated campaign.

    .venv/bin/python bench/risk_batch.py                      # 1,000,000 invoices
    .venv/bin/python bench/risk_batch.py --invoices 200000    # a quicker run
    .venv/bin/python bench/risk_batch.py --reuse              # the data of the last run

Uses its own database (default postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_risk,
or --database-url), migrates it, writes the evaluation generator's synthetic traffic with COPY
(apps.risk.evaluation.generator: ~250,000 consumers and ~20,000 sellers per million invoices,
with planted fraud), then runs the whole nightly model `--runs` times as of the data's end and
prints the run times, the rows scored and the alerts raised. `manage.py risk_evaluate` prints
the model's precision and recall on the same kind of data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_risk"


def setup(url: str) -> None:
    import django

    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")
    name = url.rsplit("/", 1)[1]
    server = url.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    setup(args.database_url)

    from apps.invoices.models import Campaign
    from apps.risk.batch import batch_run
    from apps.risk.evaluation import generator

    if args.reuse:
        campaign = Campaign.objects.get(code=generator.EVAL_CAMPAIGN)
        from apps.invoices.models import Invoice

        end = Invoice.objects.filter(campaign=campaign).latest("submitted_at").submitted_at
    else:
        started = time.monotonic()
        data = generator.generate(invoices=args.invoices, seed=args.seed, log=lambda *_: None)
        campaign, end = data.campaign, data.end
        print(
            f"generated and loaded {data.invoices:,} invoices in {time.monotonic() - started:.1f} s"
        )
    seconds = []
    for _ in range(args.runs):
        run = batch_run(campaign=campaign, as_of=end)
        seconds.append(run.seconds)
        print(
            f"nightly model: {run.seconds:.1f} s — {run.invoices:,} invoices, "
            f"{run.merchants:,} merchants and {run.consumers:,} consumers scored, "
            f"{run.alerts:,} alerts"
        )
    print(f"median {statistics.median(seconds):.1f} s over {len(seconds)} runs")


if __name__ == "__main__":
    main()
