"""Runbook drill "draw interrupted mid-way": the process executing a draw dies after it has
written winners but before it committed (SIGKILL while it waits on a lock we hold).

What the runbook promises: nothing of the half-run draw remains (one transaction), the draw is
still where it was (randomness recorded, started by A), the audit trail verifies, and the
second officer simply confirms again — the result is the one the published inputs determine,
drawn exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditChainHead
from apps.audit.services import audit_verify
from apps.draws import services
from apps.draws.choices import DrawStatus
from apps.draws.exceptions import DrawError
from apps.draws.models import DrawWinner, PeriodicDraw
from tests.draws.conftest import TIERS, add_entries, frozen_draw, funded_default_fund, make_staff

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(query: str, params: list, *, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cur:
            # Statistics views are a snapshot per transaction; we poll inside one.
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(query, params)
            row = cur.fetchone()
        if row:
            return row
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {query}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_draw_killed_mid_execution_leaves_nothing_and_is_confirmed_again(window_and_campaign):
    campaign, window = window_and_campaign
    manager = make_staff("drill_manager", "draws.manage_draw")
    officer_a = make_staff("drill_officer_a", "draws.execute_draw")
    officer_b = make_staff("drill_officer_b", "draws.execute_draw")
    add_entries(campaign, 30, start=window[0])
    draw = frozen_draw(campaign, manager, window)
    draw = services.draw_record_randomness(
        draw=draw, value="福彩3D 第2026101期: 1 2 3", actor=manager
    )
    services.draw_start(draw=draw, actor=officer_a)
    status_before = PeriodicDraw.objects.get(pk=draw.pk).status
    assert status_before == DrawStatus.RANDOMNESS_RECORDED
    trail_before = audit_verify()
    assert trail_before.ok

    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}},
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    script = (
        "from apps.accounts.models import User; from apps.draws import services; "
        "from apps.draws.models import PeriodicDraw; "
        f"services.draw_confirm(draw=PeriodicDraw.objects.get(pk={draw.pk}), "
        f"actor=User.objects.get(pk={officer_b.pk}))"
    )
    with transaction.atomic():
        # Hold the audit trail's head: the draw's last step (its audit entry) must wait for it.
        AuditChainHead.objects.select_for_update().get(pk=1)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            (pid,) = _wait_for(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                [],
            )
            # Mid-way for real: its winners are written (uncommitted) when it is killed.
            _wait_for(
                "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'draws_drawwinner' AND l.pid = %s "
                "AND l.mode = 'RowExclusiveLock'",
                [pid],
            )
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
    # Our lock is released; the orphaned server process finds its client gone and rolls back.
    _wait_for("SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)", [pid])
    assert worker.returncode == -signal.SIGKILL

    draw = PeriodicDraw.objects.get(pk=draw.pk)
    assert draw.status == status_before
    assert draw.started_by_id == officer_a.pk and draw.confirmed_by_id is None
    assert not DrawWinner.objects.filter(draw=draw).exists()
    trail = audit_verify()
    assert trail.ok and trail.checked == trail_before.checked

    # The runbook's recovery: officer B confirms again; the draw runs once, to completion.
    drawn = services.draw_confirm(draw=draw, actor=officer_b)
    assert drawn.status == DrawStatus.DRAWN
    expected = sum(t.count for t in TIERS)
    assert DrawWinner.objects.filter(draw=draw).count() == expected
    assert audit_verify().ok
    with pytest.raises(DrawError):
        services.draw_confirm(draw=drawn, actor=officer_b)


@pytest.fixture
def window_and_campaign(db):
    from datetime import timedelta

    from django.utils import timezone

    from apps.invoices.models import CampaignArea, CampaignIndustry
    from tests.factories.core import CampaignFactory

    campaign = CampaignFactory(code="zz-drill")
    CampaignIndustry.objects.create(campaign=campaign, code="52")
    CampaignArea.objects.create(campaign=campaign, code="4101", label="郑州市")
    funded_default_fund(campaign)
    now = timezone.now()
    cutoff = now + timedelta(days=1, hours=1)
    return campaign, (now - timedelta(days=10), now + timedelta(days=1), cutoff)
