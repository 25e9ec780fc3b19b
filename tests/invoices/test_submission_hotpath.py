"""Issue 11: what the submission hot path does instead of the generic machinery — the reply built
without a ModelSerializer, the app's session user read with its consumer in one query, an app
session's activity written at most hourly — gives the same answers as before."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.api.authentication import (
    APP_LAST_SEEN_WRITE_INTERVAL,
    authenticate_by_token,
    session_user,
)
from apps.accounts.sessions import SESSION_LAST_SEEN, session_store_class
from apps.invoices.api.serializers import InvoiceSerializer, invoice_payload
from apps.invoices.choices import InvoiceStatus, SourceChannel
from apps.invoices.models import Invoice
from tests.factories.core import ConsumerFactory, InvoiceFactory
from tests.invoices.conftest import app_client, submit

pytestmark = [pytest.mark.django_db]


def _token(client) -> str:
    return client._credentials["HTTP_X_SESSION_TOKEN"]


# --- prepared statements -----------------------------------------------------------------------


@pytest.mark.postgres
def test_the_submission_paths_statements_are_prepared(campaign, make_record):
    """PostgreSQL binds the parameters and prepares what a connection runs often (planning
    these statements cost more than running them), unless turned off for PgBouncer."""
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options.get("server_side_binding") is True and options.get("prepare_threshold") == 5
    for _ in range(6):
        _record, body = make_record()
        response = submit(app_client(ConsumerFactory(real_name="张三")), body)
        assert response.status_code == 201, response.content
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = " ".join(row[0] for row in cursor.fetchall())
    # The idempotency claim with the duplicate check and the registry look-up (one statement),
    # the consumer lock and the invoice INSERT (with the batch's other writes), among others.
    assert 'WITH r0 AS (INSERT INTO "common_idempotencyrecord"' in prepared
    assert 'FROM "invoices_invoice" WHERE number = $' in prepared
    assert '"invoices_taxinvoicerecord"' in prepared
    assert 'FROM "accounts_consumer" WHERE "id" = $' in prepared
    assert 'INSERT INTO "invoices_invoice"' in prepared


# --- the reply -------------------------------------------------------------------------------


def test_the_reply_is_what_the_invoice_serializer_says(consumer, campaign, make_record):
    _record, body = make_record()
    response = submit(app_client(consumer), body)
    assert response.status_code == 201, response.content
    accepted = Invoice.objects.select_related("campaign").get(number=body["number"])
    assert response.json()["invoice"] == InvoiceSerializer(accepted).data
    others = [
        InvoiceFactory(status=InvoiceStatus.PENDING),
        InvoiceFactory(
            status=InvoiceStatus.REJECTED,
            rejection_code="invoice.duplicate",
            decided_at=timezone.now(),
            seller_name="郑州某某商贸有限公司",
            source_channel=SourceChannel.STAFF,
            invoice_type="31",
        ),
        InvoiceFactory(status=InvoiceStatus.REJECTED, rejection_code="no.such_code"),
    ]
    for invoice in [accepted, *others]:
        for fresh in (invoice, Invoice.objects.get(pk=invoice.pk)):
            assert invoice_payload(fresh) == InvoiceSerializer(fresh).data
            assert list(invoice_payload(fresh)) == list(InvoiceSerializer(fresh).data)
            with timezone.override(UTC):  # "Z" for UTC, as DRF writes it
                assert invoice_payload(fresh) == InvoiceSerializer(fresh).data


# --- the app session's user --------------------------------------------------------------------


def _store(client):
    return session_store_class()(session_key=_token(client))


def test_the_session_user_comes_with_its_consumer_in_one_query(consumer):
    client = app_client(consumer)
    with CaptureQueriesContext(connection) as ctx:
        user, _session = authenticate_by_token(_token(client))
        assert user.consumer == consumer
    # The session (unless read from its cached copy), the user joined with its consumer.
    cached = settings.SESSION_ENGINE == "apps.accounts.session_store"
    assert len(ctx.captured_queries) == (1 if cached else 2)
    assert 'JOIN "accounts_consumer"' in ctx.captured_queries[-1]["sql"]


def test_the_session_user_is_refused_as_django_refuses_it(consumer):
    client = app_client(consumer)
    assert session_user(_store(client)) == consumer.user
    # A changed password (another session hash) ends the session.
    user = consumer.user
    user.set_password("Another-9-Password!")
    user.save()
    store = _store(client)
    assert session_user(store) is None
    assert not Session.objects.filter(session_key=_token(client)).exists()
    # A deactivated user is refused (the backend's `user_can_authenticate`).
    other = ConsumerFactory()
    client = app_client(other)
    type(other.user).objects.filter(pk=other.user.pk).update(is_active=False)
    assert session_user(_store(client)) is None
    response = submit(client, {"number": "1", "issue_date": "2026-01-01", "total": "1"})
    assert response.status_code == 401
    # A session naming a backend that is not configured (any more) is no sign-in.
    third = ConsumerFactory()
    store = _store(app_client(third))
    store["_auth_user_backend"] = "somewhere.else.Backend"
    assert session_user(store) is None
    # No hash at all: refused and flushed, as django.contrib.auth.get_user does.
    store = _store(app_client(third))
    del store[HASH_SESSION_KEY]
    assert session_user(store) is None


def test_a_staff_token_is_still_refused(consumer):
    consumer.user.is_staff = True
    consumer.user.save(update_fields=["is_staff"])
    response = submit(app_client(consumer), {"number": "1", "issue_date": "2026-01-01"})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.token_invalid"


def test_an_app_session_records_its_activity_at_most_hourly(consumer):
    client = app_client(consumer)
    token = _token(client)

    def last_seen():
        return session_store_class()(session_key=token)[SESSION_LAST_SEEN]

    start = last_seen()
    with time_machine.travel(timezone.now() + timedelta(minutes=30)):
        with CaptureQueriesContext(connection) as ctx:
            assert authenticate_by_token(token) is not None
        assert not any(q["sql"].startswith("UPDATE") for q in ctx.captured_queries)
        assert last_seen() == start
    later = timezone.now() + timedelta(seconds=APP_LAST_SEEN_WRITE_INTERVAL + 1)
    with time_machine.travel(later):
        assert authenticate_by_token(token) is not None
        assert last_seen() > start + APP_LAST_SEEN_WRITE_INTERVAL
        # The store's own expiry moved on with it (the 7-day idle limit from now).
        row = Session.objects.get(session_key=token)
        assert row.expire_date > timezone.now() + timedelta(days=6, hours=23)
