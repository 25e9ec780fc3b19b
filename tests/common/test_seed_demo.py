"""`manage.py seed_demo`: a consistent, valid, encrypted and idempotent Zhengzhou demo."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from apps.accounts.choices import VerificationStatus
from apps.accounts.models import Consumer, User
from apps.accounts.roles import ROLES
from apps.accounts.validators import validate_resident_id
from apps.common import crypto
from apps.common.areas import ZHENGZHOU_AREAS
from apps.common.demo import invoice_number, plan_consumers, plan_merchants
from apps.common.pii import normalize_for_index
from apps.invoices.choices import (
    LIVE_INVOICE_STATUSES,
    CampaignStatus,
    InvoiceStatus,
    RegistryStatus,
)
from apps.invoices.models import Campaign, Invoice, InvoiceStatusChange, TaxInvoiceRecord
from apps.invoices.validators import validate_invoice_number
from apps.merchants.models import Merchant
from apps.merchants.validators import validate_uscc

pytestmark = pytest.mark.django_db

TZ = ZoneInfo("Asia/Shanghai")
SMALL = {"merchants": 60, "consumers": 40, "invoices": 400}

# DOMAIN.md, written out independently of the generator's own table.
EXPECTED_INDUSTRY_RULES = {
    ("52", False), ("62", False), ("61", False), ("88", False), ("90", False), ("904", True),
    ("905", True), ("7291", False), ("786", False), ("8760", False), ("89", False),
    ("80", False), ("8020", True), ("8080", True),
}  # fmt: skip


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **{**SMALL, **options})
    return out.getvalue()


def counts() -> dict[str, int]:
    models = (Campaign, Merchant, Consumer, User, Group, Invoice, InvoiceStatusChange)
    result = {m.__name__: m.objects.count() for m in (*models, TaxInvoiceRecord)}
    result["memberships"] = User.groups.through.objects.count()
    return result


@pytest.fixture
def seeded() -> str:
    return seed()


def test_creates_the_requested_counts(seeded):
    assert Merchant.objects.count() == SMALL["merchants"]
    assert Consumer.objects.count() == SMALL["consumers"]
    assert Invoice.objects.count() == SMALL["invoices"]
    assert User.objects.filter(consumer__isnull=False).count() == SMALL["consumers"]
    # One demo user per role, plus the draw officers the draws demo needs (two-person rule).
    assert User.objects.filter(
        is_staff=True, username__in=[f"demo_{r.code}" for r in ROLES]
    ).count() == len(ROLES)
    # Every submission the registry knows has a record; red invoices and unsubmitted ones on top.
    known = Invoice.objects.filter(amount__isnull=False)  # not-found ones carry no amounts
    assert known.count() > 0.95 * SMALL["invoices"]
    numbers = set(known.values_list("number", flat=True))
    registry = TaxInvoiceRecord.objects.filter(number__in=numbers)
    assert set(registry.values_list("number", flat=True)) == numbers
    unknown = Invoice.objects.filter(amount__isnull=True).values("number")
    assert not TaxInvoiceRecord.objects.filter(number__in=unknown).exists()
    assert TaxInvoiceRecord.objects.filter(is_red=False).count() > len(numbers)  # never submitted
    assert "created" in seeded and "400" in seeded


def test_campaign_and_rules(seeded):
    campaign = Campaign.objects.get(code="zz-2026")
    assert campaign.name == "郑州市2026年有奖发票活动"
    assert campaign.status == CampaignStatus.ACTIVE
    assert campaign.starts_at == datetime(2026, 7, 1, tzinfo=TZ)
    assert campaign.ends_at == datetime(2026, 12, 31, 23, 59, 59, tzinfo=TZ)
    assert campaign.min_total == Decimal("100.00")  # model defaults
    assert campaign.cap_per_day == 3
    rules = set(campaign.industries.values_list("code", "excluded"))
    assert rules == EXPECTED_INDUSTRY_RULES
    assert all(campaign.industries.values_list("label", flat=True))
    assert dict(campaign.areas.values_list("code", "label")) == ZHENGZHOU_AREAS


def test_merchants_have_valid_credit_codes_in_their_area(seeded):
    merchants = list(Merchant.objects.all())
    for m in merchants:
        assert validate_uscc(m.uscc) == m.uscc
        assert m.uscc[2:8] == m.area_code
        assert m.area_code in ZHENGZHOU_AREAS
        assert len(m.industry_code) == 4 and m.industry_code.isdigit()
        assert m.name and m.address.startswith("郑州市")
        if m.status != "active":
            assert m.status_reason and m.status_changed_at
    assert {m.area_code for m in merchants} == set(ZHENGZHOU_AREAS)
    assert len({m.name for m in merchants}) == len(merchants)
    codes = {m.industry_code for m in merchants}
    for prefix, excluded in EXPECTED_INDUSTRY_RULES:
        if not excluded:
            assert any(code.startswith(prefix) for code in codes), prefix
    # A few sellers outside the campaign's sectors, for the eligibility checks.
    assert any(code.startswith(("904", "905", "8020", "8080")) for code in codes)


def test_consumers_have_valid_unique_identities(seeded):
    consumers = list(Consumer.objects.select_related("user"))
    ids = [c.id_number for c in consumers if c.id_number]
    phones = [c.phone for c in consumers]
    assert len(set(ids)) == len(ids) and len(set(phones)) == len(phones)
    for c in consumers:
        if c.id_number:
            assert validate_resident_id(c.id_number) == c.id_number
            assert c.id_number.startswith("41")
            assert 1950 <= int(c.id_number[6:10]) <= 2005
        assert len(c.phone) == 11 and c.phone[:2] in {"13", "15", "18"} and c.phone.isdigit()
        if c.verification_status == VerificationStatus.VERIFIED:
            assert c.verified_at and c.real_name and c.id_number
        assert c.user.username.startswith("c_")
        assert not c.user.has_usable_password()
        assert not (c.user.first_name or c.user.last_name or c.user.email)
    statuses = Counter(c.verification_status for c in consumers)
    assert statuses[VerificationStatus.VERIFIED] > 0.8 * len(consumers)
    assert Consumer.objects.filter(status="frozen").count() in (1, 2)


def test_registry_amounts_and_red_invoices(seeded):
    now = timezone.now()
    campaign = Campaign.objects.get(code="zz-2026")
    records = list(TaxInvoiceRecord.objects.all())
    by_number = {r.number: r for r in records}
    red_sums: dict[str, Decimal] = defaultdict(Decimal)
    for r in records:
        assert r.total == r.amount + r.tax
        assert len(r.number) == 20 and r.number.startswith("2641")
        assert validate_invoice_number(r.number) == r.number
        assert campaign.starts_at <= r.issued_at <= now
        assert r.invoice_type == "32"
        assert r.area_code == r.seller_uscc[2:8]
        if r.is_red:
            blue = by_number[r.reverses_number]
            assert r.total < 0 and r.issued_at >= blue.issued_at
            assert r.buyer_name_index == blue.buyer_name_index
            red_sums[blue.number] += -r.total
        else:
            assert r.total > 0 and r.amount > 0 and r.tax >= 0
            # VAT at 13 %, 9 %, 6 % or 1 % (small-scale), within a few cents.
            rates = (Decimal("0.13"), Decimal("0.09"), Decimal("0.06"), Decimal("0.01"))
            assert any(abs(r.tax - r.amount * rate) <= Decimal("0.10") for rate in rates)
    for r in records:
        if r.is_red:
            continue
        assert r.red_total == red_sums.get(r.number, Decimal("0.00"))
        expected = {
            Decimal(0): RegistryStatus.NORMAL,
            r.total: RegistryStatus.RED_FLUSHED,
        }.get(r.red_total, RegistryStatus.PARTIALLY_RED_FLUSHED)
        assert r.status == expected


def test_accepted_invoices_match_the_registry(seeded):
    campaign = Campaign.objects.get(code="zz-2026")
    entered = Invoice.objects.filter(
        status__in=[InvoiceStatus.ACCEPTED, InvoiceStatus.REVERSED]
    ).select_related("consumer", "merchant")
    assert entered.count() > SMALL["invoices"] // 2
    for inv in entered:
        record = TaxInvoiceRecord.objects.get(number=inv.number)
        assert (inv.total, inv.amount, inv.tax) == (record.total, record.amount, record.tax)
        assert inv.total == inv.amount + inv.tax
        assert inv.seller_uscc == record.seller_uscc == inv.merchant.uscc
        assert inv.issue_date == record.issued_at.astimezone(TZ).date()
        assert inv.buyer_name == inv.consumer.real_name
        assert record.buyer_name_index == inv.consumer.real_name_index
        assert record.issuer_kind == "self" and not record.buyer_tax_id
        assert inv.total >= campaign.min_total
        assert inv.merchant.status == "active"
        assert inv.consumer.verification_status == VerificationStatus.VERIFIED
        assert inv.campaign_id == campaign.pk
        assert inv.entered_at and inv.decided_at and inv.submitted_at <= inv.entered_at
        assert inv.consumer.verified_at <= inv.submitted_at
    assert (
        entered.filter(status=InvoiceStatus.REVERSED)
        .exclude(
            number__in=TaxInvoiceRecord.objects.filter(status=RegistryStatus.RED_FLUSHED).values(
                "number"
            )
        )
        .count()
        == 0
    )


def test_statuses_codes_and_history(seeded):
    invoices = list(Invoice.objects.all())
    statuses = Counter(inv.status for inv in invoices)
    assert statuses[InvoiceStatus.ACCEPTED] > 0.5 * len(invoices)
    assert statuses[InvoiceStatus.REJECTED] > 0
    codes = Counter(inv.rejection_code for inv in invoices if inv.rejection_code)
    assert codes["invoice.below_minimum"] > 0 and codes["invoice.name_mismatch"] > 0
    assert Invoice.objects.filter(total__lt=100).exists()
    assert Invoice.objects.filter(total__gte=1000).exists()
    history = defaultdict(list)
    for change in InvoiceStatusChange.objects.order_by("at", "id"):
        history[change.invoice_id].append(change)
    for inv in invoices:
        steps = history[inv.pk]
        assert steps[0].from_status == "" and steps[0].to_status == InvoiceStatus.PENDING
        assert steps[0].at == inv.submitted_at
        for before, after in pairwise(steps):
            assert after.from_status == before.to_status and after.at >= before.at
        assert steps[-1].to_status == inv.status
        if inv.status == InvoiceStatus.REJECTED:
            assert inv.rejection_code and steps[-1].code == inv.rejection_code
            assert inv.decided_at
        if inv.status == InvoiceStatus.PENDING:
            assert inv.campaign_id is None and inv.next_check_at
    # One live submission per number (the partial unique index would refuse otherwise).
    live = Counter(
        Invoice.objects.filter(status__in=LIVE_INVOICE_STATUSES).values_list("number", flat=True)
    )
    assert max(live.values()) == 1


def test_nothing_is_dated_in_the_future(seeded):
    now = timezone.now()
    for field in ("issued_at", "submitted_at", "decided_at", "entered_at"):
        latest = Invoice.objects.order_by(f"-{field}").exclude(**{f"{field}__isnull": True})
        assert latest.first() is None or getattr(latest.first(), field) <= now
    assert InvoiceStatusChange.objects.filter(at__gt=now).count() == 0
    assert TaxInvoiceRecord.objects.filter(issued_at__gt=now).count() == 0
    assert TaxInvoiceRecord.objects.filter(last_synced_at__gt=now).count() == 0
    assert Invoice.objects.filter(issue_date__gt=timezone.localdate()).count() == 0


def test_staff_users_one_per_role(seeded):
    for role in ROLES:
        user = User.objects.get(username=f"demo_{role.code}")
        assert user.is_staff and not user.is_superuser
        assert not user.has_usable_password()
        assert list(user.groups.values_list("name", flat=True)) == [role.group_name]
    assert "password" not in seeded.lower().replace("unusable passwords", "")


def test_raw_rows_hold_no_plaintext(seeded):
    consumers = list(Consumer.objects.all())
    secrets = [s for c in consumers for s in (c.real_name, c.id_number, c.phone) if s]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT real_name, id_number, phone, real_name_index, id_number_index, phone_index "
            "FROM accounts_consumer"
        )
        consumer_rows = cur.fetchall()
        cur.execute("SELECT buyer_name FROM invoices_invoice")
        invoice_rows = cur.fetchall()
        cur.execute("SELECT username, first_name, last_name FROM accounts_user")
        user_rows = cur.fetchall()
    dump = repr(consumer_rows) + repr(invoice_rows) + repr(user_rows)
    for secret in secrets:
        assert secret not in dump
    for row in consumer_rows:
        for sealed in row[:3]:
            assert sealed == "" or crypto.ciphertext_version(sealed) is not None
        assert row[5] and len(row[5]) == 64  # every consumer has a phone index
    assert all(crypto.ciphertext_version(r[0]) is not None for r in invoice_rows if r[0])
    # bulk_create ran the fields' pre_save: indexes match the plaintext.
    for c in consumers:
        if c.real_name:
            expected = crypto.blind_index("name", normalize_for_index("name", c.real_name))
            assert c.real_name_index == expected
    # Registry records carry only the blind index of the buyer's name.
    names = {c.real_name for c in consumers if c.real_name}
    registry_dump = repr(list(TaxInvoiceRecord.objects.values_list()))
    assert not any(name in registry_dump for name in names)


def test_second_run_creates_nothing(seeded):
    before = counts()
    out = seed()
    assert counts() == before
    assert "already there" in out


def test_larger_run_adds_only_the_missing_rows(seeded):
    first = set(Invoice.objects.values_list("uid", "number", "status"))
    merchants = set(Merchant.objects.values_list("pk", "uscc"))
    seed(merchants=70, invoices=500)
    assert Invoice.objects.count() == 500 and Merchant.objects.count() == 70
    assert first <= set(Invoice.objects.values_list("uid", "number", "status"))
    assert merchants <= set(Merchant.objects.values_list("pk", "uscc"))
    live = Counter(
        Invoice.objects.filter(status__in=LIVE_INVOICE_STATUSES).values_list("number", flat=True)
    )
    assert max(live.values()) == 1
    before = counts()
    seed(merchants=70, invoices=500)
    assert counts() == before


@pytest.mark.parametrize(
    ("seed_value", "merchants", "consumers", "invoices"),
    [(1, 5, 3, 120), (99, 13, 150, 900), (2026, 1, 1, 30)],
)
def test_other_seeds_and_sizes_stay_consistent(seed_value, merchants, consumers, invoices):
    seed(seed=seed_value, merchants=merchants, consumers=consumers, invoices=invoices)
    assert Invoice.objects.count() == invoices and Merchant.objects.count() == merchants
    live = Counter(
        Invoice.objects.filter(status__in=LIVE_INVOICE_STATUSES).values_list("number", flat=True)
    )
    assert max(live.values()) == 1
    for inv in Invoice.objects.select_related("consumer"):
        assert inv.consumer.verified_at <= inv.submitted_at
        if inv.status in (InvoiceStatus.ACCEPTED, InvoiceStatus.REVERSED):
            record = TaxInvoiceRecord.objects.get(number=inv.number)
            assert record.total == inv.total and record.buyer_name_index == (
                inv.consumer.real_name_index
            )
    before = counts()
    seed(seed=seed_value, merchants=merchants, consumers=consumers, invoices=invoices)
    assert counts() == before


def test_plans_are_deterministic_and_prefix_stable():
    now = timezone.now()
    assert [m.uscc for m in plan_merchants(7, 50)] == [m.uscc for m in plan_merchants(7, 50)]
    assert [m.uscc for m in plan_merchants(7, 30)] == [m.uscc for m in plan_merchants(7, 50)[:30]]
    assert [m.uscc for m in plan_merchants(7, 30)] != [m.uscc for m in plan_merchants(8, 30)]
    small = [(c.phone, c.id_number) for c in plan_consumers(7, 20, now)]
    large = [(c.phone, c.id_number) for c in plan_consumers(7, 40, now)]
    assert small == large[:20]
    numbers = [invoice_number(7, i, "1") for i in range(5000)]
    assert len(set(numbers)) == len(numbers)


def test_rejects_bad_arguments():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        seed(invoices=-1)
    with pytest.raises(CommandError, match="verified consumer"):
        seed(consumers=0, invoices=10)
    assert not Campaign.objects.exists()  # the failed run left nothing behind
