"""`manage.py risk_evaluate`: plant labelled fraud in generated traffic, run the real-time rules
and the nightly model over it, print precision and recall per scenario and overall.

Writes a synthetic data set (default 1,000,000 invoices) with COPY into the configured
database, replacing an earlier one: run it on a scratch database, never production. The data
end at `--end` (default `generator.DEFAULT_END`, a fixed moment), so one seed gives the same
data set — and the same figures — on every run.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from apps.risk.evaluation import evaluate, generator
from apps.risk.rules import invalidate_config


class Command(BaseCommand):
    help = "Evaluate risk control on generated traffic with planted fraud scenarios."

    def add_arguments(self, parser):
        parser.add_argument("--invoices", type=int, default=1_000_000)
        parser.add_argument("--seed", type=int, default=None, help="default: time-based")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--replay-days", type=float, default=1.0)
        parser.add_argument(
            "--end",
            default=None,
            help=(
                "the data set's end, an ISO date-time with its offset "
                f"(default {generator.DEFAULT_END.isoformat()}: fixed, so that a seed "
                "reproduces its data set)"
            ),
        )
        parser.add_argument(
            "--nightly-only",
            action="store_true",
            help="skip the real-time replay (quick runs of the nightly model alone)",
        )
        parser.add_argument(
            "--reuse",
            action="store_true",
            help=(
                "score the data set written by the previous run on this database again "
                "(labels in var/risk_eval_labels_<database>.json)"
            ),
        )

    def handle(self, *args, **options):
        seed = options["seed"] if options["seed"] is not None else int(time.time())
        invalidate_config()
        end = generator.DEFAULT_END
        if options["end"]:
            try:
                end = datetime.fromisoformat(options["end"])
            except ValueError as exc:
                raise CommandError(f"--end: {exc}") from exc
            if end.tzinfo is None:
                raise CommandError("--end needs an offset, e.g. 2026-11-16T01:00+08:00")
        # The labels of the data set in this database (one file per database name, so that
        # runs on different scratch databases do not overwrite each other's labels).
        database = connection.settings_dict["NAME"]
        labels = Path(settings.VAR_DIR) / f"risk_eval_labels_{Path(str(database)).name}.json"
        if options["reuse"]:
            dataset = generator.load(labels)
            self.stdout.write(f"scoring the data set of the previous run again ({labels})")
        else:
            self.stdout.write(
                f"seed {seed}, {options['invoices']} invoices over {options['days']} days "
                f"up to {end.isoformat()}"
            )
            dataset = generator.generate(
                invoices=options["invoices"],
                seed=seed,
                days=options["days"],
                replay_days=options["replay_days"],
                end=end,
                log=self.stdout.write,
            )
            generator.save(dataset, labels)
        self.stdout.write(
            f"data set: {dataset.invoices} invoices ({dataset.fraud_invoices} planted), "
            f"{len(dataset.instances)} scenario instances, written in {dataset.seconds:.1f} s"
        )
        report = evaluate.run(
            dataset,
            replay_days=options["replay_days"],
            replay=not options["nightly_only"],
            log=self.stdout.write,
        )
        for line in report.lines():
            self.stdout.write(line)
