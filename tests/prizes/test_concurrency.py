"""Concurrency on PostgreSQL (issue 7, Done means 2): real threads released together by a barrier,
each with its own database connection, against committed data.

- parallel claims of one prize → one payout;
- parallel redemptions of one coupon → one redemption;
- parallel approvals of one batch → one transition (and each payout sent once);
- the same payout sent by several workers at once (redelivered task, poller) → one payment;
- parallel reservations against a fund with room for N prizes → exactly N, never negative.
"""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.exceptions import InvalidTransition
from apps.draws import services as draws
from apps.draws.choices import InstantPrizeKind
from apps.draws.models import InstantAward, InstantDailyQuota, InstantTier
from apps.prizes import services
from apps.prizes.choices import AccountKind, AwardStatus, BatchStatus, PayoutStatus
from apps.prizes.exceptions import PrizeError
from apps.prizes.ledger import fund_balances, ledger_verify
from apps.prizes.models import Award, LedgerAccount, LedgerEntry, Payout, PayoutBatch
from apps.prizes.tasks import payout_send_task
from tests.factories.core import ConsumerFactory, MerchantFactory
from tests.prizes.helpers import (
    approve,
    assert_books_balance,
    assert_paid_once,
    default_fund,
    entered_invoice,
    fresh,
    grant,
    instant_pool,
    instant_win,
    payee,
    payout_account,
    prize_campaign,
    staff,
    tax_authority_down,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

D = Decimal


def race(count: int, work) -> list:
    """Run `work(i)` in `count` threads released at the same instant; each result or the
    exception it raised, in thread order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        close_old_connections()
        try:
            barrier.wait(timeout=15)
            results[i] = work(i)
        except BaseException as exc:  # reported to the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a racing thread hung"
    return results


def codes(results) -> Counter:
    return Counter(
        getattr(r, "code", type(r).__name__) if isinstance(r, BaseException) else "ok"
        for r in results
    )


def test_parallel_claims_of_one_prize_make_one_payout(prize_world):
    world = prize_world
    award = instant_win(world.campaign, world.consumer, D("1000.00"))
    cards = [payout_account(world.identity, world.consumer, s) for s in ("1234", "5678")]
    results = race(
        6,
        lambda i: services.award_claim(
            consumer=world.consumer, award=Award.objects.get(pk=award.pk), account=cards[i % 2]
        ),
    )
    assert codes(results) == {"ok": 6}, results
    assert len({p.pk for p in results}) == 1
    assert Payout.objects.filter(award=award).count() == 1
    assert fresh(award).status == AwardStatus.CLAIMED
    assert AuditEvent.objects.filter(action="award.claimed").count() == 1
    assert award.history.filter(to_status=AwardStatus.CLAIMED).count() == 1
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    approve(batch, world.team.checker)
    assert Payout.objects.get(award=award).status == PayoutStatus.PAID
    assert len(world.sandbox.executions) == 1
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_parallel_redemptions_of_one_coupon_redeem_once():
    campaign = prize_campaign()
    shop, other_shop = MerchantFactory(), MerchantFactory()
    modes = {
        "two merchants": [(shop, "REF-1"), (other_shop, "REF-1")],
        "two tills of one merchant": [(shop, "TILL-1"), (shop, "TILL-2")],
        # The till retries its own request while the first is still running.
        "one request twice": [(shop, "REF-9"), (shop, "REF-9")],
    }
    for mode, tills in modes.items():
        award = instant_win(campaign, ConsumerFactory(), D("50.00"), kind=InstantPrizeKind.COUPON)
        code = str(award.coupon.code)

        def redeem(i, code=code, tills=tills):
            merchant, reference = tills[i]
            return services.coupon_redeem(
                code=code, merchant=merchant, purchase_amount=D("120.00"), reference=reference
            )

        results = race(2, redeem)
        if mode == "one request twice":
            assert codes(results) == {"ok": 2}, (mode, results)
            assert sorted(r.replayed for r in results) == [False, True]
        else:
            assert codes(results) == {"ok": 1, "coupon.already_redeemed": 1}, (mode, results)
        assert fresh(award).status == AwardStatus.PAID
        assert LedgerEntry.objects.filter(award=award, kind="disburse").count() == 1
    assert AuditEvent.objects.filter(action="coupon.redeemed").count() == 3
    assert fund_balances(default_fund(campaign))["paid"] == D("150.00")
    assert_books_balance()


def test_parallel_approvals_of_one_batch_are_one_transition(prize_world):
    world = prize_world
    card = payout_account(world.identity, world.consumer)
    for amount in ("1000.00", "300.00", "20.00"):
        award = instant_win(world.campaign, world.consumer, D(amount))
        services.award_claim(consumer=world.consumer, award=award, account=card)
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    checkers = [world.team.checker, world.team.checker2, staff("prizes.approve_payoutbatch")]
    # The maker holds the checker's permission too: the rule, not the permission, stops them.
    actors = [*checkers, grant(world.team.maker, "prizes.approve_payoutbatch")]

    results = race(
        4,
        lambda i: services.payout_batch_approve(
            batch=PayoutBatch.objects.get(pk=batch.pk), actor=actors[i]
        ),
    )
    outcome = codes(results)
    assert outcome["ok"] == 1 and outcome["batch.maker_is_checker"] == 1, results
    assert outcome["payout_batch.invalid_transition"] == 2
    assert all(isinstance(r, (PayoutBatch, InvalidTransition, PrizeError)) for r in results), (
        results
    )
    winner = next(actors[i] for i, r in enumerate(results) if isinstance(r, PayoutBatch))
    batch = fresh(batch)
    assert batch.approved_by == winner and winner != world.team.maker
    assert batch.status == BatchStatus.COMPLETED
    assert AuditEvent.objects.filter(action="payout_batch.approved").count() == 1
    assert AuditEvent.objects.filter(action="payout_batch.approve_refused").count() == 1
    for payout in batch.payouts.all():
        assert payout.status == PayoutStatus.PAID
        assert payout.history.filter(to_status="approved").count() == 1
        assert world.sandbox.executions.count(payout.request_no) == 1
    assert len(world.sandbox.executions) == 3
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_the_same_payout_sent_by_several_workers_at_once_is_paid_once(prize_world):
    world = prize_world
    award = instant_win(world.campaign, world.consumer, D("800.01"))
    payout = services.award_claim(
        consumer=world.consumer, award=award, account=payout_account(world.identity, world.consumer)
    )
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    with tax_authority_down():  # approved, but the send waits (re-verification unavailable)
        approve(batch, world.team.checker)
    assert fresh(payout).status == PayoutStatus.APPROVED

    # The queued task, its redelivery and the poller, all at once. (`get` without Celery's
    # eager-mode guard: another thread's eager `delay()` — e.g. the audit trail's monitoring
    # hook — sets that process-wide guard while it runs.)
    results = race(
        5,
        lambda i: (
            payout_send_task.apply(args=[payout.pk]).get(disable_sync_subtasks=False)
            if i % 2
            else services.payout_send(payout_id=payout.pk).status
        ),
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    payout = fresh(payout)
    assert payout.status == PayoutStatus.PAID
    assert world.sandbox.executions == [payout.request_no]
    assert LedgerEntry.objects.filter(payout=payout, kind="disburse").count() == 1
    assert payout.history.filter(to_status="paid").count() == 1
    assert payout.history.filter(to_status="sending").count() == 1
    # Replayed again, concurrently, after the fact: still one payment.
    race(3, lambda i: services.payout_refresh(payout_id=payout.pk).status)
    race(3, lambda i: services.payout_send(payout_id=payout.pk).status)
    assert world.sandbox.executions == [payout.request_no]
    assert_books_balance()
    assert_paid_once(world.sandbox)

    # A payout whose first send never reached the provider (UNKNOWN, NOT_FOUND on query):
    # several pollers ask at once; each may re-send, always under the one number.
    second = services.award_claim(
        consumer=world.consumer,
        award=instant_win(world.campaign, world.consumer, D("300.00")),
        account=payout.account,
    )
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)
    world.sandbox.control("error_5xx")
    approve(batch, world.team.checker)
    assert fresh(second).status == PayoutStatus.UNKNOWN
    assert second.request_no not in world.sandbox.executions
    results = race(4, lambda i: services.payout_refresh(payout_id=second.pk).status)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert fresh(second).status == PayoutStatus.PAID
    assert world.sandbox.executions == [payout.request_no, second.request_no]
    assert_books_balance()
    assert_paid_once(world.sandbox)


def test_parallel_reservations_take_exactly_what_the_fund_holds():
    prize, room, contenders = D("100.00"), 3, 8
    campaign = prize_campaign(prize * room)
    pool = instant_pool(campaign, amount=prize)
    tier = InstantTier.objects.get(pool=pool)
    InstantTier.objects.filter(pk=tier.pk).update(total_quantity=contenders, remaining=contenders)
    now = timezone.now()
    wins = [
        InstantAward.objects.create(
            invoice=entered_invoice(campaign, consumer),
            consumer=consumer,
            pool=pool,
            tier=tier,
            kind=tier.kind,
            amount=prize,
            day=timezone.localdate(),
            drawn_at=now,
        )
        for consumer in (ConsumerFactory() for _ in range(contenders))
    ]
    fund = default_fund(campaign)
    accounts = list(LedgerAccount.objects.filter(fund=fund).exclude(kind=AccountKind.FUNDING))
    seen_negative: list = []
    done = threading.Event()

    def watch():
        # Another session reading the balances throughout: never below zero, ever.
        try:
            while not done.is_set():
                for balance in LedgerAccount.objects.filter(
                    pk__in=[a.pk for a in accounts]
                ).values_list("balance", flat=True):
                    if balance < 0:
                        seen_negative.append(balance)
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()

    def reserve(i):
        with transaction.atomic():
            return services.award_create_for_instant(
                instant_award=InstantAward.objects.get(pk=wins[i].pk)
            )

    try:
        results = race(contenders, reserve)
    finally:
        done.set()
        watcher.join(timeout=10)
    assert codes(results) == {"ok": room, "fund.insufficient": contenders - room}, results
    assert Award.objects.count() == room
    balances = fund_balances(fund)
    assert (balances["available"], balances["reserved"]) == (D("0.00"), prize * room)
    assert seen_negative == []
    assert LedgerEntry.objects.filter(kind="reserve").count() == room
    assert ledger_verify() == []
    assert_books_balance()


def test_parallel_instant_draws_never_award_more_than_the_fund_holds():
    prize, room, contenders = D("50.00"), 2, 6
    campaign = prize_campaign(prize * room)
    pool = instant_pool(campaign, amount=prize)
    tier = InstantTier.objects.get(pool=pool)
    InstantTier.objects.filter(pk=tier.pk).update(total_quantity=contenders, remaining=contenders)
    InstantDailyQuota.objects.filter(tier=tier).update(quota=contenders)
    invoices = [entered_invoice(campaign, ConsumerFactory()) for _ in range(contenders)]
    results = race(contenders, lambda i: draws.instant_draw_for_entry(invoice=invoices[i]))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r is not None for r in results) == room
    assert Award.objects.count() == InstantAward.objects.count() == room
    # The tier's stock was not spent on prizes the fund could not pay.
    assert fresh(tier).remaining == contenders - room
    assert fund_balances(default_fund(campaign))["available"] == D("0.00")
    assert_books_balance()


def test_parallel_batch_preparations_never_share_a_payout(prize_world):
    world = prize_world
    card = payout_account(world.identity, world.consumer)
    others = [payee(world.identity) for _ in range(3)]
    for consumer in [world.consumer, *others]:
        for _ in range(2):
            account = (
                card if consumer == world.consumer else payout_account(world.identity, consumer)
            )
            award = instant_win(world.campaign, consumer, D("20.00"))
            services.award_claim(consumer=consumer, award=award, account=account)
    makers = [world.team.maker, staff("prizes.prepare_payoutbatch")]
    results = race(
        2, lambda i: services.payout_batch_prepare(campaign=world.campaign, actor=makers[i])
    )
    batches = [r for r in results if isinstance(r, PayoutBatch)]
    assert batches and all(
        isinstance(r, PayoutBatch) or getattr(r, "code", "") == "batch.empty" for r in results
    ), results
    assert sum(b.payout_count for b in batches) == 8
    assert not Payout.objects.filter(batch__isnull=True).exists()
    for batch in batches:
        assert fresh(batch).payouts.count() == batch.payout_count
