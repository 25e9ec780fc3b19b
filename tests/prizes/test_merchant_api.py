"""The merchant API for coupons: check, redeem (once; the merchant's reference makes a retry a
no-op), and the redemption report — all through Ed25519-signed requests with per-merchant keys.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from apps.accounts.merchant_keys import merchant_key_issue, sign_merchant_request
from apps.accounts.models import MerchantKeyScope
from apps.audit.models import AuditEvent
from apps.prizes import services
from apps.prizes.choices import AwardStatus, CouponStatus, EntryKind
from apps.prizes.ledger import fund_balances, ledger_verify
from apps.prizes.models import Coupon, LedgerEntry
from tests.factories.core import ConsumerFactory, MerchantFactory
from tests.prizes.test_api import campaign_with_fund, sponsor_fund, win

pytestmark = pytest.mark.django_db

CHECK = "/api/v1/merchant/coupons/check/"
REDEEM = "/api/v1/merchant/coupons/redeem/"
REPORT = "/api/v1/merchant/redemptions/"
ALL_SCOPES = [s.value for s in MerchantKeyScope]


def issue(merchant, scopes=ALL_SCOPES):
    return merchant_key_issue(merchant=merchant, label="till 1", scopes=scopes, actor=None)


def call(client, issued, target, payload=None, *, method=None, sign_with=None, tamper=None):
    """One signed request, as a merchant's client makes it (`sign_with`: another key's private
    half; `tamper`: the body actually sent differs from the one signed)."""
    method = method or ("POST" if payload is not None else "GET")
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = sign_merchant_request(
        key_id=issued.key.key_id,
        token=issued.token,
        private_key_pem=sign_with or issued.private_key_pem,
        method=method,
        path=target,
        body=body,
    )
    sent = json.dumps(tamper).encode() if tamper is not None else body
    return client.generic(
        method, target, data=sent, content_type="application/json", headers=headers
    )


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"} and body["code"] == code, body
    return body


@pytest.fixture
def client():
    """A client that, like a real caller from outside, gets CSRF checks."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def campaign(db):
    return campaign_with_fund()


@pytest.fixture
def shop(db):
    return MerchantFactory(industry_code="5211")


@pytest.fixture
def other_shop(db):
    return MerchantFactory(industry_code="5211")


@pytest.fixture
def key(shop):
    return issue(shop)


@pytest.fixture
def other_key(other_shop):
    return issue(other_shop)


@pytest.fixture
def consumer(db):
    return ConsumerFactory(real_name="张三")


@pytest.fixture
def coupon_award(consumer, campaign):
    return win(
        consumer, campaign, kind="coupon", amount=Decimal("30.00"), min_spend=Decimal("100.00")
    )


def code_of(award) -> str:
    return str(Coupon.objects.get(award=award).code)


def redeem(client, issued, award_or_code, *, reference="TILL-0001", amount="150.00", **kw):
    code = award_or_code if isinstance(award_or_code, str) else code_of(award_or_code)
    payload = {"code": code, "purchase_amount": amount, "reference": reference}
    return call(client, issued, REDEEM, payload, **kw)


# --- Check ------------------------------------------------------------------------------------


def test_check_shows_value_and_conditions_never_the_owner(client, key, coupon_award):
    code = code_of(coupon_award)
    response = call(client, key, CHECK, {"code": code.lower()})  # codes are case-insensitive
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["code_ends_with"] == code[-4:]
    assert (body["face_value"], body["min_spend"], body["status"]) == ("30.00", "100.00", "issued")
    assert code.encode() not in response.content
    assert "张三".encode() not in response.content
    assert Coupon.objects.get(award=coupon_award).status == CouponStatus.ISSUED  # no change
    assert_error(call(client, key, CHECK, {"code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ"}), 404, "coupon.not_found")


# --- Redeem -----------------------------------------------------------------------------------


