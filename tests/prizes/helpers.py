"""Helpers of the prize service tests: campaigns with a funded prize fund, wins through the
instant draw, payout accounts checked by the identity sandbox, the finance team, and the book
checks every test ends with (the ledger balances, paid = provider-confirmed, nothing twice).

Everything here goes through the real services; only the set-up rows another app owns
(campaigns, invoices, the tax registry, instant pools) are made directly.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from django.contrib.auth.models import Permission
from django.test import TestCase, override_settings
from django.utils import timezone

from apps.draws import services as draws
from apps.draws.choices import InstantPrizeKind, OddsMode
from apps.draws.models import InstantDailyQuota, InstantPool, InstantTier
from apps.invoices.choices import InvoiceStatus, RegistryStatus
from apps.invoices.models import Invoice, TaxInvoiceRecord
from apps.prizes import services
from apps.prizes.choices import (
    AWARD_RESERVED_STATUSES,
    AccountKind,
    AwardKind,
    AwardStatus,
    CouponStatus,
    FundSource,
    PayoutStatus,
)
from apps.prizes.ledger import fund_accounts_ensure, fund_deposit, ledger_verify
from apps.prizes.models import Award, Coupon, Fund, LedgerAccount, Payout
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    InvoiceFactory,
    UserFactory,
    funded_default_fund,
)

ZERO = Decimal("0.00")
# The sandbox decides a transfer's fate by the account number's last four digits.
PAID_AT_ONCE = "1234"
REFUSED = "4000"  # FAILED account_invalid
SETTLES_PAID = "5000"  # PROCESSING, then SUCCESS after the sandbox's processing_seconds
PROCESSING_UNTIL_SETTLED = "5009"  # PROCESSING until `sandbox.settle(...)`

MAKER_PERMS = ("prizes.prepare_payoutbatch",)
CHECKER_PERMS = ("prizes.approve_payoutbatch",)
FINANCE_PERMS = ("prizes.reconcile_payouts", "prizes.manage_award")

_serial = itertools.count(1)


# --- People -------------------------------------------------------------------------------------


def grant(user, *codenames):
    """`user` with the given `app.codename` permissions (a fresh instance: no stale cache)."""
    for codename in codenames:
        app_label, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=name)
        )
    return type(user).objects.get(pk=user.pk)


def staff(*codenames, username: str | None = None):
    user = UserFactory(username=username or f"finance{next(_serial)}", is_staff=True)
    return grant(user, *codenames)


def finance_team() -> SimpleNamespace:
    """A maker (prepares batches), two checkers (approve) and a finance officer (reconciles,
    marks recoveries) — four different people."""
    return SimpleNamespace(
        maker=staff(*MAKER_PERMS),
        checker=staff(*CHECKER_PERMS),
        checker2=staff(*CHECKER_PERMS),
        officer=staff(*FINANCE_PERMS),
    )


def payee(identity, **fields):
    """A verified consumer the identity register knows (name and ID number)."""
    consumer = ConsumerFactory(**fields)
    identity.add_person(consumer.id_number, str(consumer.real_name))
    return consumer


def card_number(consumer, suffix: str = PAID_AT_ONCE) -> str:
    return f"6222{consumer.pk:08d}{suffix}"


def payout_account(identity, consumer, suffix: str = PAID_AT_ONCE):
    """A bank card in the consumer's own name, on the identity register and registered (and so
    ownership-checked) through `payout_account_register`. The suffix decides the sandbox's
    answer to transfers to it."""
    number = card_number(consumer, suffix)
    identity.add_account("bank_card", number, consumer.id_number)
    return services.payout_account_register(
        consumer=consumer, kind="bank_card", account_no=number, bank_name="中国工商银行"
    )


# --- Campaigns, invoices, wins ------------------------------------------------------------------


def prize_campaign(budget: Decimal = Decimal("100000.00"), **fields):
    """An active campaign whose default fund holds `budget`, allowing prizes up to 5000."""
    values = {"max_prize_per_invoice": Decimal("5000.00"), **fields}
    campaign = CampaignFactory(code=f"zz-prizes-{next(_serial)}", **values)
    funded_default_fund(campaign, budget)
    return campaign


def default_fund(campaign) -> Fund:
    return Fund.objects.get(campaign=campaign, is_default=True)


def sponsor_fund(campaign, merchant, amount: Decimal = Decimal("10000.00")) -> Fund:
    fund = Fund.objects.create(
        campaign=campaign,
        name=f"{merchant.name} 出资",
        source=FundSource.MERCHANT,
        sponsor=merchant,
    )
    fund_accounts_ensure(fund)
    fund_deposit(fund=fund, amount=amount, key=f"deposit:sponsor:{fund.pk}", memo="", actor=None)
    return fund


def registry_record(invoice, *, status: str = RegistryStatus.NORMAL) -> TaxInvoiceRecord:
    """The tax authority's record of `invoice` (what re-verification before payout reads)."""
    issued_at = timezone.now() - timedelta(days=1)
    assert timezone.localdate(issued_at) == invoice.issue_date
    return TaxInvoiceRecord.objects.create(
        number=invoice.number,
        issued_at=issued_at,
        seller_uscc=invoice.seller_uscc or "91410105MA00000000",
        seller_name="郑州测试商贸有限公司",
        amount=invoice.amount,
        tax=invoice.tax,
        total=invoice.total,
        industry_code="5211",
        area_code="410105",
        status=status,
        red_total=invoice.total if status == RegistryStatus.RED_FLUSHED else ZERO,
        last_synced_at=timezone.now(),
    )


