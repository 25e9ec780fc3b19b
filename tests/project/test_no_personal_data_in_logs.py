"""A whole back-office day, with every log line captured: no personal data, no secret.

Checks both what our code emits (raw records) and what the configured handler writes.
"""

from __future__ import annotations

import io
import logging

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from apps.accounts.models import Consumer
from apps.common.logging import RedactPersonalDataFilter
from apps.invoices.models import Invoice
from apps.merchants.models import Merchant
from tests.accounts.helpers import STRONG_PASSWORD, enable_totp, login_with_totp, make_staff

pytestmark = pytest.mark.django_db


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.raw: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.raw.append(text)


@pytest.fixture
def captured_logs():
    """Raw records from every logger (before any filter), and the text that the project's
    configured console handler writes."""
    root = logging.getLogger()
    configured = [
        h
        for h in root.handlers
        if any(isinstance(f, RedactPersonalDataFilter) for f in h.filters)
        and isinstance(h, logging.StreamHandler)
    ]
    assert configured, "the project's console handler has lost its scrubbing filter"
    console = configured[0]
    raw = _Collect()
    written = io.StringIO()
    old_stream = console.setStream(written)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.handlers.insert(0, raw)  # before the scrubbing filter rewrites the record
    server = logging.getLogger("django.server")
    try:
        assert console in server.handlers, "runserver's request lines bypass the scrubbing"
        yield raw, written
    finally:
        root.removeHandler(raw)
        root.setLevel(old_level)
        console.setStream(old_stream)


def secrets_and_personal_data() -> set[str]:
    values = {
        settings.SECRET_KEY,
        settings.AUDIT_HMAC_KEY,
        *settings.BLIND_INDEX_KEYS.split(","),
        *(part.split(":", 2)[2] for part in settings.FIELD_ENCRYPTION_KEYS.split(";")),
    }
    for consumer in Consumer.objects.all():
        values |= {consumer.real_name, consumer.id_number, consumer.phone}
    return {v for v in values if v and len(v) >= 2}


def test_a_full_back_office_day_logs_no_personal_data(client, captured_logs):
    raw, written = captured_logs
    call_command(
        "seed_demo",
        "--invoices",
        "60",
        "--consumers",
        "12",
        "--merchants",
        "8",
        stdout=io.StringIO(),
    )
    consumer = (
        Consumer.objects.filter(real_name__isnull=False).exclude(id_number_index=None).first()
    )

    # Failed sign-ins (one with a phone number as login), then a real password + TOTP sign-in.
    client.post(reverse("account_login"), {"login": consumer.phone, "password": "nope-nope"})
    officer = make_staff("officer_day")
    officer.groups.add(Group.objects.get(name="投诉处理员"), Group.objects.get(name="风控专员"))
    secret = enable_totp(officer)
    login_with_totp(client, officer, STRONG_PASSWORD, secret)

    # The handler's day: find a consumer by ID number, open them, reveal a phone with a reason.
    changelist = reverse("admin:accounts_consumer_changelist")
    assert client.get(changelist, {"q": consumer.id_number}).status_code == 200
    detail = reverse("admin:accounts_consumer_change", args=[consumer.pk])
    assert client.get(detail).status_code == 200
    reveal = reverse("admin:accounts_consumer_reveal", args=[consumer.pk])
    client.post(reveal, {"field": "phone", "reason": "热线工单核实身份"})
    invoice = Invoice.objects.first()
    client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk]))
    merchant = Merchant.objects.filter(status="active").first()
    client.post(
        reverse("admin:merchants_merchant_changelist"),
        {"action": "suspend_merchants", "_selected_action": [merchant.pk]},
    )
    # A request that puts personal data in the URL, and a 404.
    client.get(f"/api/v1/nothing/{consumer.id_number}/{consumer.phone}")

    # Operations.
    for command in ("rotate_field_keys", "audit_verify", "purge_personal_data"):
        call_command(command, stdout=io.StringIO())

    forbidden = secrets_and_personal_data() | {secret}
    raw_text = "\n".join(raw.raw)
    assert raw.raw, "nothing was logged: the capture is broken"
    leaked_raw = sorted(v for v in forbidden if v in raw_text)
    # What our code emits carries none of it, except a URL that a client itself typed.
    assert all(v in (consumer.id_number, consumer.phone) for v in leaked_raw), leaked_raw
    leaked_written = sorted(v for v in forbidden if v in written.getvalue())
    assert not leaked_written, leaked_written
