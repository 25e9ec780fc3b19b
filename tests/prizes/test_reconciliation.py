"""Reconciliation against the provider's daily statement (issue 7, Done means 4): payouts whose
outcome was unknown are settled by it; every injected mismatch — missing at the provider, extra
at the provider, wrong amount, wrong status, unreadable line — is listed for finance, and none is
fixed automatically."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.prizes import services
from apps.prizes.choices import AwardStatus, MismatchKind, PayoutStatus
from apps.prizes.exceptions import PrizeError
from apps.prizes.gateway import get_payment_gateway
from apps.prizes.models import LedgerEntry, Payout, ProviderStatement, ReconciliationIssue
from tests.prizes.helpers import (
    REFUSED,
    assert_books_balance,
    assert_paid_once,
    fresh,
    instant_win,
    pay,
    payout_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

D = Decimal


def paid_out(world, amount="1000.00", suffix="1234", fault=None, **options):
    award = instant_win(world.campaign, world.consumer, D(amount))
    if fault:
        world.sandbox.control(fault, **options)
    return pay(award, payout_account(world.identity, world.consumer, suffix), world.team)


def statement(world, actor=None, **mismatch):
    if mismatch:
        world.sandbox.control("statement_mismatch", **mismatch)
    day = timezone.localdate()
    data = get_payment_gateway().fetch_statement(day)
    return services.statement_reconcile(
        day=day, data=data, file_name=f"{day}.csv", actor=actor or world.team.officer
    )


def issues(stmt):
    return sorted(
        (i.kind, i.request_no, i.ours, i.theirs)
        for i in ReconciliationIssue.objects.filter(statement=stmt)
    )


def snapshot():
    return (
        sorted(Payout.objects.values_list("request_no", "status")),
        sorted(LedgerEntry.objects.values_list("key", "amount")),
    )


def test_a_clean_statement_matches_and_settles_unknown_payouts(prize_world):
    world = prize_world
    paid = paid_out(world)
    refused = paid_out(world, "300.00", REFUSED)
    lost = paid_out(world, "800.00", fault="lost_reply")  # executed: SUCCESS at the provider
    lost_refused = paid_out(world, "50.00", REFUSED, fault="lost_reply")  # FAILED there
    assert (paid.status, refused.status) == (PayoutStatus.PAID, PayoutStatus.FAILED)
    assert lost.status == lost_refused.status == PayoutStatus.UNKNOWN

    stmt = statement(world)
    assert issues(stmt) == []
    assert (stmt.line_count, stmt.matched_count, stmt.mismatch_count) == (4, 4, 0)
    assert stmt.resolved_unknown_count == 2 and stmt.imported_by == world.team.officer
    assert fresh(lost).status == PayoutStatus.PAID and lost.history.last().via == "statement"
    assert lost.award.status == AwardStatus.PAID
    assert fresh(lost_refused).status == PayoutStatus.FAILED
    assert lost_refused.history.last().via == "statement"
    assert fresh(lost_refused.award).status == AwardStatus.PAYABLE  # the winner may claim again
    event = AuditEvent.objects.get(action="statement.reconciled")
    assert event.after["settled"] == 2 and event.after["mismatches"] == 0
    assert_books_balance()
    assert_paid_once(world.sandbox)
    # The same file again is refused as a duplicate and changes nothing.
    before = snapshot()
    with pytest.raises(PrizeError) as duplicate:
        statement(world)
    assert duplicate.value.code == "statement.duplicate"
    assert snapshot() == before and ProviderStatement.objects.count() == 1


def test_every_injected_mismatch_is_listed_and_nothing_is_fixed(prize_world):
    world = prize_world
    missing, wrong_amount, wrong_status, fine = (paid_out(world) for _ in range(4))
    refused = paid_out(world, "300.00", REFUSED)
    before = snapshot()

    stmt = statement(
        world,
        missing=[missing.request_no],
        wrong_amount=[wrong_amount.request_no],
        wrong_status=[wrong_status.request_no, refused.request_no],
        extra=2,
        bad_lines=1,
    )
    found = issues(stmt)
    kinds = sorted(kind for kind, *_ in found)
    assert kinds == sorted(
        [
            MismatchKind.MISSING_AT_PROVIDER,
            MismatchKind.AMOUNT,
            MismatchKind.STATUS,
            MismatchKind.STATUS,
            MismatchKind.EXTRA_AT_PROVIDER,
            MismatchKind.EXTRA_AT_PROVIDER,
            MismatchKind.BAD_LINE,
        ]
    )
    by_no = {no: (kind, ours, theirs) for kind, no, ours, theirs in found if no}
    assert by_no[missing.request_no] == ("missing_at_provider", "paid 800.00", "")
    assert by_no[wrong_amount.request_no] == ("amount", "800.00", "800.01")
    assert by_no[wrong_status.request_no] == ("status", "paid", "FAILED")
    # Paid there, failed here: listed, never paid again or re-booked.
    assert by_no[refused.request_no] == ("status", "failed", "SUCCESS")
    extra = [i for i in found if i[0] == MismatchKind.EXTRA_AT_PROVIDER]
    assert all(i[1].startswith("EXTRA-") and i[3] == "SUCCESS 8.88" for i in extra)
    [bad] = ReconciliationIssue.objects.filter(statement=stmt, kind=MismatchKind.BAD_LINE)
    assert bad.line_no == stmt.line_count + 1 and bad.theirs == "field_count"
    assert (stmt.matched_count, stmt.mismatch_count) == (1, 7)
    linked = ReconciliationIssue.objects.filter(statement=stmt, payout__isnull=False)
    assert {i.payout_id for i in linked} == {
        missing.pk,
        wrong_amount.pk,
        wrong_status.pk,
        refused.pk,
    }
    # Nothing changed: no status, no ledger entry.
    assert snapshot() == before
    assert fine.pk not in {i.payout_id for i in linked}
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_a_statement_amount_differing_from_an_unknown_payout_is_flagged(prize_world):
    world = prize_world
    lost = paid_out(world, fault="lost_reply")
    stmt = statement(world, wrong_amount=[lost.request_no])
    # The provider's word settles the status; the amount difference is for finance.
    assert fresh(lost).status == PayoutStatus.PAID and stmt.resolved_unknown_count == 1
    assert issues(stmt) == [("amount", lost.request_no, "800.00", "800.01")]
    assert AuditEvent.objects.filter(action="payout.amount_mismatch").count() == 1
    assert LedgerEntry.objects.get(payout=lost, kind="disburse").amount == D("800.00")
    assert_books_balance()
    assert_paid_once(world.sandbox)


@pytest.mark.parametrize(
    ("data", "error", "line"),
    [
        (b"\xff\xfe\x00garbage", "not_utf8", 0),
        (b"request_no,amount\r\nPO1,1.00\r\n", "bad_header", 1),
    ],
)
def test_an_unreadable_statement_is_one_issue_and_every_payment_missing(
    prize_world, data, error, line
):
    world = prize_world
    paid = paid_out(world)
    stmt = services.statement_reconcile(day=timezone.localdate(), data=data, actor=None)
    assert issues(stmt) == sorted(
        [
            ("bad_line", "", "", error),
            ("missing_at_provider", paid.request_no, "paid 800.00", ""),
        ]
    )
    assert ReconciliationIssue.objects.get(kind="bad_line").line_no == line
    assert fresh(paid).status == PayoutStatus.PAID


def test_reconciliation_is_finance_work_and_resolutions_are_recorded(prize_world):
    world = prize_world
    paid_out(world)
    day = timezone.localdate()
    data = get_payment_gateway().fetch_statement(day)
    with pytest.raises(PrizeError) as denied:
        services.statement_reconcile(day=day, data=data, actor=world.team.maker)
    assert denied.value.code == "batch.not_permitted"
    assert not ProviderStatement.objects.exists()
    stmt = statement(world, extra=1)
    issue = ReconciliationIssue.objects.get(statement=stmt)
    with pytest.raises(PrizeError):
        services.reconciliation_resolve(issue=issue, note=" ", actor=world.team.officer)
    with pytest.raises(PrizeError):
        services.reconciliation_resolve(issue=issue, note="已与银行核实", actor=world.team.checker)
    services.reconciliation_resolve(issue=issue, note="已与银行核实", actor=world.team.officer)
    issue = fresh(issue)
    assert issue.resolved and issue.resolved_by == world.team.officer
    event = AuditEvent.objects.get(action="reconciliation.resolved")
    assert event.actor_id == world.team.officer.pk and event.reason == "已与银行核实"
