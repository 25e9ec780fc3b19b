"""Demo draws for the demo campaign (`manage.py seed_demo`): one finalised periodic draw and an
instant prize pool with its awards.

Call `seed_draws_demo(now=..., seed=...)` after the demo's invoices exist (inside seed_demo's
transaction is fine). Like the rest of the demo it is idempotent (found again by the draw code
and the pool name; entries already drawn are skipped) and reproducible: every step runs
through the real services, at a plausible moment of the campaign's past (the services' clock
is set to it), with the server seed and the instant draws' random numbers derived from the
demo seed instead of the CSPRNG — demo data only, never production draws.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from unittest import mock

from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from apps.accounts.models import User
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import Campaign, Invoice

from . import services
from .choices import DrawStatus, InstantPrizeKind, OddsMode
from .models import (
    DrawWinner,
    InstantDailyQuota,
    InstantDrawResult,
    InstantPool,
    InstantTier,
    PeriodicDraw,
)

DRAW_CODE = "ZZ-2026-07-A"
DRAW_NAME = "郑州市2026年7月上半月定期开奖（演示）"
POOL_NAME = "郑州市即时开奖奖池（演示）"
RANDOMNESS_SOURCE = "中国福利彩票 福彩3D 2026年7月16日开奖号码（演示）"
PERIODIC_TIERS = (
    services.TierSpec(1, "一等奖", Decimal("800.00"), 2),
    services.TierSpec(2, "二等奖", Decimal("300.00"), 5),
    services.TierSpec(3, "三等奖", Decimal("50.00"), 20),
)
# (name, kind, face value, total quantity, probability per entry)
INSTANT_TIERS = (
    ("100元现金", InstantPrizeKind.CASH, Decimal("100.00"), 20, Decimal("0.002")),
    ("50元现金", InstantPrizeKind.CASH, Decimal("50.00"), 60, Decimal("0.005")),
    ("20元现金", InstantPrizeKind.CASH, Decimal("20.00"), 200, Decimal("0.020")),
    ("10元现金", InstantPrizeKind.CASH, Decimal("10.00"), 500, Decimal("0.050")),
    ("满100减20消费券", InstantPrizeKind.COUPON, Decimal("20.00"), 800, Decimal("0.080")),
)


@contextmanager
def _at(moment: datetime, rng: random.Random) -> Iterator[None]:
    """Run services as at `moment`, with demo randomness instead of the CSPRNG."""
    with (
        mock.patch.object(timezone, "now", lambda: moment),
        mock.patch.object(services.secrets, "token_bytes", rng.randbytes),
        mock.patch.object(services.secrets, "randbelow", rng.randrange),
    ):
        yield


def _staff(codename: str, username: str) -> User:
    """A demo staff member holding `draws.<codename>`: in the role group(s) that grant it,
    or with the permission itself when no role does (yet)."""
    permission = Permission.objects.get(content_type__app_label="draws", codename=codename)
    user, _created = User.objects.get_or_create(
        username=username, defaults={"is_staff": True, "password": "!"}
    )
    groups = list(Group.objects.filter(permissions=permission))
    if groups:
        user.groups.add(*groups)
    else:
        user.user_permissions.add(permission)
    return User.objects.get(pk=user.pk)  # fresh permission cache


def seed_draws_demo(*, now: datetime, seed: int = 2026) -> Counter:
    """Create the demo draws that are missing; returns what was created."""
    from apps.common.demo import CAMPAIGN_CODE, CAMPAIGN_STARTS

    created: Counter = Counter()
    campaign = Campaign.objects.get(code=CAMPAIGN_CODE)
    manager = _staff("manage_draw", "demo_draw_manager")
    officer_a = _staff("execute_draw", "demo_draw_officer_a")
    officer_b = _staff("execute_draw", "demo_draw_officer_b")
    checker = _staff("disqualify_winner", "demo_draw_checker")
    pool_admin = _staff("change_instantpool", "demo_draw_manager")

    _demo_fund(campaign)
    pool = InstantPool.objects.filter(campaign=campaign, name=POOL_NAME).first()
    if pool is None:
        pool = _create_pool(campaign, pool_admin, CAMPAIGN_STARTS, seed)
        created["instant_pools"] += 1
    created["instant_awards"] += _draw_instant(pool, now, seed)

    if not PeriodicDraw.objects.filter(code=DRAW_CODE).exists():
        _periodic_draw(campaign, CAMPAIGN_STARTS, now, seed, manager, officer_a, officer_b, checker)
        created["periodic_draws"] += 1
    return created


def _demo_fund(campaign) -> None:
    """The campaign's default prize fund with its budget booked (prizes are reserved from it)."""
    from apps.prizes.choices import FundSource
    from apps.prizes.ledger import fund_accounts_ensure, fund_deposit
    from apps.prizes.models import Fund

    fund, _ = Fund.objects.get_or_create(
        campaign=campaign,
        is_default=True,
        defaults={"name": "郑州市有奖发票奖金（市级财政）", "source": FundSource.CITY},
    )
    fund_accounts_ensure(fund)
    fund_deposit(
        fund=fund,
        amount=Decimal("5000000.00"),
        key=f"deposit:demo:{campaign.code}",
        memo="2026 pilot budget (demo)",
        actor=None,
    )


