"""Risk fixtures: the intake fixtures (campaign, consumer, registry records, consumer API) and
helpers that place earlier submissions in the database and score a new one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.invoices.choices import InvoiceStatus
from apps.risk.services import risk_assess_submission
from tests.factories.core import ConsumerFactory, InvoiceFactory, MerchantFactory, UserFactory
from tests.invoices.conftest import api, campaign, consumer, make_record

__all__ = ["api", "campaign", "consumer", "make_record"]


@dataclass(frozen=True)
class Record:
    """The tax authority's view of an invoice, as far as the rules read it."""

    seller_uscc: str
    total: Decimal
    issued_at: datetime | None


def staff(group: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def merchant(db):
    return MerchantFactory()


@pytest.fixture
def past(campaign):
    """Put an earlier submission in the database: `past(consumer, merchant, minutes_ago, ...)`."""

    def add(
        consumer,
        merchant,
        minutes_ago: float,
        *,
        total="200.00",
        issued_before=3600,
        device_hash="",
        status=InvoiceStatus.ACCEPTED,
    ):
        at = timezone.now() - timedelta(minutes=minutes_ago)
        return InvoiceFactory(
            consumer=consumer,
            merchant=merchant,
            campaign=campaign,
            total=Decimal(total),
            amount=None,
            tax=None,
            submitted_at=at,
            issued_at=at - timedelta(seconds=issued_before),
            status=status,
            rejection_code="x" if status == InvoiceStatus.REJECTED else "",
            device_hash=device_hash,
        )

    return add


@pytest.fixture
def assess(campaign):
    """Score a new submission now: `assess(consumer, merchant, total=..., ...)`."""

    def run(consumer, merchant, *, total="200.00", seconds_after_issue=3600, device_hash=""):
        record = Record(
            merchant.uscc,
            Decimal(total),
            timezone.now() - timedelta(seconds=seconds_after_issue),
        )
        return risk_assess_submission(
            consumer=consumer,
            record=record,
            campaign=campaign,
            merchant=merchant,
            device_hash=device_hash,
        )

    return run


def fired(decision) -> dict[str, int]:
    return {str(hit["rule"]): hit["points"] for hit in decision.hits}


@pytest.fixture
def other_consumer(db):
    return ConsumerFactory()
