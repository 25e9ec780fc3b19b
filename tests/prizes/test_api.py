"""The consumer prize API: my awards (with history), my coupons (codes for their owner only),
payout accounts checked against the identity service (sandbox on 127.0.0.1), claims with
Idempotency-Key, my payouts; every refusal in the `{"code", "message", "detail"}` shape.

The builders at the top (`win`, `accepted_invoice`, `sponsor_fund` …) are shared with the
merchant, callback and admin tests of this package.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.accounts.models import Consumer
from apps.common import crypto
from apps.common.pii import normalize_for_index
from apps.draws.models import InstantAward, InstantPool, InstantTier
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import TaxInvoiceRecord
from apps.prizes import services
from apps.prizes.choices import (
    AwardStatus,
    FundSource,
    PayoutAccountStatus,
    PayoutStatus,
)
from apps.prizes.ledger import fund_accounts_ensure, fund_balances, fund_deposit, ledger_verify
from apps.prizes.models import Award, Fund, Payout, PayoutAccount
from tests.accounts.test_consumer_login import sign_in, sms  # noqa: F401  (fixture)
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    InvoiceFactory,
    UserFactory,
    funded_default_fund,
    make_resident_id,
)
from tools.sandbox.identity_service import IdentitySandbox

pytestmark = pytest.mark.django_db

AWARDS = "/api/v1/me/awards/"
COUPONS = "/api/v1/me/coupons/"
ACCOUNTS = "/api/v1/me/payout-accounts/"
PAYOUTS = "/api/v1/me/payouts/"

ZHANG_ID = make_resident_id(4_101)
LI_ID = make_resident_id(4_102)
ZHANG_CARD = "6222020000000000011"  # the payment sandbox pays it at once
ZHANG_WALLET = "zhangsan-wallet-01"
LI_CARD = "6222020000000000012"
CJK = re.compile(r"[\u4e00-\u9fff]")

_keys = itertools.count(1)
_pools = itertools.count(1)


# --- Builders shared by the prizes API and admin tests -------------------------------------------


def campaign_with_fund(amount: Decimal = Decimal("1000000.00")):
    campaign = CampaignFactory()
    funded_default_fund(campaign, amount)
    return campaign


def sponsor_fund(campaign, merchant, amount: Decimal = Decimal("10000.00")) -> Fund:
    """A merchant-sponsored fund (联动商家投入) with `amount` deposited."""
    fund = Fund.objects.create(
        campaign=campaign,
        name=f"{merchant.name} 赞助",
        source=FundSource.MERCHANT,
        sponsor=merchant,
    )
    fund_accounts_ensure(fund)
    fund_deposit(fund=fund, amount=amount, key=f"deposit:sponsor:{fund.pk}", memo="t", actor=None)
    return fund


def accepted_invoice(consumer, campaign, *, total: Decimal = Decimal("200.00"), registry=True):
    """An entered invoice of `consumer`; with `registry`, the tax authority's record of it (so a
    re-verification before payout finds it normal)."""
    invoice = InvoiceFactory(
        consumer=consumer,
        campaign=campaign,
        status=InvoiceStatus.ACCEPTED,
        entered_at=timezone.now(),
        total=total,
        amount=None,
        tax=None,
    )
    if registry:
        issued_at = timezone.make_aware(datetime.combine(invoice.issue_date, time(12, 0)))
        TaxInvoiceRecord.objects.create(
            number=invoice.number,
            issued_at=issued_at,
            seller_uscc=invoice.seller_uscc,
            seller_name="郑州测试商贸有限公司",
            buyer_name_index=crypto.blind_index(
                "name", normalize_for_index("name", consumer.real_name)
            ),
            amount=total,
            tax=Decimal("0.00"),
            total=total,
            industry_code="5211",
            area_code="410105",
            last_synced_at=timezone.now(),
        )
    return invoice


def win(
    consumer,
    campaign,
    *,
    kind: str = "cash",
    amount: Decimal = Decimal("100.00"),
    sponsor=None,
    held: bool = False,
    min_spend: Decimal | None = None,
    valid_industries: str = "",
    valid_days: int | None = 30,
    invoice=None,
) -> Award:
    """An instant-draw win turned into an award by the real service (which reserves its value
    and, for coupons and vouchers, issues the code)."""
    now = timezone.now()
    pool = InstantPool.objects.create(
        campaign=campaign,
        name=f"pool {next(_pools)}",
        sponsor=sponsor,
        active_from=now - timedelta(days=1),
        active_until=now + timedelta(days=60),
    )
    tier = InstantTier.objects.create(
        pool=pool,
        name="一等奖" if kind == "cash" else "消费券",
        kind=kind,
        face_value=amount,
        total_quantity=10,
        remaining=9,
        min_spend=min_spend,
        valid_industries=valid_industries,
        valid_days=valid_days,
    )
    instant = InstantAward.objects.create(
        invoice=invoice or accepted_invoice(consumer, campaign),
        consumer=consumer,
        pool=pool,
        tier=tier,
        kind=kind,
        amount=amount,
        day=timezone.localdate(),
        drawn_at=now,
        payable_after=now + timedelta(days=7) if held else None,
    )
    return services.award_create_for_instant(instant_award=instant)


def verified_account(consumer, number: str = ZHANG_CARD) -> PayoutAccount:
    """A payout account registered through the service (the local identity backend checks form
    only; the API tests below use the identity sandbox)."""
    return services.payout_account_register(consumer=consumer, kind="bank_card", account_no=number)


def consumer_client(consumer) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=consumer.user)
    return client


def post(client, url, body, key: str | None = "fresh", **extra):
    if key == "fresh":
        key = f"prize-test-key-{next(_keys):06d}"
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(url, body, format="json", **extra)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    assert body["code"] == code, body
    assert body["message"] and isinstance(body["detail"], dict)
    return body


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def campaign(db):
    return campaign_with_fund()


@pytest.fixture
def zhang(db):
    return ConsumerFactory(real_name="张三", id_number=ZHANG_ID)


@pytest.fixture
def li(db):
    return ConsumerFactory(real_name="李四", id_number=LI_ID)


@pytest.fixture
def api(zhang):
    return consumer_client(zhang)


@pytest.fixture
def identity():
    """The identity service sandbox on 127.0.0.1, wired in through the HTTP backend."""
    with (
        IdentitySandbox(
            people={ZHANG_ID: ("张三", None), LI_ID: ("李四", None)},
            accounts={
                ("bank_card", ZHANG_CARD): ZHANG_ID,
                ("wallet", ZHANG_WALLET): ZHANG_ID,
                ("bank_card", LI_CARD): LI_ID,
            },
        ) as sandbox,
        override_settings(
            IDENTITY_VERIFIER_BACKEND="http",
            IDENTITY_VERIFIER_URL=sandbox.base_url,
            IDENTITY_VERIFIER_CLIENT_ID=sandbox.client_id,
            IDENTITY_VERIFIER_SECRET=sandbox.secret,
            IDENTITY_VERIFIER_TIMEOUT=1.0,
        ),
    ):
        yield sandbox


# --- My awards --------------------------------------------------------------------------------


def test_my_awards_newest_first_with_tax_and_coupon(api, zhang, li, campaign):
    cash = win(zhang, campaign, amount=Decimal("1000.00"))
    coupon = win(zhang, campaign, kind="coupon", amount=Decimal("20.00"))
    win(li, campaign)  # someone else's
    response = api.get(AWARDS)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["count"] == 2
    assert [a["id"] for a in body["results"]] == [str(coupon.public_id), str(cash.public_id)]
    listed_cash = body["results"][1]
    # Above 800 CNY the whole prize is taxed at 20% (财税〔2007〕34号).
    assert (listed_cash["amount"], listed_cash["tax_withheld"], listed_cash["net_amount"]) == (
        "1000.00",
        "200.00",
        "800.00",
    )
    assert listed_cash["status"] == "payable" and listed_cash["coupon"] is None
    assert listed_cash["claim_until"]
    listed_coupon = body["results"][0]
    assert listed_coupon["coupon"]["code"] == str(coupon.coupon.code)
    assert listed_coupon["tax_withheld"] == "0.00"
    assert "history" not in listed_cash  # the list is light; the detail has the history


def test_award_detail_has_history(api, zhang, campaign):
    held = win(zhang, campaign, held=True)
    response = api.get(f"{AWARDS}{held.public_id}/")
    assert response.status_code == 200
    detail = response.json()
    assert detail["status"] == "held" and detail["payable_after"]
    assert [(h["from_status"], h["to_status"]) for h in detail["history"]] == [("", "held")]
    services.award_cancel(award=held, reason="invoice.red_flushed")
    detail = api.get(f"{AWARDS}{held.public_id}/").json()
    assert detail["status"] == "cancelled" and detail["status_reason"] == "invoice.red_flushed"
    assert [(h["to_status"], h["reason"]) for h in detail["history"]] == [
        ("held", "awarded"),
        ("cancelled", "invoice.red_flushed"),
    ]


def test_another_consumers_award_is_404(api, li, campaign):
    theirs = win(li, campaign)
    body = assert_error(api.get(f"{AWARDS}{theirs.public_id}/"), 404, "not_found")
    assert str(theirs.public_id) not in str(body)
    assert_error(api.get(f"{AWARDS}not-a-uuid/"), 404, "not_found")
    for method in ("put", "patch", "delete"):
        assert getattr(api, method)(f"{AWARDS}{theirs.public_id}/", {}).status_code in (404, 405)


def test_anonymous_staff_and_frozen_consumers_are_refused(zhang, campaign):
    award = win(zhang, campaign)
    for url in (AWARDS, COUPONS, ACCOUNTS, PAYOUTS):
        assert_error(APIClient().get(url), 401, "auth.not_authenticated")
    staff = APIClient()
    staff.force_authenticate(UserFactory(is_staff=True))
    assert_error(staff.get(AWARDS), 403, "consumer.required")
    Consumer.objects.filter(pk=zhang.pk).update(status=ConsumerStatus.FROZEN)
    frozen = consumer_client(Consumer.objects.get(pk=zhang.pk))  # a fresh user and profile
    assert_error(frozen.get(AWARDS), 403, "consumer.frozen")
    account = PayoutAccount.objects.create(
        consumer=zhang,
        kind="bank_card",
        account_no=ZHANG_CARD,
        account_last4=ZHANG_CARD[-4:],
        status=PayoutAccountStatus.VERIFIED,
    )
    claimed = post(frozen, f"{AWARDS}{award.public_id}/claim/", {"account": str(account.public_id)})
    assert_error(claimed, 403, "consumer.frozen")
    assert not Payout.objects.exists()


def test_signed_in_with_the_app_session_token(client, sms, campaign):  # noqa: F811
    token = sign_in(client, sms, "13912340001")
    consumer = Consumer.objects.get()
    consumer.real_name, consumer.id_number = "张三", ZHANG_ID
    consumer.verification_status = VerificationStatus.VERIFIED
    consumer.verified_at = timezone.now()
    consumer.save()
    award = win(consumer, campaign)
    response = client.get(AWARDS, HTTP_X_SESSION_TOKEN=token)
    assert response.status_code == 200, response.content
    assert [a["id"] for a in response.json()["results"]] == [str(award.public_id)]
    assert client.get(AWARDS, HTTP_X_SESSION_TOKEN="f" * 32).status_code == 401


# --- My coupons -------------------------------------------------------------------------------


def test_coupon_code_is_shown_to_its_owner_only(api, zhang, li, campaign):
    coupon_award = win(zhang, campaign, kind="voucher", amount=Decimal("50.00"))
    code = str(coupon_award.coupon.code)
    assert re.fullmatch(r"[2-9A-Z]{4}(-[2-9A-Z]{4}){3}", code)
    mine = api.get(COUPONS).json()
    assert mine["count"] == 1
    listed = mine["results"][0]
    assert listed["code"] == code and listed["face_value"] == "50.00"
    assert listed["status"] == "issued" and listed["valid_until"]
    theirs = consumer_client(li).get(COUPONS)
    assert theirs.json()["count"] == 0
    assert code.encode() not in theirs.content
    other_award = consumer_client(li).get(f"{AWARDS}{coupon_award.public_id}/")
    assert other_award.status_code == 404 and code.encode() not in other_award.content
    # Stored encrypted: the plain code is nowhere in the table.
    with connection.cursor() as cur:
        cur.execute("SELECT code, code_index FROM prizes_coupon")
        assert all(code not in " ".join(map(str, row)) for row in cur.fetchall())


# --- Payout accounts --------------------------------------------------------------------------


def test_register_own_account_after_identity_check(api, zhang, identity):
    response = post(api, ACCOUNTS, {"kind": "bank_card", "account_no": "6222 0200 0000 0000 011"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "verified" and body["account_no"] == "****0011"
    assert body["verified_at"]
    assert ZHANG_CARD.encode() not in response.content
    sent = identity.last_request.json()
    assert identity.last_request.path == "/v1/identity/account-verify"
    assert (sent["name"], sent["id_number"], sent["account_no"]) == ("张三", ZHANG_ID, ZHANG_CARD)
    listed = api.get(ACCOUNTS)
    assert [a["account_no"] for a in listed.json()["results"]] == ["****0011"]
    assert ZHANG_CARD.encode() not in listed.content
    # The same account again is the same row (no second check needed).
    again = post(api, ACCOUNTS, {"kind": "bank_card", "account_no": ZHANG_CARD})
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    assert PayoutAccount.objects.count() == 1
    with connection.cursor() as cur:
        cur.execute("SELECT account_no FROM prizes_payoutaccount")
        assert ZHANG_CARD not in cur.fetchone()[0]


def test_wallet_in_own_name(api, identity):
    response = post(api, ACCOUNTS, {"kind": "wallet", "account_no": ZHANG_WALLET})
    assert response.status_code == 201, response.content
    assert response.json()["account_no"] == "****t-01"
    assert ZHANG_WALLET.encode() not in response.content


def test_someone_elses_account_is_ownership_failed(api, zhang, identity):
    response = post(api, ACCOUNTS, {"kind": "bank_card", "account_no": LI_CARD})
    body = assert_error(response, 400, "account.ownership_failed")
    assert body["detail"] == {"code": "mismatch"}
    assert LI_CARD.encode() not in response.content
    # Recorded as rejected (masked), never usable for a claim.
    rejected = PayoutAccount.objects.get(consumer=zhang)
    assert rejected.status == PayoutAccountStatus.REJECTED and rejected.verified_at is None
    listed = api.get(ACCOUNTS).json()["results"]
    assert [(a["status"], a["account_no"]) for a in listed] == [("rejected", "****0012")]


def test_account_checks_that_cannot_happen(api, zhang, identity):
    assert_error(
        post(api, ACCOUNTS, {"kind": "bank_card", "account_no": "12AB"}),
        400,
        "account.invalid_number",
    )
    assert_error(
        post(api, ACCOUNTS, {"kind": "alipay", "account_no": ZHANG_CARD}), 400, "request.invalid"
    )
    identity.faults.next(status=503)
    assert_error(
        post(api, ACCOUNTS, {"kind": "bank_card", "account_no": ZHANG_CARD}),
        503,
        "account.check_unavailable",
    )
    assert not PayoutAccount.objects.exists()
    assert_error(
        post(api, ACCOUNTS, {"kind": "bank_card", "account_no": ZHANG_CARD}, key=None),
        400,
        "idempotency.key_required",
    )
    Consumer.objects.filter(pk=zhang.pk).update(
        verification_status=VerificationStatus.UNVERIFIED, verified_at=None
    )
    unverified = consumer_client(Consumer.objects.get(pk=zhang.pk))
    assert_error(
        post(unverified, ACCOUNTS, {"kind": "bank_card", "account_no": ZHANG_CARD}),
        403,
        "account.not_verified_consumer",
    )
    assert identity.calls("/v1/identity/account-verify", status=200) == 0


# --- Claims -----------------------------------------------------------------------------------


def claim(client, award, account, key: str | None = "fresh"):
    return post(
        client, f"{AWARDS}{award.public_id}/claim/", {"account": str(account.public_id)}, key
    )


def test_claim_needs_an_idempotency_key(api, zhang, campaign):
    award = win(zhang, campaign)
    account = verified_account(zhang)
    assert_error(claim(api, award, account, key=None), 400, "idempotency.key_required")
    assert_error(claim(api, award, account, key="short"), 400, "idempotency.key_invalid")
    assert not Payout.objects.exists()
    award.refresh_from_db()
    assert award.status == AwardStatus.PAYABLE


def test_claim_and_its_replays_give_one_payout(api, zhang, li, campaign):
    award = win(zhang, campaign, amount=Decimal("1000.00"))
    account = verified_account(zhang)
    first = claim(api, award, account, key="claim-key-000001")
    assert first.status_code == 201, first.content
    payout = first.json()
    assert payout["status"] == "pending" and payout["award"] == str(award.public_id)
    assert (payout["amount"], payout["tax_withheld"]) == ("800.00", "200.00")
    assert payout["account"] == "****0011" and re.fullmatch(
        r"PO\d{8}[0-9A-F]{16}", payout["request_no"]
    )
    replay = claim(api, award, account, key="claim-key-000001")
    assert replay.status_code == 201 and replay.json() == payout
    assert replay["Idempotent-Replayed"] == "true"
    # A new key for the same prize still gives the payout already made, never a second one.
    again = claim(api, award, account)
    assert again.status_code == 201 and again.json()["request_no"] == payout["request_no"]
    assert Payout.objects.count() == 1
    award.refresh_from_db()
    assert award.status == AwardStatus.CLAIMED and award.claimed_at
    assert [h.to_status for h in award.history.all()] == ["payable", "claimed"]
    mine = api.get(PAYOUTS).json()
    assert [p["request_no"] for p in mine["results"]] == [payout["request_no"]]
    assert ZHANG_CARD.encode() not in api.get(PAYOUTS).content
    assert consumer_client(li).get(PAYOUTS).json()["count"] == 0
    # The money stays reserved until the provider confirms payment.
    assert fund_balances(award.fund)["reserved"] == Decimal("1000.00")
    assert ledger_verify() == []


def test_same_key_with_another_body_is_refused(api, zhang, campaign):
    first, second = win(zhang, campaign), win(zhang, campaign)
    account = verified_account(zhang)
    assert claim(api, first, account, key="claim-key-000002").status_code == 201
    reused = claim(api, second, account, key="claim-key-000002")
    assert_error(reused, 422, "idempotency.key_reused")
    second.refresh_from_db()
    assert second.status == AwardStatus.PAYABLE


def test_only_payable_cash_prizes_can_be_claimed(api, zhang, campaign):
    account = verified_account(zhang)
    coupon = win(zhang, campaign, kind="coupon", amount=Decimal("20.00"))
    assert_error(claim(api, coupon, account), 409, "award.not_cash")
    held = win(zhang, campaign, held=True)
    body = assert_error(claim(api, held, account), 409, "award.not_payable")
    assert body["detail"] == {"status": "held"}
    cancelled = win(zhang, campaign)
    services.award_cancel(award=cancelled, reason="fraud")
    assert_error(claim(api, cancelled, account), 409, "award.not_payable")
    assert not Payout.objects.exists()


def test_claim_after_the_deadline_is_refused(api, zhang, campaign):
    award = win(zhang, campaign)
    account = verified_account(zhang)
    with time_machine.travel(award.claim_until + timedelta(seconds=1)):
        assert_error(claim(api, award, account), 409, "award.claim_expired")
    assert not Payout.objects.exists()


def test_claims_are_scoped_to_the_consumer(api, zhang, li, campaign):
    theirs = win(li, campaign)
    their_account = verified_account(li, LI_CARD)
    mine = win(zhang, campaign)
    my_account = verified_account(zhang)
    assert_error(claim(api, theirs, my_account), 404, "not_found")
    assert_error(claim(api, mine, their_account), 409, "account.not_usable")
    rejected = PayoutAccount.objects.create(
        consumer=zhang,
        kind="bank_card",
        account_no="6222020000000000099",
        account_last4="0099",
        status=PayoutAccountStatus.REJECTED,
    )
    assert_error(claim(api, mine, rejected), 409, "account.not_usable")
    assert_error(
        post(api, f"{AWARDS}{mine.public_id}/claim/", {"account": "nope"}), 400, "request.invalid"
    )
    assert not Payout.objects.exists()


def test_payout_status_follows_the_payout(api, zhang, campaign):
    award = win(zhang, campaign)
    account = verified_account(zhang)
    request_no = claim(api, award, account).json()["request_no"]
    payout = Payout.objects.get(request_no=request_no)
    Payout.objects.filter(pk=payout.pk).update(
        status=PayoutStatus.FAILED, fail_code="account_frozen"
    )
    listed = api.get(PAYOUTS).json()["results"][0]
    assert (listed["status"], listed["fail_code"]) == ("failed", "account_frozen")


# --- Errors: one shape, Chinese by default ------------------------------------------------------


def test_errors_are_in_chinese_by_default_and_english_on_request(api, zhang, campaign):
    coupon = win(zhang, campaign, kind="coupon", amount=Decimal("20.00"))
    account = verified_account(zhang)
    for response in (
        claim(api, coupon, account),
        claim(api, coupon, account, key=None),
        api.get(f"{AWARDS}{win(ConsumerFactory(), campaign).public_id}/"),
    ):
        body = response.json()
        assert CJK.search(body["message"]), body
    english = post(
        api,
        f"{AWARDS}{coupon.public_id}/claim/",
        {"account": str(account.public_id)},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert english.json()["message"] == "Only cash prizes are paid to an account."
