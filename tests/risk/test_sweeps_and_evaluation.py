"""Re-verification sweeps withdraw red-flushed entries; the evaluation harness runs end to end
on a small generated city."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.invoices.models import Invoice, TaxInvoiceRecord
from apps.risk.evaluation import evaluate, generator
from apps.risk.models import Reverification
from apps.risk.sweeps import reverify_sweep
from tests.invoices.conftest import submit

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_a_sweep_withdraws_an_entry_red_flushed_after_it_was_entered(api, campaign, make_record):
    record, body = make_record(total="300.00")
    _kept_record, kept_body = make_record(total="250.00")
    invoice = Invoice.objects.get(uid=submit(api, body).json()["invoice"]["uid"])
    kept = Invoice.objects.get(uid=submit(api, kept_body).json()["invoice"]["uid"])
    TaxInvoiceRecord.objects.filter(pk=record.pk).update(
        status="red_flushed", red_total=record.total
    )
    later = timezone.now() + timedelta(days=2)
    counts = reverify_sweep(now=later)
    assert counts == {"checked": 2, "reversed": 1, "unavailable": 0}
    invoice.refresh_from_db()
    kept.refresh_from_db()
    assert invoice.status == "reversed" and kept.status == "accepted"
    assert Reverification.objects.get(invoice=kept).outcome == "found"
    # Re-checked only after the interval: the verifier's daily quota is respected.
    assert reverify_sweep(now=later + timedelta(hours=1))["checked"] == 0
    assert reverify_sweep(now=later + timedelta(days=4))["checked"] == 1


def test_a_fresh_entry_is_not_swept_yet(api, campaign, make_record):
    _record, body = make_record()
    submit(api, body)
    assert reverify_sweep()["checked"] == 0


def test_the_evaluation_runs_the_real_rules_and_model_on_a_generated_city(db):
    dataset = generator.generate(invoices=6000, seed=3, log=lambda *_: None)
    assert Invoice.objects.filter(campaign=dataset.campaign).count() == dataset.invoices
    assert {i.scenario for i in dataset.instances} == set(generator.SCENARIOS)
    # Red flushes are stored as the real reversal service leaves them: the code, the moment
    # (after entry, before the data set's end) and a history row at that moment.
    reversed_ = Invoice.objects.filter(campaign=dataset.campaign, status="reversed")
    assert reversed_.exists()
    assert not reversed_.exclude(rejection_code="invoice.red_flushed").exists()
    for invoice in reversed_[:50]:
        assert invoice.entered_at < invoice.updated_at < dataset.end
        step = invoice.history.get()
        assert (step.from_status, step.to_status, step.at) == (
            "accepted",
            "reversed",
            invoice.updated_at,
        )
    report = evaluate.run(dataset, replay_days=0.2, log=lambda *_: None)
    assert report.replayed > 0 and report.replayed == len(report.latencies_ms)
    assert sum(report.planted.values()) == len(dataset.instances)
    assert sum(report.detected.values()) <= len(dataset.instances)
    lines = report.lines()
    assert lines[0].startswith("scenario") and any(line.startswith("overall") for line in lines)
    # A second data set replaces the first one.
    again = generator.generate(invoices=3000, seed=4, log=lambda *_: None)
    assert Invoice.objects.filter(campaign=again.campaign).count() == again.invoices
