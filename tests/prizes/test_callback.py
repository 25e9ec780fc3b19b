"""The payment provider's callback endpoint, `POST /api/v1/payments/callback/`, fed with the
callbacks the sandbox gateway (127.0.0.1) really sent: a signed one settles the payout, a forged
or tampered one is 401 and changes nothing, a duplicate is harmless.

The callbacks reach a recording receiver first (`payment_callbacks`) whose path is our
endpoint's, then go to Django byte for byte, headers and all — the signature covers the path.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings
from django.utils import timezone

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditEvent
from apps.common.http import signed_headers
from apps.prizes import services
from apps.prizes.choices import AwardStatus, EntryKind, PayoutStatus
from apps.prizes.ledger import fund_balances, ledger_verify
from apps.prizes.models import LedgerEntry, Payout
from tests.accounts.helpers import make_staff
from tests.factories.core import ConsumerFactory
from tests.prizes.conftest import PAYMENT_CLIENT_TIMEOUT
from tests.prizes.test_api import ZHANG_ID, campaign_with_fund, verified_account, win

pytestmark = pytest.mark.django_db

CALLBACK = "/api/v1/payments/callback/"
SLOW_CARD = "6222020000000005009"  # the sandbox keeps it PROCESSING until settled by hand


@pytest.fixture
def client():
    """A client that, like a real caller from outside, gets CSRF checks."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def gateway(payment_sandbox, payment_callbacks):
    """The sandbox gateway, with callbacks addressed to our endpoint's path."""
    payment_callbacks.path = CALLBACK
    with override_settings(
        PAYMENT_GATEWAY_BASE_URL=payment_sandbox.url,
        PAYMENT_GATEWAY_CLIENT_ID=payment_sandbox.client_id,
        PAYMENT_GATEWAY_SECRET=payment_sandbox.secret,
        PAYMENT_GATEWAY_CALLBACK_SECRET=payment_sandbox.callback_secret,
        PAYMENT_GATEWAY_TIMEOUT=PAYMENT_CLIENT_TIMEOUT,
        PAYMENT_GATEWAY_NOTIFY_URL=payment_callbacks.url,
    ):
        yield payment_sandbox


