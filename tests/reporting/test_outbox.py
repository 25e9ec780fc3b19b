"""Done means 2: the government-app outbox against a local receiver on 127.0.0.1
(`tools.sandbox.gov_receiver`, written from docs/integration.md)."""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
import urllib3
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.schedules import SCHEDULES
from apps.reporting import outbox, services
from apps.reporting.models import DeliveryAttempt, OutboxEvent, OutboxStatus
from tests.factories.core import ConsumerFactory, UserFactory
from tests.reporting.helpers import submit, world
from tools.sandbox.gov_receiver import GovReceiver, expected_signature

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def receiver():
    with (
        GovReceiver() as rx,
        override_settings(
            REPORTING_PUSH_URL=rx.url,
            REPORTING_PUSH_KEY_ID=rx.key_id,
            REPORTING_PUSH_SECRET=rx.secret,
            REPORTING_PUSH_TIMEOUT=0.5,
            REPORTING_PUSH_BACKOFF_SECONDS=10,
            REPORTING_PUSH_BACKOFF_MAX_SECONDS=600,
            REPORTING_PUSH_MAX_ATTEMPTS=6,
            REPORTING_PUSH_BATCH=3,
        ),
    ):
        yield rx


def _activity(n: int = 6):
    """Real submissions: each writes events for the cells and days it changes."""
    consumers = [ConsumerFactory(real_name=name) for name in ("张三", "李四")]
    w = world(consumers)
    for i in range(n):
        submit(consumers[i % 2], w.merchants[i % 3], total=Decimal("150.00") + i)
    return w


def _post(rx, body: bytes, *, secret=None, timestamp=None, nonce=None, key=None):
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json",
        "X-Exchange-Key": key or rx.key_id,
        "X-Exchange-Timestamp": timestamp,
        "X-Exchange-Nonce": nonce,
        "X-Exchange-Signature": expected_signature(secret or rx.secret, timestamp, nonce, body),
    }
    reply = urllib3.request("POST", rx.url, body=body, headers=headers, retries=False)
    return reply.status, json.loads(reply.data or b"{}"), headers


def test_events_are_written_in_the_changes_transaction_and_carry_no_personal_data():
    consumers = [ConsumerFactory(real_name="张三")]
    w = world(consumers)
    with transaction.atomic():
        submit(consumers[0], w.merchants[0])
        assert OutboxEvent.objects.exists()
        transaction.set_rollback(True)
    assert not OutboxEvent.objects.exists()  # rolled back with the submission
    invoice = submit(consumers[0], w.merchants[0])
    events = list(OutboxEvent.objects.order_by("id"))
    assert {e.event_type for e in events} == {"invoice_stats", "participants"}
    text = json.dumps([e.payload for e in events], ensure_ascii=False)
    for secret in (invoice.number, str(consumers[0].real_name), consumers[0].phone, "张三"):
        assert secret not in text
    cell = [e for e in events if e.event_type == "invoice_stats"][-1].payload
    assert cell["accepted"] == 1 and cell["campaign"] == w.campaign.code
    assert cell["area_code"] == w.merchants[0].area_code


def test_receiver_down_for_a_while_then_every_event_arrives_once_in_order(receiver):
    _activity(8)
    expected = list(OutboxEvent.objects.order_by("id").values_list("event_id", "stream", "seq"))
    assert len(expected) > receiver_batch() * 2  # several batches
    receiver.down()
    start = timezone.now()
    with time_machine.travel(start, tick=True) as clock:
        assert outbox.outbox_deliver() == {"batches": 0, "failed": 1}
        head = OutboxEvent.objects.order_by("id").first()
        assert head.attempts == 1 and head.last_error == "http_503"
        first_wait = head.next_attempt_at - timezone.now()
        # Not due yet: nothing is sent.
        requests = len(receiver.requests)
        outbox.outbox_deliver()
        assert len(receiver.requests) == requests
        clock.shift(timedelta(seconds=11))
        outbox.outbox_deliver()  # still down: second failure, longer wait
        head.refresh_from_db()
        assert head.attempts == 2
        assert head.next_attempt_at - timezone.now() > first_wait + timedelta(seconds=5)
        # A reply lost on the way back: the receiver applies the batch, we time out.
        receiver.up()
        receiver.faults.next(delay=1.0)
        clock.shift(timedelta(seconds=25))
        outbox.outbox_deliver()
        head.refresh_from_db()
        assert head.status == OutboxStatus.PENDING and head.last_error == "timeout"
        clock.shift(timedelta(seconds=50))
        result = outbox.outbox_deliver()
    assert result["failed"] == 0
    assert not OutboxEvent.objects.exclude(status=OutboxStatus.DELIVERED).exists()
    applied = [(e["id"], e["stream"], e["seq"]) for e in receiver.applied]
    # Exactly once (the redelivered batch was acknowledged as duplicates, not applied again)…
    assert sorted(applied) == sorted((str(i), s, q) for i, s, q in expected)
    assert len({a[0] for a in applied}) == len(applied)
    assert receiver.stale == []
    # …and in order per stream: consecutive sequence numbers from the first.
    per_stream = defaultdict(list)
    for _id, stream, seq in applied:
        per_stream[stream].append(seq)
    for stream, seqs in per_stream.items():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), stream
    log = list(DeliveryAttempt.objects.order_by("id"))
    assert [a.ok for a in log[:3]] == [False, False, False]
    assert log[0].http_status == 503 and log[2].error == "timeout"
    assert all(a.ok for a in log[3:])


