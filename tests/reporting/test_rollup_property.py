"""Done means 1: after a randomised sequence of submissions, rejections, re-checks, reversals,
awards, payouts, coupon redemptions and cancellations — all through the real services — the
incrementally maintained rollups equal a from-scratch recomputation (set-based SQL straight
from invoices, merchants and awards, `apps.reporting.rebuild.expected`).
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.draws.choices import InstantPrizeKind
from apps.draws.models import InstantPool
from apps.draws.services import instant_config_cache_clear
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import Invoice, TaxInvoiceRecord
from apps.invoices.services import invoice_recheck
from apps.prizes import services as prizes
from apps.prizes.choices import AwardKind, AwardStatus
from apps.prizes.exceptions import PrizeError
from apps.prizes.models import Award
from apps.reporting import rebuild
from apps.reporting.models import DailyRollup, DayParticipants
from tests.prizes.helpers import instant_pool, pay, payee, payout_account, red_flush
from tests.reporting.helpers import record_for, submit, submit_unknown, world

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TOTALS = st.sampled_from([Decimal("120.00"), Decimal("200.00"), Decimal("999.99")])
OPS = st.one_of(
    st.tuples(
        st.just("submit"),
        st.integers(0, 2),  # consumer
        st.integers(0, 2),  # merchant
        st.booleans(),  # the buyer name matches
        TOTALS,
        st.sampled_from(["", "", "cash", "coupon"]),  # what the instant draw holds
    ),
    st.tuples(st.just("unknown"), st.integers(0, 2), TOTALS),
    st.tuples(st.just("recheck"), st.integers(0, 20), st.integers(0, 2)),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
    st.tuples(st.just("pay"), st.integers(0, 20)),
    st.tuples(st.just("redeem"), st.integers(0, 20)),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
)


def _pick(items, k):
    return items[k % len(items)] if items else None


def _run(op, w, accounts) -> None:
    kind = op[0]
    if kind == "submit":
        _, c, m, name_ok, total, prize = op
        pool = None
        if prize:
            pool = instant_pool(
                w.campaign,
                amount=Decimal("20.00") if prize == "cash" else Decimal("10.00"),
                kind=InstantPrizeKind.CASH if prize == "cash" else InstantPrizeKind.COUPON,
            )
        submit(w.consumers[c], w.merchants[m], total=total, name_ok=name_ok)
        if pool is not None:
            InstantPool.objects.filter(pk=pool.pk).update(enabled=False)
            instant_config_cache_clear()  # an update() sends no signal
    elif kind == "unknown":
        submit_unknown(w.consumers[op[1]], total=op[2])
    elif kind == "recheck":
        pending = list(Invoice.objects.filter(status=InvoiceStatus.PENDING).order_by("pk"))
        invoice = _pick(pending, op[1])
        if invoice is not None:
            consumer = invoice.consumer
            record_for(
                w.merchants[op[2]],
                buyer_name=str(consumer.real_name),
                total=invoice.total,
                number=invoice.number,
            )
            invoice_recheck(invoice_id=invoice.pk)
    elif kind == "reverse":
        live = list(
            Invoice.objects.filter(
                status__in=[InvoiceStatus.ACCEPTED, InvoiceStatus.PENDING]
            ).order_by("pk")
        )
        invoice = _pick(live, op[1])
        if invoice is not None and TaxInvoiceRecord.objects.filter(number=invoice.number).exists():
            red_flush(invoice)
    elif kind == "pay":
        cash = list(
            Award.objects.filter(kind=AwardKind.CASH, status=AwardStatus.PAYABLE).order_by("pk")
        )
        award = _pick(cash, op[1])
        if award is not None:
            pay(award, accounts[award.consumer_id], w.team)
    elif kind == "redeem":
        coupons = list(
            Award.objects.filter(kind=AwardKind.COUPON, status=AwardStatus.PAYABLE).order_by("pk")
        )
        award = _pick(coupons, op[1])
        if award is not None:
            # Not usable at this merchant: nothing changes, which is fine too.
            with contextlib.suppress(PrizeError):
                prizes.coupon_redeem(
                    code=award.coupon.code,
                    merchant=w.merchants[0],
                    purchase_amount=Decimal("500.00"),
                    reference=f"ref-{award.pk}",
                )
    elif kind == "cancel":
        live = list(Award.objects.filter(status=AwardStatus.PAYABLE).order_by("pk"))
        award = _pick(live, op[1])
        if award is not None:
            prizes.award_cancel(award=award, reason="property test", actor=w.team.officer)


def assert_counted():
    """The rollups equal a from-scratch recomputation, and not vacuously: whatever happened
    is counted."""
    assert rebuild.differences() == {}
    submitted = Invoice.objects.count()
    assert sum(DailyRollup.objects.values_list("submitted", flat=True)) == submitted
    if submitted:
        assert DayParticipants.objects.exists()


def property_world(prize_world):
    """Three payees with payout accounts in the prize world: (world, accounts by consumer)."""
    identity = prize_world.identity
    consumers = [payee(identity, real_name=name) for name in ("张三", "李四", "王五")]
    w = world(consumers, prize_world.campaign)
    w.team = prize_world.team
    return w, {c.pk: payout_account(identity, c) for c in consumers}


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=14))
def test_rollups_equal_a_from_scratch_recomputation(prize_world, ops):
    with transaction.atomic():
        w, accounts = property_world(prize_world)
        for op in ops:
            _run(op, w, accounts)
        assert_counted()
        transaction.set_rollback(True)


def test_the_check_sees_a_wrong_rollup(prize_world):
    """The comparison itself can fail: a tampered cell is reported."""
    consumer = payee(prize_world.identity, real_name="张三")
    w = world([consumer], prize_world.campaign)
    submit(consumer, w.merchants[0])
    assert rebuild.differences() == {}
    cell = DailyRollup.objects.get(submitted=1)
    DailyRollup.objects.filter(pk=cell.pk).update(accepted=cell.accepted + 1)
    assert "cells" in rebuild.differences()
    rebuild.rebuild()
    assert rebuild.differences() == {}


def test_a_scripted_sequence_counts_every_kind_of_fact(prize_world):
    """The same machinery on a known sequence, with the figures written out by hand."""
    identity = prize_world.identity
    zhang, li = (payee(identity, real_name=n) for n in ("张三", "李四"))
    w = world([zhang, li], prize_world.campaign)
    w.team = prize_world.team
    account = payout_account(identity, zhang)
    m0, m1 = w.merchants[0], w.merchants[1]
    _run(("submit", 0, 0, True, Decimal("200.00"), "cash"), w, {zhang.pk: account})
    _run(("submit", 1, 1, False, Decimal("120.00"), ""), w, {})  # name mismatch
    _run(("unknown", 1, Decimal("150.00")), w, {})
    _run(("submit", 1, 0, True, Decimal("999.99"), ""), w, {})
    award = Award.objects.get()
    assert award.status == AwardStatus.PAYABLE
    _run(("pay", 0), w, {zhang.pk: account})
    assert Award.objects.get().status == AwardStatus.PAID
    cells = {(c.area_code, c.industry_code): c for c in DailyRollup.objects.all()}
    a = cells[(m0.area_code, m0.industry_code[:2])]
    assert (a.submitted, a.accepted, a.verified, a.participants) == (2, 2, 2, 2)
    assert a.entered_total == Decimal("1199.99")
    b = cells[(m1.area_code, m1.industry_code[:2])]
    assert (b.submitted, b.rejected, b.accepted) == (1, 1, 0)
    unknown = cells[("", "")]
    assert (unknown.submitted, unknown.pending, unknown.verified) == (1, 1, 0)
    assert DayParticipants.objects.get(campaign_id=w.campaign.pk).participants == 2
    assert DayParticipants.objects.get(campaign_id=0).participants == 1  # Li, twice
    from apps.reporting.models import AwardRollup, RejectionRollup

    awards = AwardRollup.objects.get()
    assert (awards.awarded, awards.paid) == (1, 1)
    assert awards.paid_net == award.net_amount
    assert RejectionRollup.objects.get().reason == "invoice.name_mismatch"
    # The pending one is found later, at merchant 1: it moves cells.
    _run(("recheck", 0, 1), w, {})
    rechecked = Invoice.objects.get(total=Decimal("150.00"))
    assert (rechecked.status, rechecked.rejection_code) == ("accepted", "")
    # Rejected and pending invoices belong to no campaign (campaign 0): the rechecked one
    # now counts in the campaign's cell of merchant 1.
    assert b.campaign_id == 0
    entered = DailyRollup.objects.get(
        area_code=m1.area_code, industry_code=m1.industry_code[:2], campaign_id=w.campaign.pk
    )
    assert (entered.submitted, entered.accepted, entered.participants) == (1, 1, 1)
    assert DailyRollup.objects.get(pk=unknown.pk).submitted == 0
    # Red-flushing Zhang's winning invoice reverses it; its paid prize stays counted as paid
    # (to be recovered).
    red_flush(Invoice.objects.get(consumer=zhang))
    a.refresh_from_db()
    assert (a.accepted, a.reversed) == (1, 1)
    assert rebuild.differences() == {}
