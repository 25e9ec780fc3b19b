"""The whole periodic-draw lifecycle from the admin, as officials click through it, with the
two-person rule; view-only staff get no step; instant pools keep their counters right."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from apps.draws import services
from apps.draws.choices import DrawStatus
from apps.draws.exceptions import DrawError
from apps.draws.models import (
    DrawTicket,
    DrawWinner,
    InstantDailyQuota,
    InstantPool,
    InstantTier,
    PeriodicDraw,
)
from tests.accounts.helpers import sign_in_staff
from tests.draws.conftest import SOURCE, add_entries, make_staff, published_draw
from tests.factories.core import ConsumerFactory

pytestmark = pytest.mark.django_db

VIEW_DRAWS = (
    "draws.view_periodicdraw",
    "draws.view_drawtier",
    "draws.view_drawwinner",
    "draws.view_drawticket",
    "draws.view_drawstatuschange",
)
CHANGELIST = reverse("admin:draws_periodicdraw_changelist")
MANAGEMENT = re.compile(
    r'name="([\w-]+-(?:TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS)"[^>]*value="(\d*)"'
)


def step_url(draw, step):
    return reverse("admin:draws_periodicdraw_step", args=[draw.pk, step])


def change_url(draw):
    return reverse("admin:draws_periodicdraw_change", args=[draw.pk])


def as_staff(client, user):
    return sign_in_staff(client, user)


def management_data(html: str) -> dict:
    return dict(MANAGEMENT.findall(html))


def split(moment):
    local = timezone.localtime(moment)
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def staff(db):
    return {
        "manager": make_staff("adm_manager", "draws.manage_draw", *VIEW_DRAWS),
        "a": make_staff("adm_officer_a", "draws.execute_draw", *VIEW_DRAWS),
        "b": make_staff("adm_officer_b", "draws.execute_draw", *VIEW_DRAWS),
        "checker": make_staff("adm_checker", "draws.disqualify_winner", *VIEW_DRAWS),
        "viewer": make_staff("adm_viewer", *VIEW_DRAWS),
    }


def test_whole_lifecycle_from_the_admin_with_two_people(client, campaign, window, staff):
    add_entries(campaign, 30, start=window[0], consumers=[ConsumerFactory() for _ in range(9)])
    start, end, cutoff = window

    # 1. The manager creates the draw with its tiers.
    as_staff(client, staff["manager"])
    add_url = reverse("admin:draws_periodicdraw_add")
    page = client.get(add_url)
    assert page.status_code == 200
    data = {
        **management_data(page.content.decode()),
        "code": "ZZ-2026-03-B",
        "name": "2026年3月下半月定期开奖",
        "campaign": campaign.pk,
        "window_starts_at_0": split(start)[0],
        "window_starts_at_1": split(start)[1],
        "window_ends_at_0": split(end)[0],
        "window_ends_at_1": split(end)[1],
        "cutoff_at_0": split(cutoff)[0],
        "cutoff_at_1": split(cutoff)[1],
        "per_holder_limit": 1,
        "notice_days": 7,
        "randomness_source": "",
        "tiers-TOTAL_FORMS": 2,
        "tiers-INITIAL_FORMS": 0,
        "tiers-0-rank": 1,
        "tiers-0-name": "一等奖",
        "tiers-0-amount": "800.00",
        "tiers-0-count": 1,
        "tiers-1-rank": 2,
        "tiers-1-name": "二等奖",
        "tiers-1-amount": "50.00",
        "tiers-1-count": 3,
    }
    response = client.post(add_url, data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    draw = PeriodicDraw.objects.get(code="ZZ-2026-03-B")
    assert list(draw.tiers.values_list("rank", "amount", "count")) == [
        (1, Decimal("800.00"), 1),
        (2, Decimal("50.00"), 3),
    ]
    assert draw.created_by == staff["manager"]

    # 2. Commit, freeze at the cut-off, record the randomness.
    page = client.get(change_url(draw)).content.decode()
    assert step_url(draw, "commit") in page
    assert step_url(draw, "start") not in page
    assert client.get(step_url(draw, "commit")).status_code == 200
    response = client.post(step_url(draw, "commit"), {"randomness_source": SOURCE})
    assert response.status_code == 302
    draw.refresh_from_db()
    assert draw.status == DrawStatus.COMMITTED and len(draw.seed_commitment) == 64
    with time_machine.travel(cutoff + timedelta(minutes=1)):
        as_staff(client, staff["manager"])  # a fresh session in the future
        assert client.post(step_url(draw, "freeze")).status_code == 302
    as_staff(client, staff["manager"])
    assert client.post(step_url(draw, "randomness"), {"value": "福彩3D: 4 7 1"}).status_code == 302
    draw.refresh_from_db()
    assert (draw.status, draw.ticket_count) == (DrawStatus.RANDOMNESS_RECORDED, 30)

    # 3. Officer A starts; A cannot confirm; B confirms.
    client.logout()
    as_staff(client, staff["a"])
    assert step_url(draw, "start") in client.get(change_url(draw)).content.decode()
    assert client.post(step_url(draw, "start")).status_code == 302
    page = client.get(change_url(draw)).content.decode()
    assert step_url(draw, "confirm") not in page  # not offered to the starter ...
    refused = client.post(step_url(draw, "confirm"))  # ... and refused when forced
    assert refused.status_code == 200
    errors = refused.context["form"].non_field_errors()
    assert errors == [str(DrawError("draw.same_person").message)]
    draw.refresh_from_db()
    assert draw.status == DrawStatus.RANDOMNESS_RECORDED and draw.confirmed_by is None

    client.logout()
    as_staff(client, staff["b"])
    assert step_url(draw, "confirm") in client.get(change_url(draw)).content.decode()
    assert client.post(step_url(draw, "confirm")).status_code == 302
    draw.refresh_from_db()
    assert draw.status == DrawStatus.DRAWN
    assert (draw.started_by, draw.confirmed_by) == (staff["a"], staff["b"])
    assert DrawWinner.objects.filter(draw=draw).count() == 4
    # No second run, from anyone.
    assert client.post(step_url(draw, "confirm")).status_code == 200
    assert DrawWinner.objects.filter(draw=draw).count() == 4

    # 4. Publish; disqualify during the notice; finalise after it.
    client.logout()
    as_staff(client, staff["manager"])
    assert client.post(step_url(draw, "publish")).status_code == 302
    client.logout()
    as_staff(client, staff["checker"])
    winner = DrawWinner.objects.filter(draw=draw).order_by("counter").first()
    response = client.post(
        step_url(draw, "disqualify"),
        {"ticket_no": winner.ticket_no, "reason": "red_flushed", "note": "已红冲"},
    )
    assert response.status_code == 302
    assert DrawWinner.objects.filter(draw=draw, substitute_for=winner.ticket_no).exists()
    client.logout()
    as_staff(client, staff["manager"])
    draw.refresh_from_db()
    with time_machine.travel(draw.notice_ends_at + timedelta(minutes=1)):
        as_staff(client, staff["manager"])
        assert client.post(step_url(draw, "finalise")).status_code == 302
    as_staff(client, staff["manager"])
    draw.refresh_from_db()
    assert draw.status == DrawStatus.FINALISED

    # The draw's page shows history and masked winners; verification passes.
    page = client.get(change_url(draw)).content.decode()
    assert "winner_disqualified" in page
    verify = client.get(reverse("admin:draws_periodicdraw_verify", args=[draw.pk]))
    assert verify.status_code == 200 and verify.context["report"].ok
    assert "FAIL" not in verify.content.decode()


def test_view_only_staff_get_no_step(client, campaign, window, staff):
    draw = services.draw_create(
        campaign=campaign,
        code="ZZ-VIEW",
        name="x",
        window_starts_at=window[0],
        window_ends_at=window[1],
        cutoff_at=window[2],
        tiers=[services.TierSpec(1, "一等奖", Decimal("800.00"), 1)],
        actor=staff["manager"],
    )
    as_staff(client, staff["viewer"])
    page = client.get(change_url(draw))
    assert page.status_code == 200
    assert "/step/" not in page.content.decode()
    for step in ("commit", "freeze", "start", "confirm", "disqualify", "cancel"):
        assert client.post(step_url(draw, step), {"reason": "x"}).status_code == 403
    assert client.post(
        CHANGELIST, {"action": "freeze_selected", "_selected_action": [draw.pk]}
    ).status_code in (200, 302)
    draw.refresh_from_db()
    assert draw.status == DrawStatus.SCHEDULED
    # Editing is for managers, and only until the freeze.
    assert client.post(change_url(draw), {"name": "changed"}).status_code == 403


def test_configuration_is_read_only_after_the_freeze(client, campaign, window, staff):
    add_entries(campaign, 3, start=window[0])
    manager = staff["manager"]
    draw = services.draw_create(
        campaign=campaign,
        code="ZZ-RO",
        name="x",
        window_starts_at=window[0],
        window_ends_at=window[1],
        cutoff_at=window[2],
        tiers=[services.TierSpec(1, "一等奖", Decimal("800.00"), 1)],
        actor=manager,
    )
    services.draw_commit(draw=draw, actor=manager, randomness_source=SOURCE)
    with time_machine.travel(window[2]):
        as_staff(client, manager)
        response = client.post(
            CHANGELIST, {"action": "freeze_selected", "_selected_action": [draw.pk]}
        )
    assert response.status_code == 302
    draw.refresh_from_db()
    assert draw.status == DrawStatus.FROZEN
    as_staff(client, manager)
    page = client.get(change_url(draw))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert client.post(change_url(draw), {"name": "changed"}).status_code == 403
    assert draw.tiers.get().amount == Decimal("800.00")


def test_cancel_needs_a_reason_and_a_manager(client, campaign, window, staff):
    draw = services.draw_create(
        campaign=campaign,
        code="ZZ-CANCEL",
        name="x",
        window_starts_at=window[0],
        window_ends_at=window[1],
        cutoff_at=window[2],
        actor=staff["manager"],
    )
    as_staff(client, staff["manager"])
    assert client.post(step_url(draw, "cancel"), {"reason": ""}).status_code == 200
    assert client.post(step_url(draw, "cancel"), {"reason": "规则调整"}).status_code == 302
    draw.refresh_from_db()
    assert draw.status == DrawStatus.CANCELLED
    assert client.get(step_url(draw, "nonsense")).status_code == 404


def test_ticket_and_winner_lists_are_read_only_and_masked(client, campaign, window, staff):
    consumers = [ConsumerFactory(real_name=n) for n in ("张三丰", "李四", "欧阳小明")]
    add_entries(campaign, 9, start=window[0], consumers=consumers)
    draw = published_draw(campaign, staff["manager"], window, staff["a"], staff["b"])
    as_staff(client, staff["viewer"])
    tickets = client.get(reverse("admin:draws_drawticket_changelist"))
    assert tickets.status_code == 200
    one = DrawTicket.objects.filter(draw=draw).first()
    assert one.entry_ref in tickets.content.decode()
    found = client.get(reverse("admin:draws_drawticket_changelist"), {"q": one.entry_ref})
    assert list(found.context["cl"].result_list) == [one]
    winners = client.get(reverse("admin:draws_drawwinner_changelist"))
    html = winners.content.decode()
    assert winners.status_code == 200
    for name in ("张三丰", "欧阳小明"):
        assert name not in html
    assert "张*丰" in html or "李*" in html or "欧**明" in html
    page = client.get(change_url(draw)).content.decode()
    assert "张三丰" not in page and "欧阳小明" not in page
    row = DrawWinner.objects.filter(draw=draw).first()
    detail = client.get(reverse("admin:draws_drawwinner_change", args=[row.pk]))
    assert detail.status_code == 200 and "张三丰" not in detail.content.decode()


def test_instant_pool_admin_keeps_counters_consistent(client, campaign):
    admin_user = make_staff(
        "pool_admin",
        "draws.add_instantpool",
        "draws.change_instantpool",
        "draws.view_instantpool",
        "draws.add_instanttier",
        "draws.change_instanttier",
        "draws.view_instanttier",
    )
    as_staff(client, admin_user)
    add_url = reverse("admin:draws_instantpool_add")
    page = client.get(add_url).content.decode()
    now = timezone.now()
    data = {
        **management_data(page),
        "campaign": campaign.pk,
        "name": "郑州即时奖池",
        "odds_mode": "fixed",
        "expected_daily_entries": 10000,
        "active_from_0": split(now)[0],
        "active_from_1": split(now)[1],
        "active_until_0": split(now + timedelta(days=3))[0],
        "active_until_1": split(now + timedelta(days=3))[1],
        "enabled": "on",
        "max_wins_per_consumer": 1,
        "delay_cash_above": "50.00",
        "delay_days": 7,
        "tiers-TOTAL_FORMS": 1,
        "tiers-INITIAL_FORMS": 0,
        "tiers-0-name": "20元现金",
        "tiers-0-kind": "cash",
        "tiers-0-face_value": "20.00",
        "tiers-0-total_quantity": 30,
        "tiers-0-probability": "0.100000",
    }
    response = client.post(add_url, data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    pool = InstantPool.objects.get()
    tier = pool.tiers.get()
    assert (tier.total_quantity, tier.remaining) == (30, 30)
    # Five are awarded, then the quantity is raised: remaining follows, awards stay counted.
    InstantTier.objects.filter(pk=tier.pk).update(remaining=25)
    change = reverse("admin:draws_instantpool_change", args=[pool.pk])
    page = client.get(change).content.decode()
    data.update(management_data(page))
    data.update({"tiers-0-id": tier.pk, "tiers-0-pool": pool.pk, "tiers-0-total_quantity": 40})
    assert client.post(change, data).status_code == 302
    tier.refresh_from_db()
    assert (tier.total_quantity, tier.remaining) == (40, 35)
    # Odds above certainty are refused.
    data.update({"tiers-0-probability": "1.000000", "tiers-TOTAL_FORMS": 2})
    data.update(
        {
            "tiers-1-name": "5元",
            "tiers-1-kind": "cash",
            "tiers-1-face_value": "5.00",
            "tiers-1-total_quantity": 10,
            "tiers-1-probability": "0.500000",
        }
    )
    assert client.post(change, data).status_code == 200
    # Plan the daily quotas from the changelist.
    response = client.post(
        reverse("admin:draws_instantpool_changelist"),
        {"action": "plan_quotas", "_selected_action": [pool.pk]},
    )
    assert response.status_code == 302
    assert sum(InstantDailyQuota.objects.filter(tier=tier).values_list("quota", flat=True)) == 35


def test_every_draw_admin_page_renders_for_a_superuser(admin_client, campaign, window):
    manager = make_staff("m2", "draws.manage_draw")
    services.draw_create(
        campaign=campaign,
        code="ZZ-SU",
        name="x",
        window_starts_at=window[0],
        window_ends_at=window[1],
        cutoff_at=window[2],
        actor=manager,
    )
    for model in (
        "periodicdraw",
        "drawticket",
        "drawwinner",
        "instantpool",
        "instantdailyquota",
        "instantaward",
    ):
        for name in ("changelist", "add"):
            url = reverse(f"admin:draws_{model}_{name}")
            assert admin_client.get(url).status_code in (200, 403), url
