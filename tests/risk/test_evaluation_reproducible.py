"""The evaluation data set is reproducible: one seed, size and end give the same rows on every
run (the default end is a fixed moment, not the hour the run happens to end), and
`risk_evaluate --end` moves the data set in time."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.invoices.models import Invoice
from apps.risk.evaluation import generator

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _fingerprint(dataset: generator.Dataset) -> list[tuple]:
    """The data set's rows without database ids (consumers and sellers by their generated
    names), and its labels the same way."""
    rows = sorted(
        Invoice.objects.filter(campaign=dataset.campaign).values_list(
            "submitted_at",
            "issued_at",
            "total",
            "status",
            "updated_at",
            "device_hash",
            "seller_name",
            "consumer__user__username",
        )
    )
    usernames = dict(
        Invoice.objects.filter(campaign=dataset.campaign).values_list(
            "consumer_id", "consumer__user__username"
        )
    )
    labels = sorted(
        (i.scenario, tuple(sorted(usernames.get(c, "") for c in i.consumers)))
        for i in dataset.instances
    )
    return [*rows, *labels]


def test_the_same_seed_gives_the_same_data_set_on_every_run():
    first = generator.generate(invoices=3000, seed=11, log=lambda *_: None)
    rows = _fingerprint(first)
    again = generator.generate(invoices=3000, seed=11, log=lambda *_: None)
    assert again.end == first.end == generator.DEFAULT_END
    assert _fingerprint(again) == rows
    # ... and another seed gives another one.
    other = generator.generate(invoices=3000, seed=12, log=lambda *_: None)
    assert _fingerprint(other) != rows


def test_the_default_end_lies_inside_the_pilot_and_the_data_before_it():
    end = generator.DEFAULT_END
    china = ZoneInfo("Asia/Shanghai")
    assert datetime(2026, 7, 1, tzinfo=china) < end - timedelta(days=40)
    assert end < datetime(2026, 12, 31, tzinfo=china)
    dataset = generator.generate(invoices=3000, seed=5, log=lambda *_: None)
    invoices = Invoice.objects.filter(campaign=dataset.campaign)
    assert not invoices.filter(submitted_at__gte=end).exists()
    assert not invoices.filter(submitted_at__lt=end - timedelta(days=30)).exists()
    # Rows carry their own moments, not the moment they were written.
    assert not invoices.filter(updated_at__gte=end).exists()
    assert not invoices.filter(created_at__gte=end).exists()


def test_risk_evaluate_takes_the_end_and_reports_it(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command(
        "risk_evaluate",
        invoices=3000,
        seed=7,
        end="2026-10-01T01:00+08:00",
        nightly_only=True,
        stdout=out,
    )
    text = out.getvalue()
    assert "up to 2026-10-01T01:00:00+08:00" in text
    assert any(line.startswith("overall") for line in text.splitlines())
    latest = Invoice.objects.filter(campaign__code=generator.EVAL_CAMPAIGN).latest("submitted_at")
    end = datetime(2026, 10, 1, 1, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert end - timedelta(days=1) < latest.submitted_at < end
    # The labels are kept per database, and `--reuse` scores the same data set again.
    assert [p.name for p in tmp_path.iterdir()] == [
        f"risk_eval_labels_{connection.settings_dict['NAME']}.json"
    ]
    again = StringIO()
    call_command("risk_evaluate", reuse=True, nightly_only=True, stdout=again)
    assert "scoring the data set of the previous run again" in again.getvalue()
    assert text.splitlines()[-10:-4] == again.getvalue().splitlines()[-10:-4]


def test_an_end_without_offset_is_refused():
    with pytest.raises(CommandError, match="offset"):
        call_command("risk_evaluate", invoices=3000, seed=7, end="2026-10-01T01:00")
