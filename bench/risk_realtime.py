"""Benchmark: the latency the real-time risk rules add to one submission.

    .venv/bin/python bench/risk_realtime.py                 # on the data of bench/risk_batch.py
    .venv/bin/python bench/risk_realtime.py --samples 5000

Runs on the database of bench/risk_batch.py (generate it there first, at least once). Takes
`--samples` submissions of the data set's last day and scores each, as of its own submission
moment, through `apps.risk.services.risk_assess_submission` — the call the pipeline's risk hook
makes — with the configuration already cached (as in steady state). Prints the median, p95 and
p99 in milliseconds and the number of SQL statements per call (target: median < 5 ms).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    from risk_batch import DEFAULT_URL, setup

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()
    setup(args.database_url)

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.invoices.models import Campaign, Invoice
    from apps.merchants.models import Merchant
    from apps.risk.evaluation.generator import EVAL_CAMPAIGN
    from apps.risk.rules import current_config
    from apps.risk.services import risk_assess_submission

    campaign = Campaign.objects.get(code=EVAL_CAMPAIGN)
    end = Invoice.objects.filter(campaign=campaign).latest("submitted_at").submitted_at
    rows = list(
        Invoice.objects.filter(campaign=campaign, submitted_at__gte=end - timedelta(days=1))
        .select_related("consumer")
        .only(
            "pk",
            "consumer__public_id",
            "merchant_id",
            "seller_uscc",
            "total",
            "issued_at",
            "submitted_at",
            "device_hash",
        )
    )
    random.Random(1).shuffle(rows)
    rows = rows[: args.samples]
    merchants = {m.pk: m for m in Merchant.objects.filter(pk__in={r.merchant_id for r in rows})}
    total = Invoice.objects.filter(campaign=campaign).count()
    current_config()  # steady state: the configuration is cached

    class Record:
        def __init__(self, invoice):
            self.seller_uscc, self.total = invoice.seller_uscc, invoice.total
            self.issued_at = invoice.issued_at

    def score(invoice):
        return risk_assess_submission(
            consumer=invoice.consumer,
            record=Record(invoice),
            campaign=campaign,
            merchant=merchants.get(invoice.merchant_id),
            device_hash=invoice.device_hash,
            at=invoice.submitted_at,
            exclude_invoice_id=invoice.pk,
        )

    queries = []
    for invoice in rows[:50]:  # counted apart: capturing queries costs time itself
        with CaptureQueriesContext(connection) as ctx:
            score(invoice)
        queries.append(len(ctx.captured_queries))
    timings = []
    for invoice in rows:
        started = time.perf_counter()
        score(invoice)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(f"{len(timings):,} submissions scored against {total:,} invoices")
    print(
        f"added latency: median {statistics.median(timings):.2f} ms, "
        f"p95 {timings[int(len(timings) * 0.95)]:.2f} ms, "
        f"p99 {timings[int(len(timings) * 0.99)]:.2f} ms; "
        f"SQL statements per call: {statistics.median(queries):.0f}"
    )


if __name__ == "__main__":
    main()
