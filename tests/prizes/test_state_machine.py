"""Issue 7, Done means 1: a Hypothesis state machine over the life of prizes and their money —
win, claim, prepare, approve (or refuse), send with faults, a worker killed mid-payout, provider
settlement, callbacks (genuine, duplicate, forged), status queries, the poller, statements (clean
or with injected mismatches), red-letter reversals, recovery, release of held prizes, expiry and
coupon redemption — driving the real services against the payment sandbox on 127.0.0.1.

After every step: the ledger balances (and agrees with the awards, payouts and coupons it
accounts for), nothing is paid twice, every PAID payout is one the provider executed exactly once,
and the provider executed nothing we do not know as paid or still unknown. At the end of each run
every payout is driven to rest: paid here = paid there, exactly.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from apps.common.http import sign
from apps.draws.choices import InstantPrizeKind
from apps.invoices.choices import InvoiceStatus
from apps.prizes import gateway as gw
from apps.prizes import services
from apps.prizes.choices import (
    AWARD_RESERVED_STATUSES,
    PAYOUT_IN_FLIGHT,
    AwardKind,
    AwardStatus,
    BatchStatus,
    CouponStatus,
    MismatchKind,
    PayoutStatus,
)
from apps.prizes.exceptions import PrizeError
from apps.prizes.gateway import get_payment_gateway
from apps.prizes.models import Award, Coupon, Payout, PayoutBatch, ReconciliationIssue
from tests.factories.core import MerchantFactory
from tests.prizes.conftest import PAYMENT_TIMEOUT_FAULT_SECONDS
from tests.prizes.helpers import (
    PAID_AT_ONCE,
    PROCESSING_UNTIL_SETTLED,
    REFUSED,
    assert_books_balance,
    assert_paid_once,
    finance_team,
    grant,
    instant_win,
    payee,
    payout_account,
    prize_campaign,
    read_rows,
    red_flush,
    transfer_posts,
    wait_until,
)
from tests.prizes.helpers import approve as approve_batch

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

D = Decimal
BUDGET = D("6000.00")  # small enough that some wins find the fund empty
CASH = [D("20.00"), D("800.00"), D("800.01"), D("1000.00"), D("2500.00")]
ACCOUNTS = {"ok": PAID_AT_ONCE, "refused": REFUSED, "slow": PROCESSING_UNTIL_SETTLED}
SEND_FAULTS = [
    None,
    None,
    ("error_5xx", {}),  # not executed: NOT_FOUND on query, re-sent under the same number
    ("error_5xx", {"execute": True}),
    ("lost_reply", {}),
    ("garbled", {}),
    ("timeout", {"seconds": PAYMENT_TIMEOUT_FAULT_SECONDS}),
]
WORKER_FATES = ["lives", "lives", "dies_before_request", "dies_after_request"]
FINAL = (PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.BLOCKED, PayoutStatus.CANCELLED)
index = st.integers(min_value=0, max_value=50)


class WorkerKilled(BaseException):
    """The worker process dies (past every `except Exception`)."""


def pick(queryset, i):
    rows = list(queryset.order_by("pk"))
    return rows[i % len(rows)] if rows else None


def snapshot(payout):
    payout.refresh_from_db()
    return payout.status, payout.attempts, transfer_posts_count(payout)


def nonce_of(headers) -> str:
    return next((v for k, v in headers.items() if k.lower() == "x-nonce"), "")


def transfer_posts_count(payout):
    return transfer_posts(MACHINE_WORLD.sandbox, payout.request_no)


MACHINE_WORLD = SimpleNamespace(sandbox=None, callbacks=None, identity=None)


class PrizeMachine(RuleBasedStateMachine):
    """One campaign with a small fund, two winners with three cards each (paid at once, refused,
    processing until the provider settles), a shop, and the finance team: the base the test
    builds once; each run starts from it and is rolled back to it at its end."""

    def __init__(self):
        super().__init__()
        world = self.world = MACHINE_WORLD
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        world.sandbox.reset()
        world.sandbox.clear_transfers()
        with world.callbacks.lock:
            world.callbacks.received.clear()
        self.delivered = 0
        self.now = timezone.now()
        self.campaign, self.team, self.consumers = world.campaign, world.team, world.consumers
        self.accounts, self.shop = world.accounts, world.shop
        # What exists, so that rules with nothing to act on are not chosen (no queries needed).
        self.awards = self.coupons = self.payouts = self.batches = 0

    def teardown(self):
        try:
            self.settle_everything()
        finally:
            self.world.sandbox.clear_faults()
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    def inject(self, fault):
        if fault:
            self.world.sandbox.control(fault[0], **fault[1])

    # --- Wins -----------------------------------------------------------------------------------

    @initialize(
        plan=st.lists(
            st.tuples(
                st.sampled_from(CASH),
                st.sampled_from(sorted(ACCOUNTS)),
                st.sampled_from(["payable", "claimed", "approved", "sent", "sent"]),
                st.sampled_from(SEND_FAULTS),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def start(self, plan):
        """Each run starts with a few prizes somewhere on their way: payable, claimed, in an
        approved batch, or sent (perhaps with a fault)."""
        for n, (amount, card, stage, fault) in enumerate(plan):
            self.win(n % 2, "cash", amount, False)
            if stage == "payable":
                continue
            then = {"claimed": "stop", "approved": "approve", "sent": "approve_and_send"}[stage]
            self.claim_prize(n, card, "winner", "payable", then, fault)

    @rule(
        who=st.integers(0, 1),
        kind=st.sampled_from(["cash", "cash", "coupon"]),
        amount=st.sampled_from(CASH),
        delayed=st.booleans(),
    )
    def win(self, who, kind, amount, delayed):
        if kind == "coupon":
            award = instant_win(
                self.campaign, self.consumers[who], D("50.00"), kind=InstantPrizeKind.COUPON
            )
            self.coupons += award is not None
        else:
            award = instant_win(self.campaign, self.consumers[who], amount, delayed=delayed)
        if award is None:  # the fund could not cover it: no prize, nothing reserved
            return
        self.awards += 1
        if kind == "cash":
            assert award.status == (AwardStatus.HELD if delayed else AwardStatus.PAYABLE)
            tax = D("0.00") if amount <= D("800.00") else (amount * D("0.2")).quantize(D("0.01"))
            assert (award.tax_withheld, award.net_amount) == (tax, amount - tax)

    # --- Claim, prepare, approve ----------------------------------------------------------------

    @precondition(lambda self: self.awards)
    @rule(
        i=index,
        card=st.sampled_from(sorted(ACCOUNTS)),
        who=st.sampled_from(["winner", "winner", "winner", "impostor"]),
        which=st.sampled_from(["payable", "payable", "any"]),
        then=st.sampled_from(["stop", "prepare", "approve"]),
    )
    def claim(self, i, card, who, which, then):
        """A winner (or someone else) claims a cash prize; finance may carry on at once."""
        self.claim_prize(i, card, who, which, then, None)

    @precondition(lambda self: self.awards)
    @rule(i=index, card=st.sampled_from(sorted(ACCOUNTS)), fault=st.sampled_from(SEND_FAULTS))
    def claim_and_pay(self, i, card, fault):
        """The whole way in one step: claim, prepare, approve, send (perhaps with a fault)."""
        self.claim_prize(i, card, "winner", "payable", "approve_and_send", fault)

    def claim_prize(self, i, card, who, which, then, fault):
        awards = Award.objects.filter(kind=AwardKind.CASH)
        if which == "payable":
            awards = awards.filter(status=AwardStatus.PAYABLE)
        award = pick(awards, i)
        if award is None:
            return
        owner = next(c for c in self.consumers if c.pk == award.consumer_id)
        claimant = next(c for c in self.consumers if c.pk != owner.pk) if who != "winner" else owner
        live = award.payouts.exclude(status__in=FINAL[1:]).first()
        try:
            payout = services.award_claim(
                consumer=claimant, award=award, account=self.accounts[(claimant.pk, card)]
            )
        except PrizeError as exc:
            if claimant != owner:
                assert exc.code == "award.not_found"
            else:
                assert award.status not in (AwardStatus.PAYABLE, AwardStatus.CLAIMED), exc.code
            return
        assert claimant == owner
        self.payouts += 1
        if award.status == AwardStatus.CLAIMED:
            assert live is not None and payout.pk == live.pk  # claiming again: the same payout
            return
        assert award.status == AwardStatus.PAYABLE and payout.status == PayoutStatus.PENDING
        assert payout.amount == award.net_amount and payout.tax_withheld == award.tax_withheld
        if then == "stop":
            return
        batch = self.prepare_batch()
        if then == "prepare":
            return
        self.inject(fault)
        try:
            approve_batch(batch, self.team.checker, send=then == "approve_and_send")
        finally:
            self.world.sandbox.clear_faults()
        payout.refresh_from_db()
        if then == "approve":
            assert payout.status == PayoutStatus.APPROVED
        else:
            assert payout.status not in (PayoutStatus.PENDING, PayoutStatus.APPROVED)
            if card == "refused" and payout.status != PayoutStatus.UNKNOWN:
                assert (payout.status, payout.fail_code) == (PayoutStatus.FAILED, "account_invalid")

    @precondition(lambda self: self.payouts)
    @rule()
    def prepare(self):
        self.prepare_batch()

    def prepare_batch(self):
        waiting = Payout.objects.filter(
            status=PayoutStatus.PENDING, batch__isnull=True, award__campaign=self.campaign
        ).count()
        try:
            batch = services.payout_batch_prepare(campaign=self.campaign, actor=self.team.maker)
        except PrizeError as exc:
            assert exc.code == "batch.empty" and waiting == 0
            return None
        assert batch.payout_count == waiting and batch.created_by == self.team.maker
        self.batches += 1
        return batch

    @precondition(lambda self: self.batches)
    @rule(
        i=index,
        decision=st.sampled_from(["approve", "approve_and_send", "reject"]),
        maker_tries=st.booleans(),
        fault=st.sampled_from(SEND_FAULTS),
    )
    def decide(self, i, decision, maker_tries, fault):
        """A checker decides on a submitted batch (after the maker, perhaps, tried to)."""
        batch = pick(PayoutBatch.objects.filter(status=BatchStatus.SUBMITTED), i)
        if batch is None:
            return
        if maker_tries:
            with pytest.raises(PrizeError) as refused:
                services.payout_batch_approve(batch=batch, actor=self.team.maker)
            assert refused.value.code == "batch.maker_is_checker"
            batch.refresh_from_db()
            assert batch.status == BatchStatus.SUBMITTED and batch.approved_by is None
        if decision == "reject":
            services.payout_batch_reject(batch=batch, reason="退回重做", actor=self.team.checker2)
            # Its waiting payouts go back to the pool (cancelled ones stay with it, as history).
            assert not batch.payouts.filter(status=PayoutStatus.PENDING).exists()
            return
        self.inject(fault)
        try:
            approve_batch(batch, self.team.checker, send=decision == "approve_and_send")
        finally:
            self.world.sandbox.clear_faults()
        batch.refresh_from_db()
        assert batch.status in (BatchStatus.APPROVED, BatchStatus.COMPLETED)
        assert batch.approved_by == self.team.checker
        if decision == "approve":
            assert not batch.payouts.filter(status__in=PAYOUT_IN_FLIGHT).exists()

    # --- Sending --------------------------------------------------------------------------------

    @precondition(lambda self: self.payouts)
    @rule(i=index, fault=st.sampled_from(SEND_FAULTS), worker=st.sampled_from(WORKER_FATES))
    def send(self, i, fault, worker):
        """A send task for a payout: first delivery, redelivery or a stray one; the worker may
        die before or after the request leaves."""
        payout = pick(Payout.objects.all(), i)
        if payout is None:
            return
        before = snapshot(payout)
        original = gw.HttpPaymentGateway.transfer

        def dying(gateway, req):
            if worker == "dies_after_request":
                original(gateway, req)
            raise WorkerKilled

        self.inject(fault)
        try:
            if worker == "lives":
                services.payout_send(payout_id=payout.pk)
            else:
                with mock.patch.object(gw.HttpPaymentGateway, "transfer", dying):
                    try:
                        services.payout_send(payout_id=payout.pk)
                    except WorkerKilled:
                        assert snapshot(payout)[0] == PayoutStatus.SENDING
        finally:
            self.world.sandbox.clear_faults()
        if before[0] not in (PayoutStatus.APPROVED, PayoutStatus.SENDING):
            assert snapshot(payout) == before  # nothing to do: nothing done, nothing sent

    @precondition(lambda self: self.payouts)
    @rule(i=index, query_fails=st.booleans(), sweep=st.booleans())
    def ask_provider(self, i, query_fails, sweep):
        """A status query for one payout, or the scheduled sweep over all of them."""
        payout = pick(Payout.objects.all(), i)
        before = snapshot(payout)
        if query_fails:
            self.world.sandbox.control("error_5xx", endpoint="query", times=50)
        try:
            if sweep:
                services.payouts_poll(older_than_seconds=0)
            else:
                services.payout_refresh(payout_id=payout.pk)
        finally:
            self.world.sandbox.clear_faults()
        after = snapshot(payout)
        if before[0] not in (PayoutStatus.APPROVED, *PAYOUT_IN_FLIGHT):
            assert after == before
        if query_fails and before[0] in (PayoutStatus.UNKNOWN, PayoutStatus.PROCESSING):
            assert after == before  # no answer: nothing decided, nothing re-sent

    # --- The provider and its callbacks ----------------------------------------------------------

    @precondition(lambda self: self.payouts)
    @rule(
        i=index,
        action=st.sampled_from(["settle_paid", "settle_failed", "duplicate", "forged"]),
    )
    def provider(self, i, action):
        """The provider finishes a transfer it was processing (or plans a callback fault)."""
        sandbox = self.world.sandbox
        if action == "duplicate":
            sandbox.control("duplicate_callback")
            return
        if action == "forged":
            sandbox.control("forged_callback", status="SUCCESS")
            return
        processing = sorted(
            t["request_no"] for t in sandbox.transfers() if t["status"] == "PROCESSING"
        )
        if not processing:
            return
        request_no = processing[i % len(processing)]
        if action == "settle_paid":
            sandbox.settle(request_no, "SUCCESS")
        else:
            sandbox.settle(request_no, "FAILED", "account_closed", "收款账户已销户")

    @precondition(lambda self: self.payouts)
    @rule(replay=st.booleans(), forge=index)
    def callbacks(self, replay, forge):
        """Hand the callbacks received so far to the service, as the view would; replay an old
        one; and a forger (without the secret) claims a payout's outcome."""
        sandbox, receiver = self.world.sandbox, self.world.callbacks
        final = [t["request_no"] for t in sandbox.transfers() if t["status"] != "PROCESSING"]
        wait_until(lambda: all(sandbox.callbacks_for(no) for no in final))
        forged = {nonce_of(c.headers) for c in list(sandbox.callbacks) if c.forged}
        received = list(receiver.received)
        for callback in received[self.delivered :]:
            try:
                services.payout_callback(
                    method=callback.method,
                    path=callback.path,
                    headers=callback.headers,
                    body=callback.body,
                )
            except gw.CallbackRejected as exc:
                assert nonce_of(callback.headers) in forged, exc.code
                assert exc.code == "bad_signature"
            else:
                assert nonce_of(callback.headers) not in forged
        self.delivered = len(received)
        if replay and received:
            old = received[0]
            with pytest.raises(gw.CallbackRejected):
                services.payout_callback(
                    method=old.method, path=old.path, headers=old.headers, body=old.body
                )
        payout = pick(Payout.objects.all(), forge)
        before = snapshot(payout)
        with pytest.raises(gw.CallbackRejected):
            services.payout_callback(**forged_callback(payout, self.world.sandbox.client_id))
        assert snapshot(payout) == before

    # --- Statements -----------------------------------------------------------------------------

    @precondition(lambda self: self.payouts)
    @rule(inject=st.booleans())
    def reconcile(self, inject):
        day = timezone.localdate()
        final_here = Payout.objects.filter(status__in=[PayoutStatus.PAID, PayoutStatus.FAILED])
        paid = sorted(p.request_no for p in final_here if p.status == PayoutStatus.PAID)
        failed = sorted(p.request_no for p in final_here if p.status == PayoutStatus.FAILED)
        expected = []
        if inject:
            # Corrupt only lines of payouts already final here: a statement that lies about a
            # payout still in flight would be believed (it is the provider's word).
            options = {"extra": 1, "bad_lines": 1, "missing": [], "wrong_amount": []}
            options["wrong_status"] = []
            if paid:
                options["missing"] = [paid[0]]
                expected.append(MismatchKind.MISSING_AT_PROVIDER)
            if len(paid) > 1:
                options["wrong_amount"] = [paid[1]]
                expected.append(MismatchKind.AMOUNT)
            if failed:
                options["wrong_status"] = [failed[0]]
                expected.append(MismatchKind.STATUS)
            expected += [MismatchKind.EXTRA_AT_PROVIDER, MismatchKind.BAD_LINE]
            self.world.sandbox.control("statement_mismatch", **options)
        provider = {t["request_no"]: t["status"] for t in self.world.sandbox.transfers()}
        in_flight = list(Payout.objects.filter(status__in=PAYOUT_IN_FLIGHT))
        data = get_payment_gateway().fetch_statement(day)
        try:
            statement = services.statement_reconcile(day=day, data=data, actor=self.team.officer)
        except PrizeError as exc:  # nothing happened since the last import of this day
            assert exc.code == "statement.duplicate"
            return
        kinds = sorted(
            ReconciliationIssue.objects.filter(statement=statement).values_list("kind", flat=True)
        )
        assert kinds == sorted(expected), (kinds, expected)
        for payout in in_flight:  # the statement settles what we did not know
            payout.refresh_from_db()
            was = provider.get(payout.request_no)
            if was == "SUCCESS":
                assert payout.status == PayoutStatus.PAID
            elif was == "FAILED":
                assert payout.status == PayoutStatus.FAILED

    # --- Reversals, recovery, time, coupons ---------------------------------------------------

    @precondition(lambda self: self.awards)
    @rule(i=index, recover=st.booleans())
    def reverse_invoice(self, i, recover):
        """The tax authority red-flushes a winning invoice; finance may then record that a
        winner paid on a reversed invoice returned the money."""
        award = pick(Award.objects.filter(invoice__status=InvoiceStatus.ACCEPTED), i)
        if award is not None:
            self.reverse(award)
        if recover:
            to_recover = pick(Award.objects.filter(status=AwardStatus.TO_RECOVER), i)
            if to_recover is not None:
                services.award_mark_recovered(
                    award=to_recover, note="中奖人已退回", actor=self.team.officer
                )
                to_recover.refresh_from_db()
                assert to_recover.status == AwardStatus.RECOVERED

    def reverse(self, award):
        before = {
            a.pk: (a.status, a.payouts.filter(status__in=PAYOUT_IN_FLIGHT).exists())
            for a in Award.objects.filter(invoice=award.invoice)
        }
        red_flush(award.invoice)
        for a in Award.objects.filter(pk__in=before):
            status, flying = before[a.pk]
            if status in AWARD_RESERVED_STATUSES and not flying:
                assert a.status == AwardStatus.CANCELLED
            elif status == AwardStatus.PAID:
                assert a.status == AwardStatus.TO_RECOVER
            else:
                assert a.status == status

    @precondition(lambda self: self.awards)
    @rule(days=st.sampled_from([8, 8, 8, 45]))
    def time_passes(self, days):
        """The scheduled tasks a few days on: held prizes are released, unclaimed ones expire."""
        later = self.now + timedelta(days=days)
        held = list(Award.objects.filter(status=AwardStatus.HELD, payable_after__lte=later))
        due = list(
            Award.objects.filter(
                status=AwardStatus.PAYABLE, kind=AwardKind.CASH, claim_until__lt=later
            )
        )
        services.awards_release_due(now=later)
        services.awards_expire_due(now=later)
        for award in held:
            award.refresh_from_db()
            assert award.status in (AwardStatus.PAYABLE, AwardStatus.EXPIRED)
        for award in due:
            award.refresh_from_db()
            assert award.status == AwardStatus.EXPIRED

    @precondition(lambda self: self.coupons)
    @rule(i=index, reference=st.sampled_from(["R1", "R2"]))
    def redeem(self, i, reference):
        coupon = pick(Coupon.objects.all(), i)
        try:
            result = services.coupon_redeem(
                code=str(coupon.code),
                merchant=self.shop,
                purchase_amount=D("60.00"),
                reference=f"{reference}-{coupon.pk}",
            )
        except PrizeError as exc:
            assert coupon.status != CouponStatus.ISSUED, exc.code
            return
        assert result.coupon.status == CouponStatus.REDEEMED
        assert result.replayed == (coupon.status == CouponStatus.REDEEMED)

    # --- After every step -----------------------------------------------------------------------

    @invariant()
    def money_is_consistent(self):
        rows = read_rows()
        assert_books_balance(rows)
        assert_paid_once(self.world.sandbox, rows)
        awards = {pk: (status, invoice) for pk, _f, status, _k, _a, _n, invoice in rows.awards}
        flying = set()
        for _no, status, _amount, _tax, award_id, _fund, _approved in rows.payouts:
            award_status = awards[award_id][0]
            if status in (PayoutStatus.PENDING, PayoutStatus.APPROVED, *PAYOUT_IN_FLIGHT):
                assert award_status == AwardStatus.CLAIMED, (status, award_status)
            if status in PAYOUT_IN_FLIGHT:
                flying.add(award_id)
            if status == PayoutStatus.PAID:
                assert award_status in (
                    AwardStatus.PAID,
                    AwardStatus.TO_RECOVER,
                    AwardStatus.RECOVERED,
                ), award_status
        # A reversed invoice's prize is never claimable or payable again.
        for pk, (status, invoice_status) in awards.items():
            if invoice_status != InvoiceStatus.REVERSED:
                continue
            if status == AwardStatus.CLAIMED:
                assert pk in flying  # left for the provider's answer
            else:
                assert status not in (AwardStatus.HELD, AwardStatus.PAYABLE), status

    # --- At the end of each run -------------------------------------------------------------------

    def settle_everything(self):
        """Let the provider finish everything and ask about every payout: then no payout is
        left in flight, and what we call paid is exactly what the provider paid."""
        sandbox = self.world.sandbox
        sandbox.clear_faults()
        for _ in range(3):  # a re-sent transfer to the slow card is PROCESSING again
            for transfer in sandbox.transfers():
                if transfer["status"] == "PROCESSING":
                    sandbox.settle(transfer["request_no"], "SUCCESS")
            services.payouts_poll(older_than_seconds=0)
        assert not Payout.objects.filter(
            status__in=[PayoutStatus.APPROVED, *PAYOUT_IN_FLIGHT]
        ).exists()
        paid_here = set(
            Payout.objects.filter(status=PayoutStatus.PAID).values_list("request_no", flat=True)
        )
        assert paid_here == {t["request_no"] for t in sandbox.paid()}
        assert_books_balance()
        assert_paid_once(sandbox)


