"""Fixtures for periodic and instant draws: staff with the draw permissions, a campaign with
entries, and a helper that walks a draw through its lifecycle."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from apps.draws import services
from apps.draws.services import TierSpec
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import CampaignArea, CampaignIndustry
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    InvoiceFactory,
    MerchantFactory,
    UserFactory,
    funded_default_fund,
)

TIERS = [
    TierSpec(1, "一等奖", Decimal("800.00"), 1),
    TierSpec(2, "二等奖", Decimal("300.00"), 2),
    TierSpec(3, "三等奖", Decimal("50.00"), 3),
]
SOURCE = "中国福利彩票 福彩3D 2026年4月1日开奖号码"
_codes = itertools.count(1)


def grant(user, *codenames):
    for codename in codenames:
        app_label, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=name)
        )
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


def make_staff(username, *codenames):
    return grant(UserFactory(username=username, is_staff=True), *codenames)


@pytest.fixture
def manager(db):
    return make_staff("draw_manager", "draws.manage_draw")


@pytest.fixture
def officer_a(db):
    return make_staff("officer_a", "draws.execute_draw")


@pytest.fixture
def officer_b(db):
    return make_staff("officer_b", "draws.execute_draw")


@pytest.fixture
def disqualifier(db):
    return make_staff("draw_checker", "draws.disqualify_winner")


@pytest.fixture
def campaign(db):
    """A campaign whose rules admit the intake fixtures' invoices (retail, Zhengzhou)."""
    campaign = CampaignFactory(code="zz-draws")
    CampaignIndustry.objects.create(campaign=campaign, code="52")
    CampaignArea.objects.create(campaign=campaign, code="4101", label="郑州市")
    funded_default_fund(campaign)
    return campaign


@pytest.fixture
def window():
    """A window that started ten days ago and closes in a day; cut-off an hour later."""
    now = timezone.now()
    return now - timedelta(days=10), now + timedelta(days=1), now + timedelta(days=1, hours=1)


def add_entries(campaign, count, *, start, consumers=None, merchant=None, step=timedelta(hours=1)):
    """`count` accepted entries, entered `step` apart from `start`, cycling over consumers."""
    consumers = consumers or [ConsumerFactory() for _ in range(count)]
    merchant = merchant or MerchantFactory()
    return [
        InvoiceFactory(
            campaign=campaign,
            consumer=consumers[i % len(consumers)],
            merchant=merchant,
            status=InvoiceStatus.ACCEPTED,
            entered_at=start + step * (i + 1),
        )
        for i in range(count)
    ]


def new_draw(campaign, manager, window, *, tiers=TIERS, limit=1, code=None, **extra):
    start, end, cutoff = window
    return services.draw_create(
        campaign=campaign,
        code=code or f"ZZ-TEST-{next(_codes):03d}",
        name="测试定期开奖",
        window_starts_at=start,
        window_ends_at=end,
        cutoff_at=cutoff,
        tiers=tiers,
        per_holder_limit=limit,
        actor=manager,
        **extra,
    )


def frozen_draw(campaign, manager, window, **kwargs):
    draw = new_draw(campaign, manager, window, **kwargs)
    draw = services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    with time_machine.travel(window[2] + timedelta(minutes=1)):
        draw = services.draw_freeze(draw=draw, actor=manager)
    return draw


def drawn_draw(campaign, manager, window, a, b, *, randomness="福彩3D 第2026085期: 4 7 1", **kw):
    draw = frozen_draw(campaign, manager, window, **kw)
    draw = services.draw_record_randomness(draw=draw, value=randomness, actor=manager)
    services.draw_start(draw=draw, actor=a)
    return services.draw_confirm(draw=draw, actor=b)


def published_draw(campaign, manager, window, a, b, **kw):
    draw = drawn_draw(campaign, manager, window, a, b, **kw)
    return services.draw_publish(draw=draw, actor=manager)