def entered_invoice(campaign, consumer, **fields) -> Invoice:
    """An invoice accepted into the campaign, with its (normal) tax registry record."""
    invoice = InvoiceFactory(
        campaign=campaign,
        consumer=consumer,
        status=InvoiceStatus.ACCEPTED,
        entered_at=timezone.now(),
        **fields,
    )
    registry_record(invoice)
    return invoice


def red_flush(invoice) -> Invoice:
    """The tax authority red-flushes the invoice in full and the platform applies it."""
    from apps.invoices.reversals import invoice_reverse

    TaxInvoiceRecord.objects.filter(number=invoice.number).update(
        status=RegistryStatus.RED_FLUSHED, red_total=invoice.total
    )
    return invoice_reverse(invoice=invoice)


def instant_pool(
    campaign, *, amount, kind=InstantPrizeKind.CASH, sponsor=None, delayed=False, **tier
):
    """A one-prize instant pool that is sure to award `amount` to the next entry."""
    now = timezone.now()
    pool = InstantPool.objects.create(
        campaign=campaign,
        name=f"即时奖池 {next(_serial)}",
        sponsor=sponsor,
        odds_mode=OddsMode.FIXED,
        active_from=now - timedelta(days=1),
        active_until=now + timedelta(days=30),
        max_wins_per_consumer=None,
        delay_cash_above=ZERO if delayed else Decimal("100000.00"),
        delay_days=7,
    )
    tier_row = InstantTier.objects.create(
        pool=pool,
        name=tier.pop("name", f"{amount}元现金" if kind == InstantPrizeKind.CASH else "优惠券"),
        kind=kind,
        face_value=Decimal(amount),
        total_quantity=1,
        remaining=1,
        probability=Decimal("1"),
        **tier,
    )
    InstantDailyQuota.objects.create(tier=tier_row, day=timezone.localdate(), quota=1)
    return pool


