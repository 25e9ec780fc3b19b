"""The draws part of the demo: one finalised periodic draw and an instant pool with awards,
made through the real services, idempotent."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.common.demo import CAMPAIGN_CODE
from apps.draws import selectors
from apps.draws.choices import DrawStatus
from apps.draws.demo import DRAW_CODE, POOL_NAME, seed_draws_demo
from apps.draws.models import (
    DrawStatusChange,
    DrawWinner,
    InstantAward,
    InstantDailyQuota,
    InstantDrawResult,
    InstantPool,
    PeriodicDraw,
)
from apps.invoices.models import Campaign

pytestmark = pytest.mark.django_db


def test_demo_draws_are_complete_verifiable_and_idempotent():
    call_command("seed_demo", stdout=io.StringIO(), merchants=60, consumers=40, invoices=400)
    campaign = Campaign.objects.get(code=CAMPAIGN_CODE)
    seed_draws_demo(now=campaign.created_at)  # seed_demo may already have called it
    draw = PeriodicDraw.objects.get(code=DRAW_CODE)
    assert draw.status == DrawStatus.FINALISED
    assert draw.ticket_count > 0
    assert draw.confirmed_by != draw.started_by
    assert DrawWinner.objects.filter(draw=draw, disqualified=False).exists()
    assert selectors.draw_replay(draw).ok
    actions = list(DrawStatusChange.objects.filter(draw=draw).values_list("action", flat=True))
    assert actions[0] == "created" and actions[-1] == "finalised"
    times = list(
        DrawStatusChange.objects.filter(draw=draw).order_by("pk").values_list("at", flat=True)
    )
    assert times == sorted(times) and times[-1] < campaign.created_at

    pool = InstantPool.objects.get(name=POOL_NAME)
    assert InstantAward.objects.filter(pool=pool).exists()
    assert InstantDrawResult.objects.count() > InstantAward.objects.count()
    for tier in pool.tiers.all():
        assert (
            tier.total_quantity - tier.remaining == InstantAward.objects.filter(tier=tier).count()
        )
    assert not InstantDailyQuota.objects.filter(awarded__gt=0).exclude(tier__pool=pool).exists()

    again = seed_draws_demo(now=campaign.created_at)
    assert sum(again.values()) == 0