def test_redeem_once_and_a_replay_with_the_same_reference(client, key, shop, coupon_award):
    fund = coupon_award.fund
    before = fund_balances(fund)
    first = redeem(client, key, coupon_award)
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["replayed"] is False
    assert (
        body["coupon"]["status"] == "redeemed" and body["coupon"]["redemption_ref"] == "TILL-0001"
    )
    assert body["coupon"]["purchase_amount"] == "150.00"
    coupon = Coupon.objects.get(award=coupon_award)
    assert coupon.redeemed_by == shop and coupon.redeemed_key_id == key.key.key_id
    coupon_award.refresh_from_db()
    assert coupon_award.status == AwardStatus.PAID and coupon_award.paid_at
    after = fund_balances(fund)
    assert before["reserved"] - after["reserved"] == Decimal("30.00")
    assert after["paid"] - before["paid"] == Decimal("30.00")

    # The till retries (fresh nonce, same reference): the first result, no second effect.
    replay = redeem(client, key, coupon_award)
    assert replay.status_code == 200, replay.content
    assert replay.json()["replayed"] is True
    assert replay.json()["coupon"] == body["coupon"]
    assert LedgerEntry.objects.filter(award=coupon_award, kind=EntryKind.DISBURSE).count() == 1
    assert AuditEvent.objects.filter(action="coupon.redeemed").count() == 1
    assert fund_balances(fund) == after
    assert ledger_verify() == []


def test_already_redeemed_is_409(client, key, other_key, coupon_award):
    assert redeem(client, key, coupon_award).status_code == 200
    assert_error(
        redeem(client, key, coupon_award, reference="TILL-0002"), 409, "coupon.already_redeemed"
    )
    # Another merchant replaying "our" reference is not a replay.
    assert_error(redeem(client, other_key, coupon_award), 409, "coupon.already_redeemed")
    assert_error(
        call(client, key, CHECK, {"code": code_of(coupon_award)}), 409, "coupon.already_redeemed"
    )
    assert LedgerEntry.objects.filter(award=coupon_award, kind=EntryKind.DISBURSE).count() == 1


def test_a_reference_is_used_for_one_coupon_only(client, key, consumer, campaign, coupon_award):
    second = win(consumer, campaign, kind="voucher", amount=Decimal("10.00"))
    assert redeem(client, key, coupon_award).status_code == 200
    assert_error(redeem(client, key, second), 409, "coupon.reference_reused")
    assert Coupon.objects.get(award=second).status == CouponStatus.ISSUED


def test_sponsor_scoped_coupon_only_at_the_sponsor(
    client, key, other_key, shop, consumer, campaign
):
    sponsor_fund(campaign, shop)
    scoped = win(consumer, campaign, kind="coupon", amount=Decimal("20.00"), sponsor=shop)
    assert Coupon.objects.get(award=scoped).merchant == shop
    assert scoped.fund.sponsor == shop
    assert_error(
        call(client, other_key, CHECK, {"code": code_of(scoped)}), 409, "coupon.wrong_merchant"
    )
    assert_error(redeem(client, other_key, scoped), 409, "coupon.wrong_merchant")
    assert Coupon.objects.get(award=scoped).status == CouponStatus.ISSUED
    assert redeem(client, key, scoped).status_code == 200


def test_conditions_of_use(client, key, consumer, campaign, coupon_award):
    body = assert_error(redeem(client, key, coupon_award, amount="99.99"), 409, "coupon.min_spend")
    assert body["detail"] == {"min_spend": "100.00"}
    catering = win(consumer, campaign, kind="coupon", amount=Decimal("5.00"), valid_industries="62")
    assert_error(redeem(client, key, catering, reference="T-2"), 409, "coupon.wrong_industry")
    cancelled = win(consumer, campaign, kind="coupon", amount=Decimal("5.00"))
    services.award_cancel(award=cancelled, reason="fraud")
    assert_error(redeem(client, key, cancelled, reference="T-3"), 409, "coupon.cancelled")
    expiring = win(consumer, campaign, kind="coupon", amount=Decimal("5.00"), valid_days=1)
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert_error(redeem(client, key, expiring, reference="T-4"), 409, "coupon.expired")
    assert_error(
        call(
            client,
            key,
            REDEEM,
            {"code": code_of(expiring), "purchase_amount": "-1", "reference": "x"},
        ),
        400,
        "request.invalid",
    )
    assert not Coupon.objects.filter(status=CouponStatus.REDEEMED).exists()


