"""Cash payouts against the payment-gateway sandbox on 127.0.0.1 (issue 7, Done means 3 and 4):
two-person approval, timeouts, 5xx, lost and garbled replies, duplicate and forged callbacks, a
worker killed mid-payout and its redelivered task. Each payout ends paid exactly once (as the
provider's own journal shows) or clearly FAILED / UNKNOWN for finance; UNKNOWN is resolved only
by asking the provider, never by paying again.
"""

from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.exceptions import InvalidTransition
from apps.common.http import sign
from apps.prizes import gateway as gw
from apps.prizes import services
from apps.prizes.choices import AwardStatus, BatchStatus, PayoutStatus
from apps.prizes.exceptions import PrizeError
from apps.prizes.ledger import fund_balances
from apps.prizes.models import LedgerEntry, Payout, PayoutBatch, PayoutStatusChange, PrizePolicy
from apps.prizes.tasks import payout_send_task, payouts_poll
from tests.prizes.conftest import PAYMENT_TIMEOUT_FAULT_SECONDS
from tests.prizes.helpers import (
    PROCESSING_UNTIL_SETTLED,
    REFUSED,
    approve,
    assert_books_balance,
    assert_paid_once,
    default_fund,
    deliver_callbacks,
    fresh,
    instant_win,
    pay,
    payout_account,
    provider_executions,
    red_flush,
    tax_authority_down,
    transfer_posts,
    wait_until,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def won(world, amount="1000.00"):
    award = instant_win(world.campaign, world.consumer, Decimal(amount))
    assert award is not None and award.status == AwardStatus.PAYABLE
    return award


def account(world, suffix="1234"):
    return payout_account(world.identity, world.consumer, suffix)


def statuses(payout):
    return list(payout.history.order_by("id").values_list("to_status", flat=True))


def ledger_state():
    return sorted(LedgerEntry.objects.values_list("key", "amount"))


# --- The happy path and the two people --------------------------------------------------------


def test_a_claimed_prize_is_paid_once_after_two_person_approval(prize_world):
    world = prize_world
    award = won(world, "1000.00")
    assert (award.tax_withheld, award.net_amount) == (Decimal("200.00"), Decimal("800.00"))
    card = account(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=card)
    assert payout.status == PayoutStatus.PENDING and fresh(award).status == AwardStatus.CLAIMED
    assert (payout.amount, payout.tax_withheld) == (Decimal("800.00"), Decimal("200.00"))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    assert (batch.payout_count, batch.total_amount, batch.total_tax) == (
        1,
        Decimal("800.00"),
        Decimal("200.00"),
    )
    assert world.sandbox.executions == []  # nothing leaves before the checker approves
    approve(batch, world.team.checker)

    payout = fresh(payout)
    assert payout.status == PayoutStatus.PAID and payout.provider_ref.startswith("SBX")
    assert statuses(payout) == ["pending", "approved", "sending", "paid"]
    assert fresh(award).status == AwardStatus.PAID and award.paid_at is not None
    assert fresh(batch).status == BatchStatus.COMPLETED
    assert batch.approved_by == world.team.checker and batch.created_by == world.team.maker
    transfer = world.sandbox.transfer(payout.request_no)
    assert transfer["amount"] == "800.00" and transfer["account_no"] == str(card.account_no)
    assert transfer["account_name"] == "张三"
    assert provider_executions(world.sandbox, payout.request_no) == 1
    balances = fund_balances(default_fund(world.campaign))
    assert (balances["paid"], balances["tax_withheld"], balances["reserved"]) == (
        Decimal("800.00"),
        Decimal("200.00"),
        Decimal("0.00"),
    )
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "award.claimed",
        "payout_batch.prepared",
        "payout_batch.approved",
        "payout.paid",
    } <= actions
    approved = AuditEvent.objects.get(action="payout_batch.approved")
    assert approved.actor_id == world.team.checker.pk
    assert AuditEvent.objects.get(action="payout_batch.prepared").actor_id == world.team.maker.pk
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_the_maker_can_never_approve_their_own_batch(prize_world):
    world = prize_world
    award = won(world)
    services.award_claim(consumer=world.consumer, award=award, account=account(world))
    both = world.team.maker
    from tests.prizes.helpers import grant

    both = grant(both, "prizes.approve_payoutbatch")  # holds both permissions
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=both)
    with pytest.raises(PrizeError) as refused:
        services.payout_batch_approve(batch=batch, actor=both)
    assert refused.value.code == "batch.maker_is_checker" and refused.value.status_code == 403
    assert fresh(batch).status == BatchStatus.SUBMITTED and batch.approved_by is None
    assert set(batch.payouts.values_list("status", flat=True)) == {PayoutStatus.PENDING}
    # The refusal is in the audit trail (it must survive the refused transaction).
    event = AuditEvent.objects.get(action="payout_batch.approve_refused")
    assert (event.actor_id, event.outcome, event.reason) == (both.pk, "denied", "maker_is_checker")
    # The database refuses it too, whatever code tries.
    with pytest.raises(IntegrityError), transaction.atomic():
        PayoutBatch.objects.filter(pk=batch.pk).update(approved_by=both, status="approved")
    assert world.sandbox.executions == []
    # A different checker may.
    approve(batch, world.team.checker)
    assert fresh(batch).status == BatchStatus.COMPLETED
    assert_paid_once(world.sandbox)


