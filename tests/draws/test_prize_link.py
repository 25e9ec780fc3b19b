"""Periodic draws and money: finalising creates reserved awards; a red-flushed winner is
disqualified during the notice period and loses its prize afterwards."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from apps.draws import services
from apps.draws.models import DrawWinner
from apps.invoices.choices import InvoiceStatus
from apps.invoices.reversals import invoice_reverse
from apps.prizes.choices import AwardSource, AwardStatus
from apps.prizes.exceptions import PrizeError
from apps.prizes.ledger import fund_balances, ledger_verify
from apps.prizes.models import Award, Fund
from tests.draws.conftest import TIERS, add_entries, published_draw

TOTAL = sum(t.amount * t.count for t in TIERS)


@pytest.mark.django_db
def test_red_flush_during_notice_disqualifies_and_substitutes(
    campaign, manager, officer_a, officer_b, window
):
    add_entries(campaign, 30, start=window[0])
    draw = published_draw(campaign, manager, window, officer_a, officer_b)
    winner = DrawWinner.objects.filter(draw=draw, substitute_for__isnull=True).first()
    invoice = winner.ticket.invoice
    invoice_reverse(invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REVERSED
    winner.refresh_from_db()
    assert winner.disqualified and winner.disqualification_reason == "red_flushed"
    assert winner.disqualified_by is None
    substitute = DrawWinner.objects.get(draw=draw, substitute_for=winner.ticket_no)
    assert substitute.rank == winner.rank and substitute.slot == winner.slot
    assert draw.history.filter(action="winner_disqualified").exists()


@pytest.mark.django_db
def test_finalise_creates_reserved_awards(campaign, manager, officer_a, officer_b, window):
    add_entries(campaign, 30, start=window[0])
    draw = published_draw(campaign, manager, window, officer_a, officer_b)
    fund = Fund.objects.get(campaign=campaign, is_default=True)
    before = fund_balances(fund)
    with time_machine.travel(draw.notice_ends_at + timedelta(seconds=1)):
        services.draw_finalise(draw=draw, actor=manager)
    awards = Award.objects.filter(draw_winner__draw=draw)
    assert awards.count() == sum(t.count for t in TIERS)
    assert {a.source for a in awards} == {AwardSource.PERIODIC}
    assert {a.status for a in awards} == {AwardStatus.PAYABLE}
    after = fund_balances(fund)
    assert after["reserved"] - before["reserved"] == TOTAL
    assert before["available"] - after["available"] == TOTAL
    assert ledger_verify() == []
    # Running it again creates nothing (one award per winner).
    from apps.prizes.services import awards_create_for_draw

    assert awards_create_for_draw(draw=draw) == 0

    # After finalisation a reversal cancels the unpaid prize and returns its money.
    award = awards.order_by("-amount").first()
    invoice_reverse(invoice=award.invoice)
    award.refresh_from_db()
    assert award.status == AwardStatus.CANCELLED
    cancelled = award.history.filter(to_status=AwardStatus.CANCELLED)
    assert cancelled.filter(reason="invoice.red_flushed").exists()
    assert fund_balances(fund)["reserved"] == after["reserved"] - award.amount
    assert ledger_verify() == []


@pytest.mark.django_db
def test_finalise_refused_when_fund_cannot_cover(campaign, manager, officer_a, officer_b, window):
    add_entries(campaign, 30, start=window[0])
    draw = published_draw(campaign, manager, window, officer_a, officer_b)
    fund = Fund.objects.get(campaign=campaign, is_default=True)
    # Leave less available than the draw's prizes: reserve nearly everything for a correction.
    from apps.prizes.ledger import fund_correct

    available = fund_balances(fund)["available"]
    fund_correct(
        fund=fund,
        from_kind="available",
        to_kind="funding",
        amount=available - TOTAL + Decimal("0.01"),
        reason="budget cut",
        key="cut",
        actor=None,
    )
    with (
        time_machine.travel(draw.notice_ends_at + timedelta(seconds=1)),
        pytest.raises(PrizeError) as exc,
    ):
        services.draw_finalise(draw=draw, actor=manager)
    assert exc.value.code == "fund.insufficient"
    draw.refresh_from_db()
    assert draw.status == "published"
    assert not Award.objects.filter(draw_winner__draw=draw).exists()
    assert ledger_verify() == []
