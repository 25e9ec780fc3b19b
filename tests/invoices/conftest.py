"""Fixtures for the submission pipeline: a Zhengzhou campaign, verified consumers, registry
records, and an API client signed in as a consumer."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.common import crypto
from apps.common.pii import normalize_for_index
from apps.invoices.models import CampaignArea, CampaignIndustry, TaxInvoiceRecord
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    make_invoice_number,
    make_uscc,
)

_numbers = itertools.count(500_000)
SELLER = make_uscc(90_001, area="410105")


def name_index(name: str) -> str:
    return crypto.blind_index("name", normalize_for_index("name", name))


@pytest.fixture
def campaign(db):
    campaign = CampaignFactory(
        code="zz-test", cap_per_day=3, cap_per_month=20, cap_per_campaign=100
    )
    for code, excluded in (("52", False), ("62", False), ("90", False), ("904", True)):
        CampaignIndustry.objects.create(campaign=campaign, code=code, excluded=excluded)
    CampaignArea.objects.create(campaign=campaign, code="4101", label="郑州市")
    return campaign


@pytest.fixture
def consumer(db):
    return ConsumerFactory(real_name="张三")


@pytest.fixture
def make_record(db):
    """A registry record the tax authority would confirm; returns (record, submission body)."""

    def make(*, buyer_name="张三", total="200.00", days_ago=1, **fields):
        number = fields.pop("number", None) or make_invoice_number(next(_numbers))
        total = Decimal(total)
        tax = (total * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
        issued_at = timezone.now() - timedelta(days=days_ago)
        values = {
            "number": number,
            "issued_at": issued_at,
            "seller_uscc": SELLER,
            "seller_name": "郑州测试商贸有限公司",
            "buyer_name_index": name_index(buyer_name),
            "amount": total - tax,
            "tax": tax,
            "total": total,
            "industry_code": "5211",
            "area_code": "410105",
            "last_synced_at": timezone.now(),
            **fields,
        }
        record = TaxInvoiceRecord.objects.create(**values)
        body = {
            "number": number,
            "issue_date": timezone.localtime(issued_at).date().isoformat(),
            "total": str(total),
        }
        return record, body

    return make


def app_client(consumer) -> APIClient:
    """A client signed in the way the consumer app is: an app session (allauth headless) whose
    key travels as the X-Session-Token header, with the sign-in's clock and expiry."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from apps.accounts.sessions import session_store_class, start_session_clock

    user = consumer.user
    store = session_store_class()()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    start_session_clock(store)
    store.set_expiry(settings.CONSUMER_SESSION_IDLE_TIMEOUT_SECONDS)
    store.create()
    client = APIClient()
    client.credentials(HTTP_X_SESSION_TOKEN=store.session_key)
    return client


@pytest.fixture
def api(consumer):
    client = APIClient()
    client.force_authenticate(user=consumer.user)
    return client


_keys = itertools.count(1)


def submit(client, body, key=None):
    """POST an invoice with a fresh Idempotency-Key (or the given one)."""
    key = key or f"test-key-{next(_keys):08d}"
    return client.post("/api/v1/invoices/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