def receiver_batch() -> int:
    from django.conf import settings

    return settings.REPORTING_PUSH_BATCH


def test_the_documented_verification_rejects_forged_and_replayed_requests(receiver):
    body = json.dumps({"events": []}).encode()
    status, reply, headers = _post(receiver, body)
    assert (status, reply) == (200, {"accepted": 0, "duplicates": 0, "stale": 0})
    # The same request again (a replay): refused.
    replay = urllib3.request("POST", receiver.url, body=body, headers=headers, retries=False)
    assert replay.status == 401 and json.loads(replay.data)["error"] == "replayed_nonce"
    # Signed with another secret, or with the body changed after signing: forged.
    assert _post(receiver, body, secret="not-the-secret")[1]["error"] == "bad_signature"
    tampered = dict(headers, **{"X-Exchange-Nonce": secrets.token_hex(16)})
    reply = urllib3.request("POST", receiver.url, body=body + b" ", headers=tampered)
    assert reply.status == 401 and json.loads(reply.data)["error"] == "bad_signature"
    old = str(int(time.time()) - 3600)
    assert _post(receiver, body, timestamp=old)[1]["error"] == "stale_timestamp"
    assert _post(receiver, body, key="someone-else")[1]["error"] == "unknown_key"


def test_a_sender_with_the_wrong_secret_gets_nothing_through(receiver):
    _activity(1)
    with override_settings(REPORTING_PUSH_SECRET="a-wrong-secret-0123456789"):
        outbox.outbox_deliver()
    assert receiver.applied == []
    assert receiver.requests[-1].status == 401 and receiver.requests[-1].error == "bad_signature"
    assert not OutboxEvent.objects.filter(status=OutboxStatus.DELIVERED).exists()
    assert DeliveryAttempt.objects.get().http_status == 401


def test_dead_letters_are_replayed_by_an_official(receiver):
    _activity(1)
    official = UserFactory(username="exchange-officer", is_staff=True)
    receiver.down()
    with (
        override_settings(REPORTING_PUSH_MAX_ATTEMPTS=2),
        time_machine.travel(timezone.now(), tick=True) as clock,
    ):
        outbox.outbox_deliver()
        clock.shift(timedelta(seconds=30))
        outbox.outbox_deliver()
    dead = list(OutboxEvent.objects.filter(status=OutboxStatus.DEAD))
    assert dead and not OutboxEvent.objects.filter(status=OutboxStatus.PENDING).exists()
    receiver.up()
    assert outbox.outbox_deliver() == {"batches": 0, "failed": 0}  # dead letters wait
    replayed = services.outbox_replay(
        event_ids=[e.pk for e in dead], actor=official, reason="receiver back"
    )
    assert replayed == len(dead)
    assert AuditEvent.objects.filter(action="outbox.replayed").exists()
    outbox.outbox_deliver()
    assert len(receiver.applied) == len(dead)
    assert not OutboxEvent.objects.exclude(status=OutboxStatus.DELIVERED).exists()


def test_delivery_runs_from_beat_every_minute():
    entry = next(s for s in SCHEDULES if s.task == "apps.reporting.tasks.outbox_deliver")
    assert entry.minute == "*"


def test_without_an_endpoint_nothing_is_sent():
    _activity(1)
    assert outbox.outbox_deliver() == {"batches": 0, "failed": 0}
    assert not DeliveryAttempt.objects.exists()


def test_a_change_is_pushed_right_after_its_commit(receiver, django_capture_on_commit_callbacks):
    """Besides the minute beat entry, a commit that wrote events asks for a delivery run a few
    seconds later (Celery runs it at once here)."""
    consumers = [ConsumerFactory(real_name="张三")]
    w = world(consumers)
    with django_capture_on_commit_callbacks(execute=True):
        submit(consumers[0], w.merchants[0])
    events = set(OutboxEvent.objects.values_list("event_id", flat=True))
    assert events and {e["id"] for e in receiver.applied} == {str(e) for e in events}
    assert not OutboxEvent.objects.exclude(status=OutboxStatus.DELIVERED).exists()
