"""A reviewer releases or rejects held invoices in the admin; audited; only with permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.invoices.models import Invoice
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = reverse("admin:invoices_invoice_changelist")


def staff(group):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def test_reviewer_releases_a_held_invoice(client, campaign):
    held = InvoiceFactory(status="held", campaign=campaign)
    sign_in_staff(client, staff("审核员"))
    response = client.post(
        URL, {"action": "release_held", "_selected_action": [held.pk], "reason": "人工核实无误"}
    )
    assert response.status_code == 302
    held.refresh_from_db()
    assert held.status == "accepted" and held.entered_at
    assert held.history.last().note == "人工核实无误"
    assert AuditEvent.objects.filter(action="invoice.released", target_id=str(held.pk)).exists()


def test_reviewer_rejects_and_a_reason_is_required(client, campaign):
    held = InvoiceFactory(status="held", campaign=campaign)
    sign_in_staff(client, staff("审核员"))
    client.post(URL, {"action": "reject_held", "_selected_action": [held.pk], "reason": ""})
    held.refresh_from_db()
    assert held.status == "held"
    client.post(URL, {"action": "reject_held", "_selected_action": [held.pk], "reason": "拆单"})
    held.refresh_from_db()
    assert held.status == "rejected" and held.rejection_code == "review.rejected"


def test_only_held_invoices_can_be_released(client):
    rejected = InvoiceFactory(status="rejected", rejection_code="invoice.mismatch")
    sign_in_staff(client, staff("审核员"))
    client.post(URL, {"action": "release_held", "_selected_action": [rejected.pk], "reason": "x y"})
    assert Invoice.objects.get(pk=rejected.pk).status == "rejected"


def test_statistician_cannot_review(client):
    held = InvoiceFactory(status="held")
    sign_in_staff(client, staff("数据分析"))
    client.post(URL, {"action": "release_held", "_selected_action": [held.pk], "reason": "x y"})
    assert Invoice.objects.get(pk=held.pk).status == "held"
