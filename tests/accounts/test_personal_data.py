"""Revealing and erasing personal data: permission, reason, audit; money records survive."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Consumer
from apps.accounts.services import AccountError, consumer_reveal_personal_data
from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify
from apps.invoices.models import Invoice
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import ConsumerFactory, InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db


def staff_in(group_name: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def reveal_url(consumer):
    return reverse("admin:accounts_consumer_reveal", args=[consumer.pk])


def test_complaint_handler_reveals_with_a_reason_and_it_is_audited(client):
    consumer = ConsumerFactory(phone="13912345678")
    handler = staff_in("投诉处理员")
    sign_in_staff(client, handler)
    change = client.get(reverse("admin:accounts_consumer_change", args=[consumer.pk]))
    assert reveal_url(consumer) in change.content.decode()
    response = client.post(
        reveal_url(consumer), {"field": "phone", "reason": "工单 2026-0001 核实"}
    )
    assert response.status_code == 200
    assert "13912345678" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="personal_data.revealed")
    assert event.actor_id == handler.pk and event.reason == "工单 2026-0001 核实"
    assert event.after == {"field": "phone"} and "13912345678" not in str(event.__dict__)
    assert audit_verify().ok


def test_reveal_without_reason_shows_nothing(client):
    consumer = ConsumerFactory(phone="13912345678")
    sign_in_staff(client, staff_in("投诉处理员"))
    response = client.post(reveal_url(consumer), {"field": "phone", "reason": ""})
    assert "13912345678" not in response.content.decode()
    assert not AuditEvent.objects.filter(action="personal_data.revealed").exists()


@pytest.mark.parametrize("group_name", ["数据分析", "审计员", "系统管理员", "专班管理员"])
def test_roles_without_the_permission_cannot_reveal(client, group_name):
    consumer = ConsumerFactory(phone="13912345678")
    sign_in_staff(client, staff_in(group_name))
    response = client.post(reveal_url(consumer), {"field": "phone", "reason": "just curious"})
    assert response.status_code in (403, 404)
    assert "13912345678" not in response.content.decode()


def test_service_refuses_and_audits_a_denied_reveal():
    consumer = ConsumerFactory()
    with pytest.raises(AccountError) as exc:
        consumer_reveal_personal_data(
            consumer=consumer, field="id_number", actor=staff_in("数据分析"), reason="reason"
        )
    assert exc.value.code == "auth.permission_denied"
    assert AuditEvent.objects.filter(action="personal_data.reveal_denied").exists()


def test_purge_erases_inactive_consumers_and_keeps_their_records():
    with time_machine.travel(timezone.now() - timedelta(days=1200)):
        old = ConsumerFactory()
        invoice = InvoiceFactory(consumer=old)
    recent = ConsumerFactory()
    out = io.StringIO()
    call_command("purge_personal_data", "--retention-days", "1095", stdout=out)
    assert "1 consumers" in out.getvalue()
    old = Consumer.objects.get(pk=old.pk)
    assert (old.real_name, old.id_number, old.phone) == ("", "", "")
    assert old.id_number_index is None and old.personal_data_erased_at is not None
    with connection.cursor() as cur:
        cur.execute("SELECT buyer_name FROM invoices_invoice WHERE id = %s", [invoice.pk])
        assert cur.fetchone()[0] == ""
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    assert Consumer.objects.get(pk=recent.pk).real_name
    assert AuditEvent.objects.filter(action="personal_data.erased", target_id=str(old.pk)).exists()
    # A rerun finds nothing more to do.
    call_command("purge_personal_data", stdout=io.StringIO())
    assert AuditEvent.objects.filter(action="personal_data.erased").count() == 1


def test_purge_refuses_a_retention_shorter_than_six_months():
    with pytest.raises(SystemExit):
        call_command("purge_personal_data", "--retention-days", "30", stderr=io.StringIO())