def instant_win(
    campaign,
    consumer,
    amount,
    *,
    kind=InstantPrizeKind.CASH,
    sponsor=None,
    delayed: bool = False,
    invoice=None,
    **tier,
) -> Award | None:
    """Enter an invoice that wins `amount` in the instant draw; the prize's award, or None when
    the fund could not cover it (the draw then awards nothing)."""
    pool = instant_pool(
        campaign, amount=amount, kind=kind, sponsor=sponsor, delayed=delayed, **tier
    )
    invoice = invoice or entered_invoice(campaign, consumer)
    prize = draws.instant_draw_for_entry(invoice=invoice)
    InstantPool.objects.filter(pk=pool.pk).update(enabled=False)
    draws.instant_config_cache_clear()  # an update() sends no signal
    if prize is None:
        return None
    return Award.objects.get(invoice=invoice)


# --- Finance ------------------------------------------------------------------------------------


def approve(batch, checker, *, send: bool = True):
    """The checker approves; with `send`, the sends queued on commit run (Celery is eager)."""
    if not send:
        return services.payout_batch_approve(batch=batch, actor=checker)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.payout_batch_approve(batch=batch, actor=checker)


def pay(award, account, team, *, send: bool = True) -> Payout:
    """Claim, prepare a batch, approve it (and send): the payout, fresh from the database."""
    payout = services.award_claim(consumer=award.consumer, award=award, account=account)
    batch = services.payout_batch_prepare(campaign=award.campaign, actor=team.maker)
    approve(batch, team.checker, send=send)
    return Payout.objects.get(pk=payout.pk)


def fresh(obj):
    obj.refresh_from_db()
    return obj