def test_batches_need_the_finance_permissions(prize_world):
    world = prize_world
    award = won(world)
    services.award_claim(consumer=world.consumer, award=award, account=account(world))
    with pytest.raises(PrizeError) as no_maker:
        services.payout_batch_prepare(campaign=world.campaign, actor=world.team.checker)
    assert no_maker.value.code == "batch.not_permitted"
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    for outsider in (world.team.officer, None):
        with pytest.raises(PrizeError) as no_checker:
            services.payout_batch_approve(batch=batch, actor=outsider)
        assert no_checker.value.code == "batch.not_permitted"
    # Nothing left to batch: a second preparation is refused.
    with pytest.raises(PrizeError) as empty:
        services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    assert empty.value.code == "batch.empty"
    # Approving twice is one transition.
    approve(batch, world.team.checker)
    with pytest.raises(InvalidTransition):
        services.payout_batch_approve(batch=batch, actor=world.team.checker2)
    assert AuditEvent.objects.filter(action="payout_batch.approved").count() == 1


def test_a_rejected_batch_returns_its_payouts_for_a_new_batch(prize_world):
    world = prize_world
    award = won(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=account(world))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    with pytest.raises(PrizeError):
        services.payout_batch_reject(batch=batch, reason=" ", actor=world.team.checker)
    services.payout_batch_reject(batch=batch, reason="金额需复核", actor=world.team.checker)
    assert fresh(batch).status == BatchStatus.REJECTED
    assert fresh(payout).batch is None and payout.status == PayoutStatus.PENDING
    with pytest.raises(InvalidTransition):
        services.payout_batch_approve(batch=batch, actor=world.team.checker)
    second = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    approve(second, world.team.checker)
    assert fresh(payout).status == PayoutStatus.PAID and payout.batch == second
    assert_books_balance()
    assert_paid_once(world.sandbox)


# --- No answer: UNKNOWN, resolved only by asking -------------------------------------------------


