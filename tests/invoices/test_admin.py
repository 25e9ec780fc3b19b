"""Admin of campaigns, invoices and the tax registry: pages, filters, exact search, masking,
read-only facts and constant query counts."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.common.admin import CachedDistinctValuesFilter, LargeTablePaginator, _period_starts
from apps.common.masking import mask_name
from apps.invoices.admin import RejectionCodeFilter
from apps.invoices.choices import CampaignStatus, InvoiceStatus, IssuerKind, RegistryStatus
from apps.invoices.models import (
    Campaign,
    CampaignArea,
    CampaignIndustry,
    Invoice,
    InvoiceStatusChange,
    TaxInvoiceRecord,
    default_invoice_types,
)
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    InvoiceFactory,
    UserFactory,
    make_invoice_number,
    make_uscc,
)

pytestmark = pytest.mark.django_db


CAMPAIGN_LIST = reverse("admin:invoices_campaign_changelist")
CAMPAIGN_ADD = reverse("admin:invoices_campaign_add")
INVOICE_LIST = reverse("admin:invoices_invoice_changelist")
RECORD_LIST = reverse("admin:invoices_taxinvoicerecord_changelist")
BUYER = "司马相如"


@pytest.fixture(autouse=True)
def _uncached_distinct_filters(monkeypatch):
    # Every request recomputes the cached filter choices: tests see their own rows only, and
    # query counts do not depend on what another test (or xdist worker) left in the cache.
    monkeypatch.setattr(CachedDistinctValuesFilter, "cache_seconds", 0)


def change_url(obj) -> str:
    return reverse(f"admin:invoices_{obj._meta.model_name}_change", args=[obj.pk])


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def result_pks(response) -> set[int]:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def make_record(n: int, **fields) -> TaxInvoiceRecord:
    now = timezone.now()
    values = {
        "number": make_invoice_number(900_000 + n),
        "issued_at": now - timedelta(days=1),
        "seller_uscc": make_uscc(n),
        "seller_name": f"郑州登记商户{n}",
        "amount": Decimal("176.99"),
        "tax": Decimal("23.01"),
        "total": Decimal("200.00"),
        "last_synced_at": now,
        **fields,
    }
    return TaxInvoiceRecord.objects.create(**values)


def make_red(blue: TaxInvoiceRecord, n: int) -> TaxInvoiceRecord:
    return make_record(
        n,
        is_red=True,
        reverses_number=blue.number,
        seller_uscc=blue.seller_uscc,
        amount=Decimal("-176.99"),
        tax=Decimal("-23.01"),
        total=Decimal("-200.00"),
    )


@pytest.fixture
def invoice():
    consumer = ConsumerFactory(real_name=BUYER)
    invoice = InvoiceFactory(consumer=consumer, campaign=CampaignFactory())
    now = timezone.now()
    InvoiceStatusChange.objects.create(
        invoice=invoice, from_status="", to_status=InvoiceStatus.PENDING, at=now
    )
    InvoiceStatusChange.objects.create(
        invoice=invoice,
        from_status=InvoiceStatus.PENDING,
        to_status=InvoiceStatus.HELD,
        code="risk.split_purchase",
        note="人工复核",
        at=now + timedelta(minutes=1),
    )
    return invoice


# --- campaigns ----------------------------------------------------------------------------


def campaign_form_data(campaign: Campaign, **overrides) -> dict:
    data = {
        "code": campaign.code,
        "name": campaign.name,
        "city_name": campaign.city_name,
        "starts_at_0": timezone.localtime(campaign.starts_at).strftime("%Y-%m-%d"),
        "starts_at_1": "00:00:00",
        "ends_at_0": timezone.localtime(campaign.ends_at).strftime("%Y-%m-%d"),
        "ends_at_1": "00:00:00",
        "status": campaign.status,
        "min_total": "100.00",
        "max_prize_per_invoice": "800.00",
        "allowed_invoice_types": ["32"],
        "cap_per_day": "3",
        "cap_per_week": "",
        "cap_per_month": "20",
        "cap_per_campaign": "100",
        "exclude_enterprise_buyers": "on",
        "exclude_agent_issued": "on",
        "instant_winner_enters_periodic": "on",
        "industries-TOTAL_FORMS": "0",
        "industries-INITIAL_FORMS": "0",
        "areas-TOTAL_FORMS": "0",
        "areas-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_campaign_pages_render(admin_client):
    campaign = CampaignFactory(status=CampaignStatus.DRAFT)
    CampaignIndustry.objects.create(campaign=campaign, code="52", label="零售业")
    CampaignIndustry.objects.create(campaign=campaign, code="904", excluded=True)
    CampaignArea.objects.create(campaign=campaign, code="4101", label="郑州市")
    other = CampaignFactory(name="另一个活动", status=CampaignStatus.ENDED)

    assert result_pks(admin_client.get(CAMPAIGN_LIST)) == {campaign.pk, other.pk}
    assert result_pks(admin_client.get(CAMPAIGN_LIST, {"q": campaign.code})) == {campaign.pk}
    assert result_pks(admin_client.get(CAMPAIGN_LIST, {"status__exact": "ended"})) == {other.pk}

    response = admin_client.get(change_url(campaign))
    assert response.status_code == 200
    html = response.content.decode()
    assert "零售业" in html and "郑州市" in html  # both inlines
    assert admin_client.get(CAMPAIGN_ADD).status_code == 200


def test_new_campaign_starts_as_draft(admin_client):
    response = admin_client.get(CAMPAIGN_ADD)
    assert "status" not in response.context["adminform"].form.fields
    template = CampaignFactory.build(code="zz-new")
    data = campaign_form_data(
        template,
        status="active",
        **{
            "industries-TOTAL_FORMS": "1",
            "industries-0-code": "62",
            "industries-0-label": "餐饮业",
        },
    )
    response = admin_client.post(CAMPAIGN_ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(code="zz-new")
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.allowed_invoice_types == ["32"]
    assert list(campaign.industries.values_list("code", flat=True)) == ["62"]


def test_new_campaign_form_ticks_the_default_invoice_types(admin_client):
    form = admin_client.get(CAMPAIGN_ADD).context["adminform"].form
    assert form["allowed_invoice_types"].value() == default_invoice_types()
    html = str(form["allowed_invoice_types"])
    assert 'value="32" id="id_allowed_invoice_types_0" checked' in html
    assert html.count("checked") == len(default_invoice_types())


def test_campaign_status_follows_the_transition_table(admin_client):
    campaign = CampaignFactory(status=CampaignStatus.DRAFT)
    form = admin_client.get(change_url(campaign)).context["adminform"].form
    assert {value for value, _label in form.fields["status"].choices} == {"draft", "active"}

    response = admin_client.post(change_url(campaign), campaign_form_data(campaign, status="ended"))
    assert response.status_code == 200
    assert "status" in response.context["adminform"].form.errors
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT

    data = campaign_form_data(campaign, status="active", allowed_invoice_types=["32", "31"])
    response = admin_client.post(change_url(campaign), data)
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    assert sorted(campaign.allowed_invoice_types) == ["31", "32"]


# --- invoices: pages and filters -------------------------------------------------------


def test_invoice_changelist_and_each_filter(admin_client, invoice):
    rejected = InvoiceFactory(
        status=InvoiceStatus.REJECTED,
        rejection_code="invoice.not_in_window",
        source_channel="city_app",
        invoice_type="31",
        merchant=None,
        seller_name="未登记商户",
    )
    everyone = {invoice.pk, rejected.pk}
    assert result_pks(admin_client.get(INVOICE_LIST)) == everyone

    cases = [
        ({"status__exact": "rejected"}, {rejected.pk}),
        ({"source_channel__exact": "city_app"}, {rejected.pk}),
        ({"campaign__id__exact": invoice.campaign_id}, {invoice.pk}),
        ({"campaign__isnull": "True"}, {rejected.pk}),
        ({"invoice_type__exact": "31"}, {rejected.pk}),
        ({"rejection_code": "invoice.not_in_window"}, {rejected.pk}),
        (
            {
                "submitted_at__gte": "2000-01-01 00:00+08:00",
                "submitted_at__lt": "2999-01-01 00:00+08:00",
            },
            everyone,
        ),
        ({"submitted_at__year": timezone.localdate().year}, everyone),
    ]
    for params, expected in cases:
        assert result_pks(admin_client.get(INVOICE_LIST, params)) == expected, params

    html = admin_client.get(INVOICE_LIST).content.decode()
    assert "invoice.not_in_window" in html  # offered by the rejection-code filter
    assert "未登记商户" in html  # seller name shown when no merchant matched
    assert invoice.merchant.name in html


def test_rejection_code_choices_are_cached(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(CachedDistinctValuesFilter, "cache_seconds", 600)
    # A key of this test's own: the cache (Redis in CI) is shared with parallel workers.
    key = f"test:rejection-codes:{uuid.uuid4()}"
    monkeypatch.setattr(RejectionCodeFilter, "cache_key", classmethod(lambda cls, model: key))
    InvoiceFactory(status=InvoiceStatus.REJECTED, rejection_code="invoice.duplicate")
    model_admin = admin.site._registry[Invoice]
    with django_assert_num_queries(1):
        first = RejectionCodeFilter(None, {}, Invoice, model_admin).lookup_choices
    with django_assert_num_queries(0):
        again = RejectionCodeFilter(None, {}, Invoice, model_admin).lookup_choices
    assert first == again == [("invoice.duplicate", "invoice.duplicate")]
    cache.delete(key)


def test_invoice_detail_is_read_only_and_masks_the_buyer(admin_client, invoice):
    url = change_url(invoice)
    response = admin_client.get(url)
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    html = response.content.decode()
    assert BUYER not in html
    assert mask_name(BUYER) in html
    assert invoice.number in html
    assert "risk.split_purchase" in html and "人工复核" in html  # the history inline
    # Facts cannot be written or created here.
    response = admin_client.post(url, {"status": "accepted", "total": "1.00"})
    assert response.status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    assert admin_client.get(reverse("admin:invoices_invoice_add")).status_code == 403
    delete_url = reverse("admin:invoices_invoice_delete", args=[invoice.pk])
    assert admin_client.get(delete_url).status_code == 403


def test_invoice_list_masks_the_buyer(admin_client, invoice):
    html = admin_client.get(INVOICE_LIST).content.decode()
    assert BUYER not in html
    assert mask_name(BUYER) in html


def test_invoice_detail_links_the_registry_record(admin_client, invoice):
    record = make_record(1, number=invoice.number)
    html = admin_client.get(change_url(invoice)).content.decode()
    assert change_url(record) in html


def test_registry_link_only_for_those_who_may_open_it(client, invoice):
    record = make_record(1, number=invoice.number)
    statistician = UserFactory(is_staff=True)
    statistician.user_permissions.set(
        Permission.objects.filter(content_type__app_label="invoices", codename="view_invoice")
    )
    sign_in_staff(client, statistician)
    response = client.get(change_url(invoice))
    assert response.status_code == 200
    html = response.content.decode()
    assert change_url(record) not in html
    assert BUYER not in html and mask_name(BUYER) in html


def test_status_history_is_only_an_inline():
    assert InvoiceStatusChange not in admin.site._registry


# --- invoices: search ------------------------------------------------------------------


def test_invoice_search_is_exact(admin_client, invoice):
    other = InvoiceFactory()
    number = invoice.number
    assert result_pks(admin_client.get(INVOICE_LIST, {"q": number})) == {invoice.pk}
    assert result_pks(admin_client.get(INVOICE_LIST, {"q": fullwidth(number)})) == {invoice.pk}
    spaced = f"{number[:4]} {number[4:12]} {number[12:]}"
    assert result_pks(admin_client.get(INVOICE_LIST, {"q": spaced})) == {invoice.pk}
    assert result_pks(admin_client.get(INVOICE_LIST, {"q": invoice.seller_uscc.lower()})) == {
        invoice.pk
    }
    assert result_pks(admin_client.get(INVOICE_LIST, {"q": str(other.uid)})) == {other.pk}
    for partial in (number[:12], number[-6:], invoice.seller_uscc[:10], "郑州"):
        assert result_pks(admin_client.get(INVOICE_LIST, {"q": partial})) == set(), partial


def test_invoice_changelist_query_count_is_constant(admin_client, django_assert_max_num_queries):
    campaign = CampaignFactory()
    InvoiceFactory.create_batch(3, campaign=campaign)
    admin_client.get(INVOICE_LIST)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(INVOICE_LIST)
    InvoiceFactory.create_batch(14, campaign=campaign)
    InvoiceFactory.create_batch(13, merchant=None, seller_name="未登记商户")
    with django_assert_max_num_queries(len(few)):
        response = admin_client.get(INVOICE_LIST)
    assert response.context["cl"].result_count == 30


# --- tax registry -------------------------------------------------------------------------


def test_registry_pages_filters_and_search(admin_client):
    blue = make_record(1, status=RegistryStatus.RED_FLUSHED, red_total=Decimal("200.00"))
    red = make_red(blue, 2)
    agent = make_record(3, issuer_kind=IssuerKind.AGENT, invoice_type="31")
    everyone = {blue.pk, red.pk, agent.pk}
    assert result_pks(admin_client.get(RECORD_LIST)) == everyone

    cases = [
        ({"status__exact": "red_flushed"}, {blue.pk}),
        ({"issuer_kind__exact": "agent"}, {agent.pk}),
        ({"is_red__exact": "1"}, {red.pk}),
        ({"invoice_type__exact": "31"}, {agent.pk}),
        ({"q": blue.number}, {blue.pk, red.pk}),  # the blue one and what reverses it
        ({"q": fullwidth(red.number)}, {red.pk}),
        ({"q": agent.seller_uscc}, {agent.pk}),
        ({"q": blue.number[:10]}, set()),
    ]
    for params, expected in cases:
        assert result_pks(admin_client.get(RECORD_LIST, params)) == expected, params

    response = admin_client.get(change_url(blue))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert change_url(red) in response.content.decode()  # linked red invoice
    assert "buyer_name_index" not in response.content.decode()
    assert admin_client.get(change_url(red)).status_code == 200
    assert admin_client.get(reverse("admin:invoices_taxinvoicerecord_add")).status_code == 403
    assert admin_client.post(change_url(blue), {"status": "normal"}).status_code == 403


def test_registry_changelist_query_count_is_constant(admin_client):
    for n in range(2):
        make_record(n)
    admin_client.get(RECORD_LIST)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(RECORD_LIST)
    for n in range(2, 30):
        make_record(n)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(RECORD_LIST)
    assert response.context["cl"].result_count == 30
    assert len(many) <= len(few)


# --- large tables ---------------------------------------------------------------------------


def test_paginator_counts_exactly_below_the_threshold():
    InvoiceFactory.create_batch(3)
    assert LargeTablePaginator(Invoice.objects.all(), 100).count == 3
    assert LargeTablePaginator(Invoice.objects.filter(status="accepted"), 100).count == 0


@pytest.mark.postgres
def test_paginator_estimates_an_unfiltered_large_table(monkeypatch):
    InvoiceFactory.create_batch(5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE invoices_invoice")
    monkeypatch.setattr(LargeTablePaginator, "estimate_above", 1)
    InvoiceFactory.create_batch(2)  # not yet in the planner's statistics
    assert LargeTablePaginator(Invoice.objects.all(), 100).count == 5
    # Anything filtered is counted exactly.
    filtered = Invoice.objects.filter(status=InvoiceStatus.PENDING)
    assert LargeTablePaginator(filtered, 100).count == 7


def test_date_hierarchy_offers_periods_without_a_distinct_scan(admin_client):
    tz = timezone.get_current_timezone()
    InvoiceFactory(submitted_at=datetime(2026, 3, 15, 23, 30, tzinfo=tz))
    InvoiceFactory(submitted_at=datetime(2026, 5, 2, 0, 15, tzinfo=tz))
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(INVOICE_LIST)
    assert response.status_code == 200
    calendar_scans = [
        q for q in queries if "DISTINCT" in q["sql"].upper() and "submitted_at" in q["sql"]
    ]
    assert calendar_scans == []
    html = response.content.decode()
    for month in (3, 4, 5):  # April is inside the range, so it is offered too
        assert f"submitted_at__month={month}" in html
    assert "submitted_at__month=6" not in html

    response = admin_client.get(
        INVOICE_LIST, {"submitted_at__year": 2026, "submitted_at__month": 3}
    )
    html = response.content.decode()
    assert result_pks(response) == {Invoice.objects.get(submitted_at__month=3).pk}
    assert "submitted_at__day=15" in html  # local day, though 15:30 UTC
    assert "submitted_at__day=14" not in html


@pytest.mark.parametrize(
    ("first", "last", "kind", "expected"),
    [
        (
            date(2026, 11, 20),
            date(2027, 2, 3),
            "month",
            ["2026-11", "2026-12", "2027-01", "2027-02"],
        ),
        (date(2026, 12, 30), date(2027, 1, 2), "day", ["12-30", "12-31", "01-01", "01-02"]),
        (date(2025, 6, 1), date(2027, 1, 1), "year", ["2025", "2026", "2027"]),
    ],
)
def test_period_starts(first, last, kind, expected):
    fmt = {"month": "%Y-%m", "day": "%m-%d", "year": "%Y"}[kind]
    assert [d.strftime(fmt) for d in _period_starts(first, last, kind)] == expected


# --- languages -----------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "label"), [("zh-hans", "搜索"), ("en", "Search")])
def test_pages_render_in_both_languages(admin_client, invoice, language, label):
    record = make_record(1)
    urls = [
        CAMPAIGN_LIST,
        change_url(invoice.campaign),
        CAMPAIGN_ADD,
        INVOICE_LIST,
        change_url(invoice),
        RECORD_LIST,
        change_url(record),
    ]
    for url in urls:
        response = admin_client.get(url, headers={"accept-language": language})
        assert response.status_code == 200, url
        assert f'lang="{language}"' in response.content.decode()
    html = admin_client.get(INVOICE_LIST, headers={"accept-language": language}).content.decode()
    assert label in html
    assert BUYER not in html
