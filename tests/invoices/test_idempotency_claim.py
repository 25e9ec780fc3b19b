"""The idempotency claim that travels with the view's first read (`idempotent(
claim_with_first_read=True)`, the invoice submission): it still holds before any work, for
every way a request can go."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.db import connection

from apps.accounts.models import Consumer
from apps.common import idempotency
from apps.common.models import IdempotencyRecord
from apps.common.queries import fetch_one
from apps.invoices.models import Invoice
from tests.factories.core import UserFactory
from tests.invoices.conftest import submit
from tests.invoices.test_submission_querycount import counted_round_trips

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CLAIM = ("INSERT INTO", IdempotencyRecord._meta.db_table)


def test_the_claim_travels_with_the_duplicate_check_in_one_statement(api, campaign, make_record):
    _record, body = make_record()
    with counted_round_trips() as trips:
        response = submit(api, body, key="claim-travels-1")
    assert response.status_code == 201, response.content
    # The claim, the duplicate check and the registry record: one statement
    # (`apps.common.queries._fused_reads`), the claim's INSERT in its WITH clause.
    (_index, sql, _piped), *_ = trips.matching(*CLAIM)  # (then the reply, batched)
    assert sql.startswith("WITH r0 AS (INSERT INTO")
    assert f'FROM "{Invoice._meta.db_table}"' in sql or f"FROM {Invoice._meta.db_table}" in sql
    assert "invoices_taxinvoicerecord" in sql


def test_a_key_in_progress_elsewhere_gets_409_and_nothing_is_done(
    api, consumer, campaign, make_record
):
    _record, body = make_record()
    text = json.dumps(body, sort_keys=True, ensure_ascii=False)
    fingerprint = hashlib.sha256(f"POST /api/v1/invoices/\n{text}".encode()).hexdigest()
    IdempotencyRecord.objects.create(
        user=consumer.user,
        key="claimed-elsewhere-1",
        fingerprint=fingerprint,
        state=IdempotencyRecord.State.IN_PROGRESS,
    )
    response = submit(api, body, key="claimed-elsewhere-1")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "idempotency.in_progress"
    assert not Invoice.objects.filter(number=body["number"]).exists()
    # Another body under that key: refused as a reused key, nothing done either.
    _record, other = make_record()
    response = submit(api, other, key="claimed-elsewhere-1")
    assert response.status_code == 422 and response.json()["code"] == "idempotency.key_reused"
    assert not Invoice.objects.filter(number=other["number"]).exists()


def test_a_malformed_body_claims_the_key_at_the_end_and_replays_its_400(api, campaign):
    body = {"number": "12", "issue_date": "2026-01-01", "total": "10.00"}
    with counted_round_trips() as trips:
        first = submit(api, body, key="malformed-key-1")
    assert first.status_code == 400, first.content
    claim = trips.matching(*CLAIM)
    assert len(claim) == 1 and not claim[0][2]  # no read to travel with: sent alone
    second = submit(api, body, key="malformed-key-1")
    assert second.status_code == 400 and second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"


def test_a_server_fault_forgets_the_key_so_a_retry_runs(api, campaign, make_record, monkeypatch):
    from apps.invoices import services

    real = services.invoice_submit
    calls = []

    def failing_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return real(**kwargs)

    monkeypatch.setattr("apps.invoices.api.views.invoice_submit", failing_once)
    _record, body = make_record()
    api.raise_request_exception = True
    with pytest.raises(RuntimeError):
        submit(api, body, key="server-fault-1")
    assert not IdempotencyRecord.objects.filter(key="server-fault-1").exists()
    api.raise_request_exception = False
    retry = submit(api, body, key="server-fault-1")
    assert retry.status_code == 201, retry.content


def test_any_other_statement_sends_the_claim_first_alone():
    """A view whose first statement is not a `fetch_one` read (an ORM query, a write): the
    claim goes before it, on its own; a taken key stops the statement from running."""
    user = UserFactory()
    claim = idempotency._ClaimWithFirstRead(user, "wrapper-key-1", "f")
    try:
        with counted_round_trips() as trips:
            assert not Consumer.objects.filter(user=user).exists()
        assert [sql.split()[0] for sql, _piped in trips.seen] == ["INSERT", "SELECT"]
        assert claim.settle().pk is not None
    finally:
        claim.close()
    assert connection.execute_wrappers == []
    taken = idempotency._ClaimWithFirstRead(user, "wrapper-key-1", "f")
    try:
        with counted_round_trips() as trips, pytest.raises(idempotency._KeyTaken):
            Consumer.objects.filter(user=user).exists()
        assert [sql.split()[0] for sql, _piped in trips.seen] == ["INSERT"]
    finally:
        taken.close()


def test_a_taken_key_stops_the_read_that_carried_the_claim():
    user = UserFactory()
    IdempotencyRecord.objects.create(user=user, key="taken-key-1", fingerprint="f")
    claim = idempotency._ClaimWithFirstRead(user, "taken-key-1", "f")
    try:
        with pytest.raises(idempotency._KeyTaken):
            fetch_one("SELECT 1")
        with pytest.raises(idempotency._KeyTaken):
            claim.settle()
    finally:
        claim.close()
    assert connection.execute_wrappers == []
