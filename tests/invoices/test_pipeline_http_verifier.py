"""The pipeline against the national verification service's protocol (a local server on
127.0.0.1): outages and bad replies leave the invoice pending — never lost, never rejected —
and a later re-check enters it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.invoices.models import Invoice
from apps.invoices.services import invoice_recheck
from apps.invoices.tasks import recheck_due_invoices
from tests.factories.core import make_invoice_number
from tests.invoices.conftest import SELLER, submit
from tools.sandbox.tax_service import TaxSandbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def tax_service():
    with (
        TaxSandbox() as server,
        override_settings(
            TAX_VERIFIER_BACKEND="http",
            TAX_VERIFIER_URL=server.base_url,
            TAX_VERIFIER_CLIENT_ID=server.client_id,
            TAX_VERIFIER_SECRET=server.secret,
            TAX_VERIFIER_TIMEOUT=0.5,
        ),
    ):
        yield server


def add(server, n: int, **fields):
    number = make_invoice_number(n)
    issued = timezone.now() - timedelta(days=1)
    server.add_invoice(number, total="200.00", issued_at=issued, seller_uscc=SELLER, **fields)
    return {
        "number": number,
        "issue_date": timezone.localtime(issued).date().isoformat(),
        "total": "200.00",
    }


def test_found_enters(api, campaign, tax_service):
    response = submit(api, add(tax_service, 1))
    assert response.status_code == 201 and response.json()["invoice"]["status"] == "accepted"


def test_buyer_name_mismatch_via_http(api, campaign, tax_service):
    response = submit(api, add(tax_service, 2, buyer_name="李四"))
    assert response.status_code == 422 and response.json()["code"] == "invoice.name_mismatch"


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 500},
        {"delay": 2.0},
        {"malformed": True},
        {"drop": True},
        {"status": 429},
    ],
)
def test_outage_leaves_it_pending_and_a_recheck_enters_it(api, campaign, tax_service, fault):
    body = add(tax_service, 3)
    tax_service.faults.next(**fault)
    response = submit(api, body)
    assert response.status_code == 201 and response.json()["invoice"]["status"] == "pending"
    invoice = Invoice.objects.get(number=body["number"])
    assert invoice.history.get().code == "tax.unavailable"
    # The beat sweep picks it up once due; the service is healthy again.
    Invoice.objects.filter(pk=invoice.pk).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )
    assert recheck_due_invoices() == 1
    assert Invoice.objects.get(pk=invoice.pk).status == "accepted"


def test_not_found_yet_because_of_the_tax_database_lag(api, campaign, tax_service):
    tax_service.lag_seconds = 3600
    number = make_invoice_number(4)
    issued = timezone.now() - timedelta(minutes=10)
    tax_service.add_invoice(number, total="200.00", issued_at=issued, seller_uscc=SELLER)
    body = {
        "number": number,
        "issue_date": timezone.localdate(issued).isoformat(),
        "total": "200.00",
    }
    assert submit(api, body).json()["invoice"]["status"] == "pending"
    tax_service.lag_seconds = 0
    assert invoice_recheck(invoice_id=Invoice.objects.get(number=number).pk).status == "accepted"


def test_the_same_question_is_not_asked_twice_within_the_cache_window(api, campaign, tax_service):
    body = add(tax_service, 5, buyer_name="李四")
    submit(api, body)
    submit(api, body)
    assert tax_service.calls("/v1/invoices/verify") == 1
