"""A small campaign world for the reporting tests, driven through the real services.

Consumers submit invoices through `invoice_submit` against registry records (the default
`registry` verifier), so every rollup change goes through the hooks exactly as in production.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from django.utils import timezone

from apps.common import crypto
from apps.common.pii import normalize_for_index
from apps.invoices.models import CampaignArea, CampaignIndustry, TaxInvoiceRecord
from apps.invoices.services import invoice_submit
from tests.factories.core import MerchantFactory, make_invoice_number, make_uscc
from tests.prizes.helpers import prize_campaign

_numbers = itertools.count(700_000)
_usccs = itertools.count(70_000)

# (area, industry) of the world's merchants: two eligible cells and one more area.
MERCHANT_CELLS = (("410105", "5211"), ("410102", "6210"), ("410105", "6210"))


def name_index(name: str) -> str:
    return crypto.blind_index("name", normalize_for_index("name", name))


def world(consumers, campaign=None) -> SimpleNamespace:
    """Merchants in three cells, the campaign's industry and area rules (one campaign only:
    `campaign_for_issue_date` must find exactly one)."""
    campaign = campaign or prize_campaign()
    campaign.cap_per_day = 4
    campaign.save(update_fields=["cap_per_day"])
    for code in ("52", "62"):
        CampaignIndustry.objects.create(campaign=campaign, code=code)
    CampaignArea.objects.create(campaign=campaign, code="4101", label="郑州市")
    merchants = [
        MerchantFactory(
            uscc=make_uscc(next(_usccs), area=area), area_code=area, industry_code=industry
        )
        for area, industry in MERCHANT_CELLS
    ]
    return SimpleNamespace(campaign=campaign, merchants=merchants, consumers=consumers)


def record_for(merchant, *, buyer_name: str, total: Decimal, number: str | None = None):
    number = number or make_invoice_number(next(_numbers))
    tax = (total * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
    issued_at = timezone.now() - timedelta(days=1)
    return TaxInvoiceRecord.objects.create(
        number=number,
        issued_at=issued_at,
        seller_uscc=merchant.uscc,
        seller_name=merchant.name,
        buyer_name_index=name_index(buyer_name),
        amount=total - tax,
        tax=tax,
        total=total,
        industry_code=merchant.industry_code,
        area_code=merchant.area_code,
        last_synced_at=timezone.now(),
    )


def body_for(number: str, total: Decimal) -> dict:
    issued = timezone.localdate() - timedelta(days=1)
    return {"number": number, "issue_date": issued.isoformat(), "total": str(total)}


def submit(consumer, merchant, *, total=Decimal("200.00"), name_ok=True):
    """Submit an invoice the tax authority knows; returns the invoice (or None if refused)."""
    from apps.invoices.exceptions import InvoiceRejected

    buyer = consumer.real_name if name_ok else "某某某"
    record = record_for(merchant, buyer_name=str(buyer), total=total)
    try:
        return invoice_submit(consumer=consumer, data=body_for(record.number, total)).invoice
    except InvoiceRejected:
        return None


def submit_unknown(consumer, *, total=Decimal("150.00")):
    """Submit an invoice the tax authority does not know yet: it stays pending."""
    number = make_invoice_number(next(_numbers))
    return invoice_submit(consumer=consumer, data=body_for(number, total)).invoice
