"""Runbook drill "payment gateway down": the provider's endpoint stops answering (the local
sandbox is shut down; connections are refused) while a checker approves a batch.

What the runbook promises: approving still works, no money is believed paid, nothing is
paid twice, the books balance throughout, and once the provider is back the minute poller
(`payouts_poll`) sends every approved payout exactly once — nobody re-approves anything.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from apps.prizes import services
from apps.prizes.choices import BatchStatus, PayoutStatus
from apps.prizes.models import Payout
from tests.ops.conftest import closed_port
from tests.prizes.conftest import (  # noqa: F401 - fixtures
    finance,
    identity_sandbox,
    payment_callbacks,
    payment_gateway_settings,
    prize_world,
)
from tests.prizes.helpers import (
    approve,
    assert_books_balance,
    assert_paid_once,
    fresh,
    instant_win,
    payout_account,
)
from tools.sandbox.payment_gateway import PaymentSandbox

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def payment_sandbox():
    """The sandbox on a fixed port, so that it can be stopped and started again there."""
    sandbox = PaymentSandbox(
        secret="sandbox-payment-secret-0123456789",
        callback_secret="sandbox-callback-secret-0123456789",
        processing_seconds=0.3,
        callback_delay=0.0,
        callback_retry_seconds=0.05,
        port=closed_port(),
    )
    with sandbox:
        yield sandbox


def test_payouts_wait_for_the_gateway_and_are_paid_once_when_it_returns(prize_world):  # noqa: F811
    world = prize_world
    card = payout_account(world.identity, world.consumer, "4321")
    for amount in ("1000.00", "20.00", "35.50"):
        award = instant_win(world.campaign, world.consumer, Decimal(amount))
        services.award_claim(consumer=world.consumer, award=award, account=card)
    batch = services.payout_batch_prepare(campaign=world.campaign, actor=world.team.maker)

    world.sandbox.stop()  # the provider is down: connection refused
    approve(batch, world.team.checker)  # the queued sends run now, and fail to connect
    assert fresh(batch).status == BatchStatus.APPROVED
    down = set(Payout.objects.filter(batch=batch).values_list("status", flat=True))
    assert PayoutStatus.PAID not in down
    assert down <= {PayoutStatus.APPROVED, PayoutStatus.UNKNOWN, PayoutStatus.SENDING}
    assert world.sandbox.executions == []
    assert_books_balance()
    # The poller keeps trying while it is down and changes nothing.
    services.payouts_poll(older_than_seconds=0)
    assert PayoutStatus.PAID not in set(
        Payout.objects.filter(batch=batch).values_list("status", flat=True)
    )

    world.sandbox.start()  # the provider is back, same address
    for _ in range(20):  # the minute poller, run back to back (transfers settle in 0.3 s)
        services.payouts_poll(older_than_seconds=0)
        statuses = set(Payout.objects.filter(batch=batch).values_list("status", flat=True))
        if statuses == {PayoutStatus.PAID}:
            break
        time.sleep(0.25)
    assert statuses == {PayoutStatus.PAID}
    assert fresh(batch).status == BatchStatus.COMPLETED
    assert len(world.sandbox.executions) == 3
    assert_books_balance()
    assert_paid_once(world.sandbox)