def test_a_timeout_is_unknown_and_only_a_query_settles_it(prize_world):
    world = prize_world
    award = won(world)
    world.sandbox.control("timeout", seconds=PAYMENT_TIMEOUT_FAULT_SECONDS)
    payout = pay(award, account(world), world.team)
    assert payout.status == PayoutStatus.UNKNOWN
    assert payout.history.last().note == "timeout"
    # The provider did execute it: the money left, but we do not know yet.
    assert provider_executions(world.sandbox, payout.request_no) == 1
    assert fresh(award).status == AwardStatus.CLAIMED
    assert fund_balances(default_fund(world.campaign))["paid"] == Decimal("0.00")
    assert_books_balance()
    assert_paid_once(world.sandbox)
    # A redelivered send task does not send again.
    assert payout_send_task.apply(args=[payout.pk]).get() == PayoutStatus.UNKNOWN
    assert transfer_posts(world.sandbox, payout.request_no) == 1
    # The status query settles it.
    payout = services.payout_refresh(payout_id=payout.pk)
    assert payout.status == PayoutStatus.PAID and fresh(award).status == AwardStatus.PAID
    assert transfer_posts(world.sandbox, payout.request_no) == 1
    assert provider_executions(world.sandbox, payout.request_no) == 1
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_a_5xx_that_never_reached_the_provider_is_resent_under_the_same_number(prize_world):
    world = prize_world
    award = won(world)
    world.sandbox.control("error_5xx", status=503)  # not executed (the default for 5xx)
    payout = pay(award, account(world), world.team)
    assert payout.status == PayoutStatus.UNKNOWN and payout.history.last().note == "http_503"
    assert world.sandbox.executions == []
    payout = services.payout_refresh(payout_id=payout.pk)  # NOT_FOUND → the same number again
    assert payout.status == PayoutStatus.PAID and payout.attempts == 2
    assert transfer_posts(world.sandbox, payout.request_no) == 2
    assert world.sandbox.executions == [payout.request_no]
    assert statuses(payout) == ["pending", "approved", "sending", "unknown", "sending", "paid"]
    assert_books_balance()
    assert_paid_once(world.sandbox)


@pytest.mark.parametrize(
    ("fault", "options", "note"),
    [
        ("error_5xx", {"status": 502, "execute": True}, "http_502"),
        ("lost_reply", {}, "connection_error"),
        ("garbled", {}, "malformed_reply"),
    ],
)
def test_an_executed_transfer_without_a_readable_reply_is_paid_once(
    prize_world, fault, options, note
):
    world = prize_world
    award = won(world, "300.00")
    world.sandbox.control(fault, **options)
    payout = pay(award, account(world), world.team)
    assert payout.status == PayoutStatus.UNKNOWN
    assert payout.history.last().note == note
    assert provider_executions(world.sandbox, payout.request_no) == 1
    # Asked again (twice, as a poller would): paid, never re-sent.
    assert services.payout_refresh(payout_id=payout.pk).status == PayoutStatus.PAID
    assert services.payout_refresh(payout_id=payout.pk).status == PayoutStatus.PAID
    assert transfer_posts(world.sandbox, payout.request_no) == 1
    assert LedgerEntry.objects.filter(payout=payout, kind="disburse").count() == 1
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_an_unanswered_query_leaves_unknown_and_sends_nothing(prize_world):
    world = prize_world
    award = won(world)
    world.sandbox.control("lost_reply")
    payout = pay(award, account(world), world.team)
    assert payout.status == PayoutStatus.UNKNOWN
    world.sandbox.control("error_5xx", endpoint="query", times=2)
    assert services.payout_refresh(payout_id=payout.pk).status == PayoutStatus.UNKNOWN
    assert payouts_poll.apply(kwargs={}).get() >= 0  # the minute sweep (too recent: skipped)
    assert services.payouts_poll(older_than_seconds=0) == 1
    assert fresh(payout).status == PayoutStatus.UNKNOWN
    assert transfer_posts(world.sandbox, payout.request_no) == 1
    # Once the provider answers again, the sweep settles it.
    assert services.payouts_poll(older_than_seconds=0) == 1
    assert fresh(payout).status == PayoutStatus.PAID
    assert transfer_posts(world.sandbox, payout.request_no) == 1
    assert_books_balance()
    assert_paid_once(world.sandbox)


# --- Definite answers ---------------------------------------------------------------------------