def forged_callback(payout, client_id: str) -> dict:
    """A callback about `payout` signed with a key that is not the callback secret."""
    status = secrets.choice(["SUCCESS", "FAILED"])
    body = json.dumps(
        {
            "request_no": payout.request_no,
            "status": status,
            "provider_ref": "SBXFORGED",
            "amount": f"{payout.amount:.2f}",
            "fail_code": "" if status == "SUCCESS" else "account_closed",
            "finished_at": timezone.localtime().isoformat(),
        }
    ).encode()
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    path = "/api/v1/payments/callback"
    signature = sign(
        secrets.token_hex(24), timestamp=timestamp, nonce=nonce, method="POST", path=path, body=body
    )
    headers = {
        "X-Client-Id": client_id,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": signature,
    }
    return {"method": "POST", "path": path, "headers": headers, "body": body}


def test_prizes_state_machine(payment_gateway_settings, payment_callbacks, identity_sandbox):
    """Each run starts from the same committed-in-the-test base (campaign with a 6 000.00 fund,
    the finance team — the maker also holding the checker's permission —, two winners with
    three cards each, a shop) and is rolled back to it at its end."""
    world = MACHINE_WORLD
    world.sandbox, world.callbacks, world.identity = (
        payment_gateway_settings,
        payment_callbacks,
        identity_sandbox,
    )
    world.campaign = prize_campaign(BUDGET)
    world.team = finance_team()
    world.team.maker = grant(world.team.maker, "prizes.approve_payoutbatch")
    world.consumers = [payee(identity_sandbox) for _ in range(2)]
    world.accounts = {
        (c.pk, name): payout_account(identity_sandbox, c, suffix)
        for c in world.consumers
        for name, suffix in ACCOUNTS.items()
    }
    world.shop = MerchantFactory()
    run_state_machine_as_test(
        PrizeMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
