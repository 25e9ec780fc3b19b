"""Run the real risk code over a generated data set and score it against the planted labels.

1. Real time: every invoice of the last `replay_days` is replayed, in submission order, through
   `apps.risk.rules.evaluate` — the same function the pipeline's hook calls — "as of" its
   submission moment, with everything submitted before it in the database.
2. Nightly: `apps.risk.batch.batch_run` over the whole campaign as of the data set's end.

A flag is a consumer held or blocked in the replay, or an alert of the nightly model. It is a
true flag when its subject belongs to a planted scenario (for a cluster: most of its members).
A scenario instance is detected when any of its consumers or merchants is flagged. Each flag is
attributed to the pattern its strongest reason points at, which gives precision per scenario.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection

from apps.accounts.models import Consumer
from apps.invoices.models import Invoice
from apps.risk.batch import batch_run
from apps.risk.choices import RiskAction, SubjectKind
from apps.risk.rules import Submission, current_config, evaluate

from .generator import SCENARIOS, Dataset

RULE_PATTERN = {
    "split_purchase": "split_purchase",
    "insider_timing": "insider",
    "seller_staff": "insider",
    "shared_device": "identity_farm",
    "shared_account": "identity_farm",
    "device_velocity": "identity_farm",
    "seller_surge": "seller_surge",
    "consumer_velocity": "bulk_repeat",
    "round_burst": "shell_seller",
    "blacklist": "blacklist",
}
CONSUMER_FEATURE_PATTERN = {
    "volume": "bulk_repeat",
    "near_cap_share": "bulk_repeat",
    "cap_days": "bulk_repeat",
    "near_cap_streak": "bulk_repeat",
    "win_excess": "bulk_repeat",
    "draw_win_excess": "bulk_repeat",
    "near_min_share": "split_purchase",
    "fast_share": "insider",
    "top_seller_share": "insider",
    "round_share": "shell_seller",
    "red_excess": "claim_reverse",
    "red_large": "claim_reverse",
}
# Clusters: consumers linked by returns at the same sellers are a claim-and-return group; the
# others (shared devices, accounts, phone blocks) an identity farm.
CLUSTER_FEATURE_PATTERN = {"linked_returns": "claim_reverse"}
MERCHANT_FEATURE_PATTERN = {
    "surge": "seller_surge",
    "few_buyers": "shell_seller",
    "round_share": "shell_seller",
    "near_min_share": "split_purchase",
    "red_excess": "claim_reverse",
    "fast_share": "insider",
    "repeat_share": "seller_surge",
}


@dataclass
class Report:
    replayed: int = 0
    replayed_normal: int = 0
    held_normal: int = 0
    held_fraud_invoices: int = 0
    fraud_replayed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    replay_seconds: float = 0.0
    batch_seconds: float = 0.0
    batch_alerts: int = 0
    flags: list[tuple[str, bool]] = field(default_factory=list)  # (pattern, true?)
    sources: list[str] = field(default_factory=list)
    detected: Counter = field(default_factory=Counter)
    planted: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = []
        true_by = Counter(p for p, ok in self.flags if ok)
        all_by = Counter(p for p, _ok in self.flags)
        out.append(
            f"{'scenario':<16}{'planted':>8}{'found':>7}{'recall':>8}{'flags':>7}{'precision':>10}"
        )
        for name in SCENARIOS:
            planted, found = self.planted[name], self.detected[name]
            flags = all_by[name]
            precision = true_by[name] / flags if flags else float("nan")
            out.append(
                f"{name:<16}{planted:>8}{found:>7}{found / max(planted, 1):>8.3f}{flags:>7}"
                f"{precision:>10.3f}"
            )
        planted, found = sum(self.planted.values()), sum(self.detected.values())
        flags, true = len(self.flags), sum(1 for _p, ok in self.flags if ok)
        out.append(
            f"{'overall':<16}{planted:>8}{found:>7}{found / max(planted, 1):>8.3f}{flags:>7}"
            f"{true / max(flags, 1):>10.3f}"
        )
        out.append(
            f"real time: {self.replayed} invoices replayed in {self.replay_seconds:.1f} s; "
            f"median {statistics.median(self.latencies_ms or [0]):.2f} ms, "
            f"p95 {_p95(self.latencies_ms):.2f} ms per submission"
        )
        out.append(
            f"false holds on normal traffic: {self.held_normal}/{self.replayed_normal} = "
            f"{self.held_normal / max(self.replayed_normal, 1):.4%}; planted invoices held or "
            f"blocked: {self.held_fraud_invoices}/{self.fraud_replayed}"
        )
        out.append(f"nightly model: {self.batch_seconds:.1f} s, {self.batch_alerts} alerts")
        for source in ("real-time", "nightly"):
            mine = [ok for (_p, ok), s in zip(self.flags, self.sources, strict=True) if s == source]
            out.append(
                f"  {source} flags: {len(mine)}, true {sum(mine)}"
                f" ({sum(mine) / max(len(mine), 1):.3f})"
            )
        return out


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def run(dataset: Dataset, *, replay_days: float = 1.0, replay: bool = True, log=print) -> Report:
    report = Report()
    campaign = dataset.campaign
    fraud_consumers, fraud_merchants = dataset.fraud_consumers, dataset.fraud_merchants
    consumer_scenarios: dict[int, set[str]] = defaultdict(set)
    for inst in dataset.instances:
        report.planted[inst.scenario] += 1
        for c in inst.consumers:
            consumer_scenarios[c].add(inst.scenario)
    flagged_consumers: set[int] = set()
    flagged_merchants: set[int] = set()

    # 0. last night's model, as in production: the sellers' usual volumes the real-time
    # `seller_surge` rule compares with (its alerts are superseded by tonight's run below).
    from datetime import timedelta

    replay_from = dataset.end - timedelta(days=replay_days)
    if replay:
        batch_run(campaign=campaign, as_of=replay_from)
    else:  # the nightly model alone (quick tuning runs): nothing to replay
        replay_from = dataset.end

    # 1. real time
    rows = list(
        Invoice.objects.filter(campaign=campaign, submitted_at__gte=replay_from)
        .order_by("submitted_at", "pk")
        .values_list(
            "pk",
            "consumer_id",
            "merchant_id",
            "seller_uscc",
            "total",
            "issued_at",
            "submitted_at",
            "device_hash",
        )
    )
    public_ids = dict(
        Consumer.objects.filter(pk__in={row[1] for row in rows}).values_list("pk", "public_id")
    )
    config = current_config()
    started = time.monotonic()
    held_consumers: dict[int, str] = {}
    with connection.cursor():
        for pk, consumer, merchant, uscc, total, issued, at, device in rows:
            sub = Submission(
                consumer_id=consumer,
                consumer_public_id=str(public_ids[consumer]),
                seller_uscc=uscc,
                merchant_id=merchant,
                total=total,
                issued_at=issued,
                at=at,
                min_total=campaign.min_total,
                device_hash=device,
                exclude_invoice_id=pk,
            )
            t0 = time.perf_counter()
            result = evaluate(sub, config)
            report.latencies_ms.append((time.perf_counter() - t0) * 1000)
            fraud = consumer in fraud_consumers
            report.replayed += 1
            report.fraud_replayed += fraud
            report.replayed_normal += not fraud
            if result.action != RiskAction.ALLOW:
                if fraud:
                    report.held_fraud_invoices += 1
                else:
                    report.held_normal += 1
                if consumer not in held_consumers:
                    held_consumers[consumer] = RULE_PATTERN.get(str(result.hits[0].rule), "other")
    report.replay_seconds = time.monotonic() - started
    for consumer, pattern in held_consumers.items():
        report.flags.append((pattern, consumer in fraud_consumers))
        report.sources.append("real-time")
        flagged_consumers.add(consumer)
    log(f"real-time replay: {report.replayed} invoices, {report.replay_seconds:.1f} s")

    # 2. nightly model
    started = time.monotonic()
    run_row = batch_run(campaign=campaign, as_of=dataset.end)
    report.batch_seconds = time.monotonic() - started
    report.batch_alerts = run_row.alerts
    log(f"nightly model: {run_row.invoices} invoices, {report.batch_seconds:.1f} s")
    alerts = list(run_row.alert_set.all())
    report.sources += ["nightly"] * len(alerts)
    for alert in alerts:
        top = alert.features[0]["feature"] if alert.features else ""
        if alert.subject_kind == SubjectKind.MERCHANT:
            ok = alert.merchant_id in fraud_merchants
            flagged_merchants.add(alert.merchant_id)
            report.flags.append((MERCHANT_FEATURE_PATTERN.get(top, "other"), ok))
        elif alert.subject_kind == SubjectKind.CONSUMER:
            ok = alert.consumer_id in fraud_consumers
            flagged_consumers.add(alert.consumer_id)
            report.flags.append((CONSUMER_FEATURE_PATTERN.get(top, "other"), ok))
        else:
            members = alert.members
            ok = sum(1 for m in members if m in fraud_consumers) * 2 > len(members)
            flagged_consumers.update(members)
            report.flags.append((CLUSTER_FEATURE_PATTERN.get(top, "identity_farm"), ok))

    for inst in dataset.instances:
        if inst.consumers & flagged_consumers or inst.merchants & flagged_merchants:
            report.detected[inst.scenario] += 1
    return report