def test_a_refusal_fails_the_payout_and_the_winner_claims_again(prize_world):
    world = prize_world
    award = won(world, "800.01")
    assert award.tax_withheld == Decimal("160.00")
    refused = pay(award, account(world, REFUSED), world.team)
    assert (refused.status, refused.fail_code) == (PayoutStatus.FAILED, "account_invalid")
    assert refused.fail_message and refused.finished_at is not None
    assert fresh(award).status == AwardStatus.PAYABLE  # back to the winner, still reserved
    assert fund_balances(default_fund(world.campaign))["reserved"] == Decimal("800.01")
    assert_books_balance()
    # A refusal is final: asking again changes nothing.
    assert services.payout_refresh(payout_id=refused.pk).status == PayoutStatus.FAILED
    second = pay(award, account(world), world.team)
    assert second.status == PayoutStatus.PAID and second.request_no != refused.request_no
    assert second.amount == Decimal("640.01")
    assert fresh(award).status == AwardStatus.PAID
    assert [t["status"] for t in world.sandbox.transfers()] == ["FAILED", "SUCCESS"]
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_processing_is_settled_by_the_signed_callback(prize_world):
    world = prize_world
    award = won(world)
    payout = pay(award, account(world, PROCESSING_UNTIL_SETTLED), world.team)
    assert payout.status == PayoutStatus.PROCESSING
    assert fresh(award).status == AwardStatus.CLAIMED
    world.sandbox.settle(payout.request_no, "SUCCESS")
    world.callbacks.wait_for(1)
    [outcome] = deliver_callbacks(world.callbacks)
    assert isinstance(outcome, Payout) and outcome.status == PayoutStatus.PAID
    assert fresh(payout).status == PayoutStatus.PAID and statuses(payout)[-1] == "paid"
    assert payout.history.last().via == "callback"
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_duplicate_callbacks_pay_once(prize_world):
    world = prize_world
    award = won(world)
    world.sandbox.control("duplicate_callback")
    payout = pay(award, account(world, PROCESSING_UNTIL_SETTLED), world.team)
    world.sandbox.settle(payout.request_no, "SUCCESS")
    received = world.callbacks.wait_for(2)
    assert received[0].body == received[1].body and received[0].headers != received[1].headers
    outcomes = deliver_callbacks(world.callbacks)
    assert [o.status for o in outcomes] == [PayoutStatus.PAID, PayoutStatus.PAID]
    # Our own replay of an already accepted callback is refused as a replay.
    replay = deliver_callbacks(world.callbacks, start=0)
    assert {o.code for o in replay} == {"replayed_nonce"}
    assert PayoutStatusChange.objects.filter(payout=payout, to_status="paid").count() == 1
    assert LedgerEntry.objects.filter(payout=payout).count() == 2  # disburse + tax, once each
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_a_forged_callback_is_rejected_and_changes_nothing(prize_world):
    world = prize_world
    award = won(world)
    # The provider will refuse this transfer; a forger claims it succeeded.
    world.sandbox.control("forged_callback", status="SUCCESS", genuine=False)
    payout = pay(award, account(world, PROCESSING_UNTIL_SETTLED), world.team)
    before = (statuses(payout), ledger_state())
    world.sandbox.settle(payout.request_no, "FAILED", "account_closed")
    [forged] = world.callbacks.wait_for(1)
    assert json.loads(forged.body)["status"] == "SUCCESS"
    [outcome] = deliver_callbacks(world.callbacks)
    assert isinstance(outcome, gw.CallbackRejected) and outcome.code == "bad_signature"
    assert fresh(payout).status == PayoutStatus.PROCESSING
    assert (statuses(payout), ledger_state()) == before
    # A genuine body with the signature of another body, and one with no signature at all.
    genuine = json.dumps({**json.loads(forged.body), "status": "FAILED"}).encode()
    for headers in (forged.headers, {"Content-Type": "application/json"}):
        with pytest.raises(gw.CallbackRejected):
            services.payout_callback(method="POST", path=forged.path, headers=headers, body=genuine)
    # A correctly signed but stale callback.
    stale = signed_callback(world, payout.request_no, "SUCCESS", timestamp=int(time.time()) - 900)
    with pytest.raises(gw.CallbackRejected) as old:
        services.payout_callback(**stale)
    assert old.value.code == "stale_timestamp"
    assert (statuses(payout), ledger_state()) == before
    # The truth comes from the provider.
    assert services.payout_refresh(payout_id=payout.pk).status == PayoutStatus.FAILED
    assert fresh(award).status == AwardStatus.PAYABLE
    assert_books_balance()
    assert_paid_once(world.sandbox)


