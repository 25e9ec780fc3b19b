"""The prize-fund ledger: double entry in one row, idempotent by key, balances that cannot go
negative (CHECK), append-only entries (trigger), corrections as compensating entries, and a
verification that recomputes every balance from the entries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from apps.audit.models import AuditEvent
from apps.prizes.choices import AccountKind, EntryKind
from apps.prizes.exceptions import PrizeError
from apps.prizes.ledger import (
    fund_balances,
    fund_correct,
    fund_deposit,
    ledger_move,
    ledger_verify,
)
from apps.prizes.models import Award, LedgerAccount, LedgerEntry, Payout, PayoutBatch
from tests.factories.core import CampaignFactory, funded_default_fund
from tests.prizes.helpers import (
    assert_books_balance,
    default_fund,
    instant_win,
    prize_campaign,
    staff,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

D = Decimal


def reserve(fund, amount, key):
    return ledger_move(
        fund_id=fund.pk,
        kind=EntryKind.RESERVE,
        from_kind=AccountKind.AVAILABLE,
        to_kind=AccountKind.RESERVED,
        amount=D(amount),
        key=key,
    )


def test_a_deposit_makes_the_budget_available_once_per_key():
    campaign = CampaignFactory()
    fund = funded_default_fund(campaign, D("0"))
    assert fund_balances(fund) == {
        "budget": D("0.00"),
        "available": D("0.00"),
        "reserved": D("0.00"),
        "paid": D("0.00"),
        "tax_withheld": D("0.00"),
    }
    officer = staff("prizes.reconcile_payouts")
    entry = fund_deposit(
        fund=fund, amount=D("5000.00"), key="dep:1", memo="市财政拨款", actor=officer
    )
    assert entry is not None and entry.kind == EntryKind.DEPOSIT and entry.actor == officer
    assert (
        fund_deposit(fund=fund, amount=D("5000.00"), key="dep:1", memo="again", actor=None) is None
    )
    balances = fund_balances(fund)
    assert (balances["budget"], balances["available"]) == (D("5000.00"), D("5000.00"))
    # The contra account is the only one below zero.
    funding = LedgerAccount.objects.get(fund=fund, kind=AccountKind.FUNDING)
    assert funding.balance == D("-5000.00")
    assert AuditEvent.objects.filter(action="fund.deposit").count() == 1
    assert ledger_verify() == []


def test_a_move_is_idempotent_by_key_and_double_entry():
    fund = default_fund(prize_campaign(D("100.00")))
    first = reserve(fund, "30.00", "reserve:test:1")
    assert first is not None and (first.from_account.kind, first.to_account.kind) == (
        AccountKind.AVAILABLE,
        AccountKind.RESERVED,
    )
    assert reserve(fund, "30.00", "reserve:test:1") is None  # a retry
    assert LedgerEntry.objects.filter(key="reserve:test:1").count() == 1
    balances = fund_balances(fund)
    assert (balances["available"], balances["reserved"]) == (D("70.00"), D("30.00"))
    total = sum(LedgerAccount.objects.filter(fund=fund).values_list("balance", flat=True))
    assert total == 0
    assert ledger_verify() == []


def test_an_overspend_is_refused_and_leaves_nothing_behind():
    fund = default_fund(prize_campaign(D("100.00")))
    reserve(fund, "99.99", "r1")
    with pytest.raises(PrizeError) as exc:
        reserve(fund, "0.02", "r2")
    assert exc.value.code == "fund.insufficient" and exc.value.status_code == 409
    assert not LedgerEntry.objects.filter(key="r2").exists()
    assert reserve(fund, "0.01", "r3") is not None  # exactly what is left
    assert fund_balances(fund)["available"] == D("0.00")
    assert ledger_verify() == []


@pytest.mark.parametrize(
    "amount", [D("0"), D("-1.00"), D("0.001"), 1, 1.5, "1.00", D("NaN"), D("Infinity")]
)
def test_only_positive_cent_amounts_move(amount):
    fund = default_fund(prize_campaign(D("100.00")))
    with pytest.raises(PrizeError) as exc:
        ledger_move(
            fund_id=fund.pk,
            kind=EntryKind.RESERVE,
            from_kind=AccountKind.AVAILABLE,
            to_kind=AccountKind.RESERVED,
            amount=amount,
            key="bad",
        )
    assert exc.value.code == "ledger.invalid_amount"


def test_the_database_refuses_a_negative_balance_whatever_code_tries():
    fund = default_fund(prize_campaign(D("10.00")))
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(fund=fund, kind=AccountKind.AVAILABLE).update(
            balance=D("-0.01")
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            fund=fund,
            kind=EntryKind.CORRECTION,
            from_account=LedgerAccount.objects.get(fund=fund, kind=AccountKind.AVAILABLE),
            to_account=LedgerAccount.objects.get(fund=fund, kind=AccountKind.RESERVED),
            amount=D("0.00"),
            key="zero",
        )


def test_ledger_entries_are_append_only():
    fund = default_fund(prize_campaign(D("10.00")))
    entry = LedgerEntry.objects.get(fund=fund)
    with pytest.raises(DatabaseError) as updated, transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=D("1000000.00"))
    assert "append-only" in str(updated.value)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(memo="edited")
    with pytest.raises(DatabaseError) as deleted, transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    assert "append-only" in str(deleted.value)
    assert LedgerEntry.objects.get(pk=entry.pk).amount == D("10.00")


def test_awards_payouts_and_batches_are_never_deleted(prize_world):
    from tests.prizes.helpers import approve, payout_account

    world = prize_world
    award = instant_win(world.campaign, world.consumer, D("20.00"))
    from apps.prizes import services

    services.award_claim(
        consumer=world.consumer, award=award, account=payout_account(world.identity, world.consumer)
    )
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    approve(batch, world.team.checker)
    for model in (Payout, PayoutBatch, Award):
        # Raw SQL: past the ORM's own PROTECT checks, the trigger still refuses.
        with (
            pytest.raises(DatabaseError) as refused,
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
        assert "append-only" in str(refused.value)
        assert model.objects.exists()
    assert_books_balance()


def test_ledger_verify_finds_a_tampered_balance():
    fund = default_fund(prize_campaign(D("100.00")))
    reserve(fund, "40.00", "r1")
    assert ledger_verify() == [] and ledger_verify(fund) == []
    # Someone edits a balance behind the ledger's back (both sides, so it still sums to zero).
    LedgerAccount.objects.filter(fund=fund, kind=AccountKind.RESERVED).update(balance=D("10.00"))
    LedgerAccount.objects.filter(fund=fund, kind=AccountKind.AVAILABLE).update(balance=D("90.00"))
    problems = ledger_verify(fund)
    assert len(problems) == 2 and all("!= entries" in p for p in problems)
    # One side only: the fund no longer sums to zero either.
    LedgerAccount.objects.filter(fund=fund, kind=AccountKind.AVAILABLE).update(balance=D("60.00"))
    assert any("does not balance" in p for p in ledger_verify())


def test_a_correction_is_a_compensating_entry_with_a_reason():
    fund = default_fund(prize_campaign(D("1000.00")))
    officer = staff("prizes.reconcile_payouts")
    with pytest.raises(PrizeError) as no_reason:
        fund_correct(
            fund=fund,
            from_kind=AccountKind.AVAILABLE,
            to_kind=AccountKind.FUNDING,
            amount=D("100.00"),
            reason="  ",
            key="cut:1",
            actor=officer,
        )
    assert no_reason.value.code == "ledger.reason_required"
    entry = fund_correct(
        fund=fund,
        from_kind=AccountKind.AVAILABLE,
        to_kind=AccountKind.FUNDING,
        amount=D("100.00"),
        reason="预算调减",
        key="cut:1",
        actor=officer,
    )
    assert entry.kind == EntryKind.CORRECTION and entry.memo == "预算调减"
    assert fund_balances(fund)["budget"] == D("900.00")
    assert fund_balances(fund)["available"] == D("900.00")
    # The original deposit is untouched: history is never rewritten.
    assert LedgerEntry.objects.get(fund=fund, kind=EntryKind.DEPOSIT).amount == D("1000.00")
    event = AuditEvent.objects.get(action="fund.correction")
    assert event.actor_id == officer.pk and event.reason == "预算调减"
    # A correction cannot overdraw either.
    with pytest.raises(PrizeError) as over:
        fund_correct(
            fund=fund,
            from_kind=AccountKind.RESERVED,
            to_kind=AccountKind.AVAILABLE,
            amount=D("0.01"),
            reason="错误",
            key="bad:1",
            actor=officer,
        )
    assert over.value.code == "fund.insufficient"
    assert ledger_verify() == []


def test_the_report_shows_budget_reserved_paid_and_available_per_fund():
    campaign = prize_campaign(D("2000.00"))
    fund = default_fund(campaign)
    from tests.factories.core import ConsumerFactory

    consumer = ConsumerFactory()
    awards = [instant_win(campaign, consumer, D(x)) for x in ("1000.00", "800.00", "300.00")]
    assert awards[2] is None  # 200.00 left: the draw awards nothing rather than overspend
    balances = fund_balances(fund)
    assert balances == {
        "budget": D("2000.00"),
        "available": D("200.00"),
        "reserved": D("1800.00"),
        "paid": D("0.00"),
        "tax_withheld": D("0.00"),
    }
    assert_books_balance()
