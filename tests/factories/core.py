"""Factories producing valid Zhengzhou merchants, consumers, campaigns and invoices."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from apps.accounts.choices import VerificationStatus
from apps.accounts.models import Consumer, User
from apps.accounts.validators import resident_id_check_character
from apps.invoices.choices import CampaignStatus, InvoiceStatus
from apps.invoices.models import Campaign, Invoice
from apps.merchants.models import Merchant
from apps.merchants.validators import USCC_ALPHABET, uscc_check_character

ZZ_AREAS = ["410102", "410103", "410104", "410105", "410106", "410108", "410122", "410181"]


def make_uscc(n: int, area: str = "410105") -> str:
    """A valid credit code unique per n (n written in base 31 as the entity identifier)."""
    digits = []
    for _ in range(9):
        n, rem = divmod(n, 31)
        digits.append(USCC_ALPHABET[rem])
    body = "91" + area + "MA" + "".join(reversed(digits))[2:]
    return body + uscc_check_character(body)


def make_resident_id(n: int, area: str = "410102", born: date = date(1990, 1, 1)) -> str:
    birth = born + timedelta(days=n % 9000)
    body = f"{area}{birth:%Y%m%d}{n % 1000:03d}"
    return body + resident_id_check_character(body)


def make_invoice_number(n: int, year: int = 26, province: str = "41") -> str:
    return f"{year:02d}{province}1{n:015d}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")


class ConsumerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consumer

    user = factory.SubFactory(UserFactory)
    real_name = factory.Sequence(
        lambda n: random.choice(["张", "王", "李", "赵"]) + "三" + "丰"[: n % 2]
    )
    id_number = factory.Sequence(make_resident_id)
    phone = factory.Sequence(lambda n: f"138{n:08d}")
    verification_status = VerificationStatus.VERIFIED
    verified_at = factory.LazyFunction(timezone.now)


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    uscc = factory.Sequence(make_uscc)
    name = factory.Sequence(lambda n: f"郑州测试商贸有限公司{n}")
    area_code = "410105"
    industry_code = "5211"


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    code = factory.Sequence(lambda n: f"zz-2026-{n}")
    name = "郑州市2026年有奖发票活动"
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=30))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=150))
    status = CampaignStatus.ACTIVE


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    number = factory.Sequence(make_invoice_number)
    issue_date = factory.LazyFunction(lambda: timezone.localdate() - timedelta(days=1))
    seller_uscc = factory.LazyAttribute(lambda o: o.merchant.uscc if o.merchant else "")
    buyer_name = factory.LazyAttribute(lambda o: o.consumer.real_name)
    amount = Decimal("176.99")
    tax = Decimal("23.01")
    total = Decimal("200.00")
    consumer = factory.SubFactory(ConsumerFactory)
    merchant = factory.SubFactory(MerchantFactory)
    status = InvoiceStatus.PENDING
    submitted_at = factory.LazyFunction(timezone.now)


def funded_default_fund(campaign, amount: Decimal = Decimal("1000000.00")):
    """The campaign's default prize fund with `amount` deposited (prizes reserve from it)."""
    from apps.prizes.choices import FundSource
    from apps.prizes.ledger import fund_accounts_ensure, fund_deposit
    from apps.prizes.models import Fund

    fund, _ = Fund.objects.get_or_create(
        campaign=campaign,
        is_default=True,
        defaults={"name": "test fund", "source": FundSource.CITY},
    )
    fund_accounts_ensure(fund)
    if amount > 0:
        fund_deposit(
            fund=fund,
            amount=amount,
            key=f"deposit:test:{fund.pk}:{amount}",
            memo="test",
            actor=None,
        )
    return fund