def signed_callback(world, request_no, status, *, timestamp=None, amount="800.00"):
    """A callback signed with the real callback secret (what only the provider can make)."""
    body = json.dumps(
        {
            "request_no": request_no,
            "status": status,
            "provider_ref": "SBXFAKE",
            "amount": amount,
            "fail_code": "",
            "fail_message": "",
            "finished_at": "2026-04-01T12:00:00+08:00",
        }
    ).encode()
    timestamp = str(timestamp or int(time.time()))
    nonce = secrets.token_hex(16)
    path = "/api/v1/payments/callback"
    signature = sign(
        world.sandbox.callback_secret,
        timestamp=timestamp,
        nonce=nonce,
        method="POST",
        path=path,
        body=body,
    )
    headers = {
        "X-Client-Id": world.sandbox.client_id,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": signature,
    }
    return {"method": "POST", "path": path, "headers": headers, "body": body}


def test_a_callback_for_an_unknown_number_is_ignored(prize_world):
    assert (
        services.payout_callback(**signed_callback(prize_world, "PO20260401DEADBEEF", "SUCCESS"))
        is None
    )
    assert_books_balance()


# --- A worker killed mid-payout, and its redelivered task -----------------------------------------


class WorkerKilled(BaseException):
    """What the process sees when the worker is killed (SIGKILL leaves no Python at all; this
    stops the service just as abruptly, past every `except Exception`)."""


def kill_worker(monkeypatch, *, after_request: bool):
    original = gw.HttpPaymentGateway.transfer

    def dying_transfer(self, req):
        if after_request:
            original(self, req)  # the request leaves and the provider executes it
        raise WorkerKilled

    monkeypatch.setattr(gw.HttpPaymentGateway, "transfer", dying_transfer)


@pytest.mark.parametrize("after_request", [True, False])
def test_a_worker_killed_mid_payout_is_finished_by_the_redelivered_task(
    prize_world, monkeypatch, after_request
):
    world = prize_world
    award = won(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=account(world))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    approve(batch, world.team.checker, send=False)  # queued; the worker takes it
    kill_worker(monkeypatch, after_request=after_request)
    with pytest.raises(WorkerKilled):
        payout_send_task.apply(args=[payout.pk]).get()
    monkeypatch.undo()
    payout = fresh(payout)
    assert payout.status == PayoutStatus.SENDING and payout.attempts == 1
    assert provider_executions(world.sandbox, payout.request_no) == (1 if after_request else 0)
    assert_books_balance()
    assert_paid_once(world.sandbox)

    # acks_late: the broker hands the task to another worker, which carries on.
    assert payout_send_task.apply(args=[payout.pk]).get() == PayoutStatus.PAID
    assert transfer_posts(world.sandbox, payout.request_no) == 1
    assert world.sandbox.executions == [payout.request_no]
    assert fresh(award).status == AwardStatus.PAID
    # Delivered yet again: nothing happens.
    assert payout_send_task.apply(args=[payout.pk]).get() == PayoutStatus.PAID
    assert world.sandbox.executions == [payout.request_no]
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_a_redelivered_task_that_cannot_reach_the_provider_leaves_unknown(prize_world, monkeypatch):
    world = prize_world
    award = won(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=account(world))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    approve(batch, world.team.checker, send=False)
    kill_worker(monkeypatch, after_request=True)
    with pytest.raises(WorkerKilled):
        services.payout_send(payout_id=payout.pk)
    monkeypatch.undo()
    world.sandbox.control("lost_reply", endpoint="query")
    assert payout_send_task.apply(args=[payout.pk]).get() == PayoutStatus.UNKNOWN
    assert transfer_posts(world.sandbox, payout.request_no) == 1  # not re-sent blindly
    assert services.payout_refresh(payout_id=payout.pk).status == PayoutStatus.PAID
    assert world.sandbox.executions == [payout.request_no]
    assert_books_balance()
    assert_paid_once(world.sandbox)