def staff_in(role: str, username: str):
    user = make_staff(username)
    user.groups.add(Group.objects.get(name=ROLES_BY_CODE[role].group_name))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def processing(gateway, django_capture_on_commit_callbacks):
    """A 1000 CNY prize claimed, batched by a maker, approved by a checker and sent: the
    sandbox answered PROCESSING."""
    campaign = campaign_with_fund()
    consumer = ConsumerFactory(real_name="张三", id_number=ZHANG_ID)
    award = win(consumer, campaign, amount=Decimal("1000.00"))
    account = verified_account(consumer, SLOW_CARD)
    services.award_claim(consumer=consumer, award=award, account=account)
    batch = services.payout_batch_prepare(
        campaign=campaign, actor=staff_in("finance_maker", "maker")
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.payout_batch_approve(batch=batch, actor=staff_in("finance_checker", "checker"))
    payout = Payout.objects.get(award=award)
    assert payout.status == PayoutStatus.PROCESSING, payout.status
    assert gateway.transfer(payout.request_no)["status"] == "PROCESSING"
    return payout


def deliver(client, received, *, body: bytes | None = None):
    """Hand a callback the receiver recorded to our endpoint exactly as it arrived."""
    headers = {k: v for k, v in received.headers.items() if k.lower().startswith("x-")}
    return client.generic(
        received.method,
        received.path,
        data=received.body if body is None else body,
        content_type=received.headers.get("Content-Type", "application/json"),
        headers=headers,
    )


def money_moved(payout) -> int:
    return LedgerEntry.objects.filter(
        payout=payout, kind__in=[EntryKind.DISBURSE, EntryKind.WITHHOLD_TAX]
    ).count()


def test_a_signed_callback_settles_the_payout(client, gateway, payment_callbacks, processing):
    payout = processing
    fund = payout.award.fund
    before = fund_balances(fund)
    gateway.settle(payout.request_no, "SUCCESS")
    (received,) = payment_callbacks.wait_for(1)
    assert received.path == CALLBACK
    response = deliver(client, received)
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID and payout.finished_at and payout.provider_ref
    assert payout.history.filter(to_status=PayoutStatus.PAID, via="callback").count() == 1
    award = payout.award
    award.refresh_from_db()
    assert award.status == AwardStatus.PAID
    after = fund_balances(fund)
    assert before["reserved"] - after["reserved"] == Decimal("1000.00")
    assert after["paid"] - before["paid"] == Decimal("800.00")
    assert after["tax_withheld"] - before["tax_withheld"] == Decimal("200.00")
    assert ledger_verify() == []
    payout.batch.refresh_from_db()
    assert payout.batch.status == "completed"


def test_a_failed_transfer_returns_the_prize_to_its_winner(
    client, gateway, payment_callbacks, processing
):
    payout = processing
    gateway.settle(payout.request_no, "FAILED", fail_code="account_closed")
    assert deliver(client, payment_callbacks.wait_for(1)[0]).status_code == 200
    payout.refresh_from_db()
    assert (payout.status, payout.fail_code) == (PayoutStatus.FAILED, "account_closed")
    payout.award.refresh_from_db()
    assert payout.award.status == AwardStatus.PAYABLE
    assert money_moved(payout) == 0
    assert fund_balances(payout.award.fund)["reserved"] == Decimal("1000.00")


def test_a_forged_callback_is_401_and_changes_nothing(
    client, gateway, payment_callbacks, processing
):
    payout = processing
    gateway.control("forged_callback", times=1, status="SUCCESS", genuine=False)
    gateway.settle(payout.request_no, "FAILED", fail_code="account_closed")
    (forged,) = payment_callbacks.wait_for(1)
    assert b'"SUCCESS"' in forged.body
    response = deliver(client, forged)
    assert response.status_code == 401
    assert response.json() == {"error": "bad_signature"}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PROCESSING
    assert money_moved(payout) == 0


def test_a_tampered_or_unsigned_callback_is_401(client, gateway, payment_callbacks, processing):
    payout = processing
    gateway.settle(payout.request_no, "FAILED", fail_code="account_closed")
    (genuine,) = payment_callbacks.wait_for(1)
    tampered = genuine.body.replace(b'"FAILED"', b'"SUCCESS"')
    assert tampered != genuine.body
    assert deliver(client, genuine, body=tampered).status_code == 401
    unsigned = client.post(CALLBACK, genuine.body, content_type="application/json")
    assert unsigned.status_code == 401 and unsigned.json() == {"error": "missing_signature"}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PROCESSING and money_moved(payout) == 0
    # The genuine one still works (the rejected ones did not burn its nonce).
    assert deliver(client, genuine).status_code == 200
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED
    assert client.get(CALLBACK).status_code == 405


def test_duplicate_callbacks_are_harmless(client, gateway, payment_callbacks, processing):
    payout = processing
    gateway.control("duplicate_callback", times=1)
    gateway.settle(payout.request_no, "SUCCESS")
    first, second = payment_callbacks.wait_for(2)[:2]
    assert first.headers["X-Nonce"] != second.headers["X-Nonce"]
    assert deliver(client, first).status_code == 200
    assert deliver(client, second).status_code == 200  # freshly signed: accepted, no effect
    # The very same bytes again are a replay (nonce remembered): refused, no effect either.
    replayed = deliver(client, first)
    assert replayed.status_code == 401 and replayed.json() == {"error": "replayed_nonce"}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert payout.history.filter(to_status=PayoutStatus.PAID).count() == 1
    assert money_moved(payout) == 2  # disbursed once, tax withheld once
    assert len(gateway.paid()) == 1
    assert ledger_verify() == []


def provider_callback(client, gateway, payload: dict, *, timestamp=None):
    """A callback signed with the provider's real callback secret (what only it can send)."""
    body = json.dumps(payload).encode()
    headers = signed_headers(
        client_id=gateway.client_id,
        secret=gateway.callback_secret,
        method="POST",
        path=CALLBACK,
        body=body,
        timestamp=timestamp,
    )
    return client.generic(
        "POST", CALLBACK, data=body, content_type="application/json", headers=headers
    )


def transfer_object(payout, **fields) -> dict:
    return {
        "request_no": payout.request_no,
        "status": "SUCCESS",
        "provider_ref": "SBX-HAND-1",
        "amount": str(payout.amount),
        "fail_code": "",
        "fail_message": "",
        "finished_at": timezone.localtime().isoformat(),
        **fields,
    }


def test_unknown_stale_and_malformed_callbacks(client, gateway, processing):
    payout = processing
    unknown = provider_callback(
        client, gateway, transfer_object(payout, request_no="PO-NOT-OURS-1")
    )
    assert unknown.status_code == 404 and unknown.json() == {"error": "unknown_request_no"}
    stale = provider_callback(client, gateway, transfer_object(payout), timestamp=time.time() - 900)
    assert stale.status_code == 401 and stale.json() == {"error": "stale_timestamp"}
    malformed = provider_callback(client, gateway, {"request_no": payout.request_no})
    assert malformed.status_code == 401 and malformed.json() == {"error": "bad_body"}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PROCESSING and money_moved(payout) == 0


def test_a_callback_with_another_amount_is_flagged_and_never_booked(client, gateway, processing):
    payout = processing
    response = provider_callback(client, gateway, transfer_object(payout, amount="8000.00"))
    assert response.status_code == 200
    flagged = AuditEvent.objects.get(action="payout.amount_mismatch")
    assert flagged.after["provider"] == "8000.00" and flagged.after["via"] == "callback"
    disbursed = LedgerEntry.objects.get(payout=payout, kind=EntryKind.DISBURSE)
    assert disbursed.amount == Decimal("800.00")  # our amount, never the provider's
    assert ledger_verify() == []
