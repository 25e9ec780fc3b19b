"""Runbook drill "broker down": the broker URL points at a port nobody listens on.

What the runbook promises: consumers' submissions are still accepted (submission never waits
for the broker), an uploaded tax feed is kept and the page answers, nothing is lost, and once
the broker is back the periodic sweeps pick up what waited.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from apps.invoices.models import FeedImport, FeedImportStatus, Invoice
from apps.invoices.tasks import recheck_due_invoices, requeue_stalled_feed_imports
from tests.invoices.conftest import submit
from tests.invoices.test_feed_import import BAD_FEED, EXPECTED_ERRORS, errors_of

pytestmark = pytest.mark.django_db


def test_submissions_are_accepted_while_the_broker_is_down(
    broker_down, api, campaign, make_record, django_capture_on_commit_callbacks
):
    bodies = [make_record(total=f"{100 + i}.00")[1] for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [submit(api, body).status_code for body in bodies]
    assert statuses == [201, 201, 201]
    # All recorded and decided as without an outage (entered, or held by a risk rule).
    recorded = set(Invoice.objects.values_list("number", "status"))
    assert {number for number, _ in recorded} == {body["number"] for body in bodies}
    assert {status for _, status in recorded} <= {"accepted", "held"}
    assert "accepted" in {status for _, status in recorded}
    # The broker really was unreachable: a publish fails rather than silently succeeding.
    from apps.common.tasks import purge_idempotency_records

    with pytest.raises(Exception):  # noqa: B017 - kombu raises its OperationalError
        purge_idempotency_records.delay()


def test_a_pending_invoice_waits_in_the_database_not_in_the_broker(
    broker_down, api, campaign, django_capture_on_commit_callbacks
):
    """Not yet at the tax authority: kept pending with its next check time; after the outage
    the beat sweep (a database query, not a message) re-checks it."""
    from apps.invoices.models import TaxInvoiceRecord
    from tests.factories.core import make_invoice_number

    number = make_invoice_number(990_001)
    body = {"number": number, "issue_date": timezone.localdate().isoformat(), "total": "88.00"}
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(api, body)
    assert response.status_code == 201 and response.json()["invoice"]["status"] == "pending"
    invoice = Invoice.objects.get(number=number)
    assert invoice.next_check_at is not None
    broker_down.conf.task_always_eager = True  # the broker is back (tests run tasks eagerly)
    assert TaxInvoiceRecord.objects.filter(number=number).count() == 0
    Invoice.objects.filter(pk=invoice.pk).update(next_check_at=timezone.now() - timedelta(1))
    assert recheck_due_invoices() == 1  # picked up from the database
    invoice.refresh_from_db()
    assert invoice.status == "pending" and invoice.next_check_at > timezone.now()


def test_a_feed_upload_is_kept_and_imported_after_the_outage(
    broker_down, feed_admin, admin_client, django_capture_on_commit_callbacks, caplog
):
    upload = SimpleUploadedFile("outage.csv", BAD_FEED, content_type="text/csv")
    with (
        caplog.at_level(logging.ERROR, logger="apps.invoices.tasks"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = admin_client.post(reverse("admin:invoices_feedimport_add"), {"file": upload})
    assert response.status_code == 302  # not a 500 after the upload was already saved
    feed_import = FeedImport.objects.get()
    assert feed_import.status == FeedImportStatus.QUEUED and feed_import.started_at is None
    assert "could not be queued now" in caplog.text

    # Still down: the sweep cannot queue it either, and it stays queued (nothing lost).
    FeedImport.objects.filter(pk=feed_import.pk).update(
        created_at=timezone.now() - timedelta(minutes=20)
    )
    with pytest.raises(Exception):  # noqa: B017
        requeue_stalled_feed_imports()
    assert FeedImport.objects.get().status == FeedImportStatus.QUEUED

    broker_down.conf.task_always_eager = True  # the broker is back
    assert requeue_stalled_feed_imports() == 1
    feed_import.refresh_from_db()
    assert feed_import.status == FeedImportStatus.DONE
    assert errors_of(feed_import) == EXPECTED_ERRORS
    assert requeue_stalled_feed_imports() == 0  # done imports are left alone


def test_a_fresh_upload_is_not_requeued_while_it_may_still_be_in_the_queue(feed_admin):
    from tests.factories.core import UserFactory

    FeedImport.objects.create(
        file_name="x.csv", uploaded_by=UserFactory(is_staff=True), status=FeedImportStatus.QUEUED
    )
    assert requeue_stalled_feed_imports() == 0