# --- Re-verification before payout ---------------------------------------------------------------


def test_a_red_flushed_invoice_blocks_its_payout_before_money_leaves(prize_world):
    world = prize_world
    award = won(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=account(world))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    # The tax authority red-flushes the invoice; the platform has not heard yet.
    from apps.invoices.models import TaxInvoiceRecord

    TaxInvoiceRecord.objects.filter(number=award.invoice.number).update(
        status="red_flushed", red_total=award.invoice.total
    )
    approve(batch, world.team.checker)
    payout = fresh(payout)
    assert payout.status in (PayoutStatus.BLOCKED, PayoutStatus.CANCELLED)
    assert transfer_posts(world.sandbox, payout.request_no) == 0
    assert fresh(award).status == AwardStatus.CANCELLED
    assert fresh(award.invoice).status == "reversed"
    assert fund_balances(default_fund(world.campaign))["reserved"] == Decimal("0.00")
    assert fresh(batch).status == BatchStatus.COMPLETED
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_a_doubtful_re_verification_holds_the_prize_instead_of_paying(prize_world):
    world = prize_world
    award = won(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=account(world))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    # The authority no longer knows the invoice: no payment on a doubt, no cancellation either.
    from apps.invoices.models import TaxInvoiceRecord

    stray = "26411000000000999999"
    TaxInvoiceRecord.objects.filter(number=award.invoice.number).update(number=stray)
    approve(batch, world.team.checker)
    payout = fresh(payout)
    assert (payout.status, payout.fail_code) == (PayoutStatus.BLOCKED, "invoice.reverify_failed")
    assert transfer_posts(world.sandbox, payout.request_no) == 0
    award = fresh(award)
    assert award.status == AwardStatus.HELD and award.payable_after > timezone.now()
    assert fund_balances(default_fund(world.campaign))["reserved"] == Decimal("1000.00")
    assert_books_balance()
    # The authority knows it again; the release task re-verifies, the winner claims again.
    TaxInvoiceRecord.objects.filter(number=stray).update(number=award.invoice.number)
    assert services.awards_release_due(now=award.payable_after)["payable"] == 1
    second = pay(fresh(award), account(world), world.team)
    assert second.status == PayoutStatus.PAID and second.request_no != payout.request_no
    assert world.sandbox.executions == [second.request_no]
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_an_unreachable_tax_authority_holds_the_payout_until_the_poller(prize_world):
    world = prize_world
    award = won(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=account(world))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    with tax_authority_down():
        approve(batch, world.team.checker)
        assert fresh(payout).status == PayoutStatus.APPROVED
        assert services.payouts_poll() == 1
        assert fresh(payout).status == PayoutStatus.APPROVED
    assert world.sandbox.executions == []
    assert services.payouts_poll() == 1
    assert fresh(payout).status == PayoutStatus.PAID
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_the_policy_may_turn_re_verification_off(prize_world):
    world = prize_world
    award = won(world)
    PrizePolicy.objects.filter(campaign=world.campaign).update(reverify_before_payout=False)
    with tax_authority_down():
        payout = pay(award, account(world), world.team)
    assert payout.status == PayoutStatus.PAID


# --- Reversals of invoices whose prize is on its way ---------------------------------------------