def _demo_rng(seed: int, what: str) -> random.Random:
    """Demo data only: reproducible, deliberately not a CSPRNG."""
    return random.Random(f"lotteryinvoice-demo:{seed}:{what}")  # noqa: S311 - seeded, reproducible demo data


def _create_pool(campaign, actor, starts: datetime, seed: int) -> InstantPool:
    rng = _demo_rng(seed, "instant-pool")
    with _at(starts - timedelta(days=1), rng):
        pool = InstantPool.objects.create(
            campaign=campaign,
            name=POOL_NAME,
            odds_mode=OddsMode.FIXED,
            active_from=campaign.starts_at,
            active_until=campaign.ends_at,
            max_wins_per_consumer=3,
            delay_cash_above=Decimal("50.00"),
            delay_days=7,
        )
        for name, kind, face_value, quantity, probability in INSTANT_TIERS:
            tier = InstantTier(
                pool=pool,
                name=name,
                kind=kind,
                face_value=face_value,
                total_quantity=quantity,
                probability=probability,
                min_spend=Decimal("100.00") if kind == InstantPrizeKind.COUPON else None,
                valid_days=30 if kind == InstantPrizeKind.COUPON else None,
            )
            services.instant_tier_save(tier=tier, actor=actor)
    # Pace every tier evenly over the campaign's days.
    first = timezone.localdate(campaign.starts_at)
    last = timezone.localdate(campaign.ends_at)
    days = (last - first).days + 1
    rows = []
    for tier in pool.tiers.all():
        base, extra = divmod(tier.total_quantity, days)
        rows += [
            InstantDailyQuota(
                tier=tier, day=first + timedelta(days=i), quota=base + (1 if i < extra else 0)
            )
            for i in range(days)
        ]
    InstantDailyQuota.objects.bulk_create(rows, ignore_conflicts=True)
    return pool


def _draw_instant(pool: InstantPool, now: datetime, seed: int) -> int:
    """Every accepted demo entry not drawn yet draws once, at the moment it entered."""
    drawn = InstantDrawResult.objects.filter(invoice__campaign=pool.campaign).values("invoice_id")
    entries = (
        Invoice.objects.filter(
            campaign=pool.campaign,
            status=InvoiceStatus.ACCEPTED,
            entered_at__gte=pool.active_from,
            entered_at__lt=min(pool.active_until, now),
        )
        .exclude(pk__in=drawn)
        .select_related("campaign")
        .order_by("entered_at", "pk")
    )
    awarded = 0
    for invoice in entries.iterator(chunk_size=500):
        rng = _demo_rng(seed, f"instant:{invoice.number}")
        with _at(invoice.entered_at, rng):
            if services.instant_draw_for_entry(invoice=invoice) is not None:
                awarded += 1
    return awarded


def _periodic_draw(campaign, starts, now, seed, manager, officer_a, officer_b, checker):
    """The first half-month of the campaign, taken through every step to `finalised`."""
    rng = _demo_rng(seed, f"periodic:{DRAW_CODE}")
    window_end = starts + timedelta(days=15)
    cutoff = window_end + timedelta(hours=1)
    notice_days = 7
    latest = now - timedelta(hours=6)
    if cutoff + timedelta(days=notice_days, hours=4) > latest:
        window_end = max(starts + timedelta(hours=12), latest - timedelta(days=notice_days + 1))
        cutoff = window_end + timedelta(hours=1)
        notice_days = max(0, min(7, (latest - cutoff - timedelta(hours=4)).days))
    with _at(starts - timedelta(days=2), rng):
        draw = services.draw_create(
            campaign=campaign,
            code=DRAW_CODE,
            name=DRAW_NAME,
            window_starts_at=starts,
            window_ends_at=window_end,
            cutoff_at=cutoff,
            tiers=PERIODIC_TIERS,
            per_holder_limit=1,
            notice_days=notice_days,
            actor=manager,
        )
    with _at(starts - timedelta(days=1), rng):
        draw = services.draw_commit(draw=draw, actor=manager, randomness_source=RANDOMNESS_SOURCE)
    with _at(cutoff, rng):
        draw = services.draw_freeze(draw=draw)
    randomness = "福彩3D 第2026187期: " + " ".join(str(rng.randrange(10)) for _ in range(3))
    with _at(cutoff + timedelta(hours=20), rng):
        draw = services.draw_record_randomness(draw=draw, value=randomness, actor=manager)
    with _at(cutoff + timedelta(hours=21), rng):
        draw = services.draw_start(draw=draw, actor=officer_a)
    with _at(cutoff + timedelta(hours=21, minutes=5), rng):
        draw = services.draw_confirm(draw=draw, actor=officer_b)
    published = cutoff + timedelta(hours=22)
    with _at(published, rng):
        draw = services.draw_publish(draw=draw, actor=manager)
    # One winner's invoice turned out red-flushed during the notice: a substitute takes over.
    first = DrawWinner.objects.filter(draw=draw).order_by("-counter").first()
    if first is not None and notice_days:
        with _at(published + timedelta(days=1), rng):
            services.draw_disqualify(
                draw=draw,
                ticket_no=first.ticket_no,
                reason="red_flushed",
                note="演示：发票已红冲",
                actor=checker,
            )
    with _at(draw.notice_ends_at + timedelta(hours=1), rng):
        draw = services.draw_finalise(draw=draw, actor=manager)
    assert draw.status == DrawStatus.FINALISED  # noqa: S101 - a demo sanity check
    return draw