@contextmanager
def tax_authority_down() -> Iterator[None]:
    """Re-verification cannot reach the tax authority (nothing listens on its port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with override_settings(
        TAX_VERIFIER_BACKEND="http",
        TAX_VERIFIER_URL=f"http://127.0.0.1:{port}",
        TAX_VERIFIER_CLIENT_ID="tax-client-for-tests",
        TAX_VERIFIER_SECRET="tax-secret-for-tests-0123456789",
        TAX_VERIFIER_TIMEOUT=0.5,
    ):
        yield


def wait_until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def deliver_callbacks(receiver, start: int = 0) -> list:
    """Hand the callbacks the receiver got (from index `start`) to `payout_callback`, as the
    callback view would; returns what each gave (a Payout, None, or the rejection)."""
    from apps.prizes.gateway import CallbackRejected

    outcomes = []
    for callback in list(receiver.received[start:]):
        try:
            outcomes.append(
                services.payout_callback(
                    method=callback.method,
                    path=callback.path,
                    headers=callback.headers,
                    body=callback.body,
                )
            )
        except CallbackRejected as exc:
            outcomes.append(exc)
    return outcomes


# --- The books ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """One read of what the book checks look at (shared by them after every machine step)."""

    awards: list  # (pk, fund_id, status, kind, amount, net_amount, invoice status)
    payouts: list  # (request_no, status, amount, tax, award_id, fund_id, approved_by_id)
    redeemed: list  # (fund_id, face_value) of redeemed coupons


def read_rows() -> Rows:
    return Rows(
        awards=list(
            Award.objects.values_list(
                "pk", "fund_id", "status", "kind", "amount", "net_amount", "invoice__status"
            )
        ),
        payouts=list(
            Payout.objects.values_list(
                "request_no",
                "status",
                "amount",
                "tax_withheld",
                "award_id",
                "award__fund_id",
                "batch__approved_by_id",
            )
        ),
        redeemed=list(
            Coupon.objects.filter(status=CouponStatus.REDEEMED).values_list(
                "award__fund_id", "face_value"
            )
        ),
    )


def assert_books_balance(rows: Rows | None = None) -> None:
    """The ledger agrees with itself and with the awards, payouts and coupons it accounts for.

    - every balance equals its entries and every fund sums to zero (`ledger_verify`);
    - per fund: available + reserved + paid + tax withheld == budget, none below zero;
    - reserved == the gross amounts of the awards still reserved (held, payable, claimed);
    - paid == net amounts of PAID payouts + redeemed coupons − what was recovered;
    - tax withheld == the tax of PAID payouts.
    """
    rows = rows or read_rows()
    assert ledger_verify() == []
    books: dict[int, dict[str, Decimal]] = {}
    for fund_id, kind, balance in LedgerAccount.objects.values_list("fund_id", "kind", "balance"):
        books.setdefault(fund_id, {})[kind] = balance
        assert kind == AccountKind.FUNDING or balance >= 0, (fund_id, kind, balance)
    reserved: Counter = Counter()
    paid: Counter = Counter()
    tax: Counter = Counter()
    for _pk, fund_id, status, _kind, amount, net, _invoice in rows.awards:
        if status in AWARD_RESERVED_STATUSES:
            reserved[fund_id] += amount
        elif status == AwardStatus.RECOVERED:
            paid[fund_id] -= net
    for _no, status, amount, withheld, _award, fund_id, _approved in rows.payouts:
        if status == PayoutStatus.PAID:
            paid[fund_id] += amount
            tax[fund_id] += withheld
    for fund_id, value in rows.redeemed:
        paid[fund_id] += value
    for fund_id, b in books.items():
        line = {kind: b.get(kind, ZERO) for kind in AccountKind.values}
        budget = -line[AccountKind.FUNDING]
        assert (
            line[AccountKind.AVAILABLE]
            + line[AccountKind.RESERVED]
            + line[AccountKind.DISBURSED]
            + line[AccountKind.TAX_WITHHELD]
            == budget
        ), line
        assert line[AccountKind.RESERVED] == reserved[fund_id], (line, reserved[fund_id])
        assert line[AccountKind.DISBURSED] == paid[fund_id], (line, paid[fund_id])
        assert line[AccountKind.TAX_WITHHELD] == tax[fund_id], (line, tax[fund_id])


def assert_paid_once(sandbox, rows: Rows | None = None) -> None:
    """Paid here = confirmed there, each request number executed at most once, and nothing the
    provider paid is unknown or believed unpaid here; an award is paid at most once."""
    rows = rows or read_rows()
    assert max(Counter(sandbox.executions).values(), default=0) <= 1, sandbox.executions
    provider = {t["request_no"]: t for t in sandbox.transfers()}
    ours = {row[0]: row for row in rows.payouts}
    for request_no, status, amount, *_rest in ours.values():
        if status == PayoutStatus.PAID:
            transfer = provider.get(request_no)
            assert transfer is not None and transfer["status"] == "SUCCESS", request_no
            assert transfer["executions"] == 1 and Decimal(transfer["amount"]) == amount
    for request_no, transfer in provider.items():
        assert request_no in ours, f"the provider executed {request_no}, unknown here"
        status, approved_by = ours[request_no][1], ours[request_no][6]
        if transfer["status"] == "SUCCESS":
            assert status in (
                PayoutStatus.PAID,
                PayoutStatus.SENDING,
                PayoutStatus.PROCESSING,
                PayoutStatus.UNKNOWN,
            ), (request_no, status)
        # Only what a checker approved ever reaches the provider.
        assert approved_by is not None, request_no
    per_award = Counter(row[4] for row in rows.payouts if row[1] == PayoutStatus.PAID)
    assert max(per_award.values(), default=0) <= 1
    for pk, _fund, status, kind, *_rest in rows.awards:
        if kind != AwardKind.CASH:
            continue
        expected = status in (AwardStatus.PAID, AwardStatus.TO_RECOVER, AwardStatus.RECOVERED)
        assert per_award.get(pk, 0) == (1 if expected else 0), (pk, status)


def provider_executions(sandbox, request_no: str) -> int:
    return sandbox.executions.count(request_no)


def transfer_posts(sandbox, request_no: str) -> int:
    """How many transfer requests for `request_no` reached the sandbox (executed or not)."""
    count = 0
    for request in sandbox.requests:
        if request.method == "POST" and request.path == "/v1/transfers":
            try:
                if request.json().get("request_no") == request_no:
                    count += 1
            except ValueError:
                continue
    return count