def test_a_reversal_while_the_payment_is_in_flight_flags_it_for_recovery_once_paid(prize_world):
    world = prize_world
    award = won(world, "1000.00")
    payout = pay(award, account(world, PROCESSING_UNTIL_SETTLED), world.team)
    assert payout.status == PayoutStatus.PROCESSING
    red_flush(award.invoice)
    # The money may already be on its way: the award is left for the provider's answer.
    assert fresh(award).status == AwardStatus.CLAIMED
    world.sandbox.settle(payout.request_no, "SUCCESS")
    assert services.payout_refresh(payout_id=payout.pk).status == PayoutStatus.PAID
    assert fresh(award).status == AwardStatus.TO_RECOVER
    assert_books_balance()
    with pytest.raises(PrizeError):
        services.award_mark_recovered(award=award, note="已退回", actor=world.team.maker)
    services.award_mark_recovered(award=award, note="中奖人已退回奖金", actor=world.team.officer)
    assert fresh(award).status == AwardStatus.RECOVERED
    balances = fund_balances(default_fund(world.campaign))
    assert balances["paid"] == Decimal("0.00") and balances["tax_withheld"] == Decimal("200.00")
    assert AuditEvent.objects.filter(action="award.recovered").count() == 1
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_a_reversal_while_in_flight_then_a_refusal_cancels_the_prize(prize_world):
    world = prize_world
    award = won(world)
    payout = pay(award, account(world, PROCESSING_UNTIL_SETTLED), world.team)
    red_flush(award.invoice)
    world.sandbox.settle(payout.request_no, "FAILED", "account_closed")
    assert services.payout_refresh(payout_id=payout.pk).status == PayoutStatus.FAILED
    # The invoice is reversed: the prize must not become claimable again.
    assert fresh(award).status == AwardStatus.CANCELLED
    assert fund_balances(default_fund(world.campaign))["reserved"] == Decimal("0.00")
    with pytest.raises(PrizeError):
        services.award_claim(consumer=world.consumer, award=award, account=account(world))
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_a_reversal_of_an_approved_payout_not_yet_sent_stops_it(prize_world):
    world = prize_world
    award = won(world)
    payout = services.award_claim(consumer=world.consumer, award=award, account=account(world))
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    approve(batch, world.team.checker, send=False)
    assert fresh(payout).status == PayoutStatus.APPROVED
    red_flush(award.invoice)
    assert fresh(award).status == AwardStatus.CANCELLED
    assert fresh(payout).status in (PayoutStatus.BLOCKED, PayoutStatus.CANCELLED)
    # The queued task arrives afterwards: nothing is sent.
    payout_send_task.apply(args=[payout.pk]).get()
    assert services.payouts_poll(older_than_seconds=0) == 0
    assert world.sandbox.executions == []
    assert_books_balance()


def test_the_poller_sends_approved_payouts_and_settles_late_ones(prize_world):
    world = prize_world
    first, second = won(world), won(world, "20.00")
    card = account(world)
    for award in (first, second):
        services.award_claim(consumer=world.consumer, award=award, account=card)
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    approve(batch, world.team.checker, send=False)  # the broker lost the tasks
    world.sandbox.control("timeout", seconds=PAYMENT_TIMEOUT_FAULT_SECONDS)
    assert services.payouts_poll() == 2
    payouts = list(batch.payouts.order_by("pk"))
    assert sorted(p.status for p in payouts) == [PayoutStatus.PAID, PayoutStatus.UNKNOWN]
    assert fresh(batch).status == BatchStatus.APPROVED  # not done while one is unknown
    wait_until(lambda: len(world.sandbox.executions) == 2)
    assert services.payouts_poll(older_than_seconds=0) == 1
    assert {p.status for p in batch.payouts.all()} == {PayoutStatus.PAID}
    assert fresh(batch).status == BatchStatus.COMPLETED
    assert_books_balance()
    assert_paid_once(world.sandbox)