def test_redeem_needs_its_scope(client, shop, coupon_award):
    read_only = issue(shop, scopes=[MerchantKeyScope.COUPONS_READ])
    assert call(client, read_only, CHECK, {"code": code_of(coupon_award)}).status_code == 200
    assert_error(redeem(client, read_only, coupon_award), 403, "merchant_auth.scope_missing")
    assert_error(call(client, read_only, REPORT), 403, "merchant_auth.scope_missing")
    redeem_only = issue(shop, scopes=[MerchantKeyScope.COUPONS_REDEEM])
    assert_error(
        call(client, redeem_only, CHECK, {"code": code_of(coupon_award)}),
        403,
        "merchant_auth.scope_missing",
    )
    assert Coupon.objects.get(award=coupon_award).status == CouponStatus.ISSUED


def test_unsigned_and_forged_requests_are_401_and_change_nothing(
    client, key, other_key, coupon_award
):
    code = code_of(coupon_award)
    payload = {"code": code, "purchase_amount": "150.00", "reference": "TILL-9"}
    unsigned = client.post(REDEEM, payload, content_type="application/json")
    assert_error(unsigned, 401, "merchant_auth.missing_headers")
    # Signed with another merchant's private key under this key's id and token.
    forged = redeem(client, key, coupon_award, sign_with=other_key.private_key_pem)
    assert_error(forged, 401, "merchant_auth.bad_signature")
    # A correctly signed body swapped for another in transit.
    swapped = call(client, key, REDEEM, payload, tamper={**payload, "purchase_amount": "1000.00"})
    assert_error(swapped, 401, "merchant_auth.bad_signature")
    # A back-office or consumer session opens nothing here.
    client.force_login(ConsumerFactory().user)
    assert_error(
        client.post(REDEEM, payload, content_type="application/json"),
        401,
        "merchant_auth.missing_headers",
    )
    assert Coupon.objects.get(award=coupon_award).status == CouponStatus.ISSUED
    assert not LedgerEntry.objects.filter(award=coupon_award, kind=EntryKind.DISBURSE).exists()


# --- Redemption report ------------------------------------------------------------------------


def test_report_lists_only_my_redemptions(client, key, other_key, consumer, campaign):
    mine = [win(consumer, campaign, kind="coupon", amount=Decimal(v)) for v in ("10.00", "25.50")]
    theirs = win(consumer, campaign, kind="voucher", amount=Decimal("99.00"))
    for n, award in enumerate(mine):
        assert redeem(client, key, award, reference=f"MINE-{n}").status_code == 200
    assert redeem(client, other_key, theirs, reference="THEIRS-1").status_code == 200
    response = call(client, key, REPORT)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["count"], body["value"]) == (2, "35.50")
    assert sorted(r["redemption_ref"] for r in body["redemptions"]) == ["MINE-0", "MINE-1"]
    assert b"THEIRS-1" not in response.content
    for award in mine:
        assert code_of(award).encode() not in response.content
    theirs_report = call(client, other_key, REPORT).json()
    assert (theirs_report["count"], theirs_report["value"]) == (1, "99.00")
    # A period (the query string is part of what is signed).
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    empty = call(client, key, f"{REPORT}?{urlencode({'since': later})}")
    assert empty.status_code == 200, empty.content
    assert (empty.json()["count"], empty.json()["redemptions"]) == (0, [])
    until = call(client, key, f"{REPORT}?{urlencode({'until': later})}")
    assert until.json()["count"] == 2
    naive = timezone.localtime().replace(tzinfo=None) + timedelta(hours=1)
    assert call(client, key, f"{REPORT}?until={naive.isoformat()}").json()["count"] == 2


@pytest.mark.parametrize("since", ["yesterday", "2026-13-45T00:00:00", "2026-03-01T25:00:00"])
def test_report_period_that_cannot_be_read_is_400(client, key, since):
    response = call(client, key, f"{REPORT}?{urlencode({'since': since})}")
    body = assert_error(response, 400, "request.invalid")
    assert "since" in body["detail"]
