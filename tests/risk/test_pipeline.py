"""The risk hook in the real submission pipeline: holds and blocks, the stored evidence, the
device fingerprint, draws, and the reviewer's release or rejection (audited, consumer told)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.audit.models import AuditEvent
from apps.draws.models import DrawTicket
from apps.invoices.models import Invoice
from apps.invoices.services import invoice_review
from apps.risk.models import RiskAssessment
from apps.risk.services import device_fingerprint, watch_add
from tests.draws.conftest import frozen_draw, manager, window  # noqa: F401 - fixtures
from tests.factories.core import ConsumerFactory, MerchantFactory
from tests.invoices.conftest import submit
from tools.sandbox import SMSSandbox

from .conftest import staff

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _shared_device(past, device_id: str):
    device = device_fingerprint(device_id)
    merchant = MerchantFactory()
    past(ConsumerFactory(), merchant, 300, device_hash=device)
    past(ConsumerFactory(), merchant, 200, device_hash=device)


def test_a_shared_device_holds_the_submission_with_its_evidence(api, make_record, past):
    _shared_device(past, "android-7f3a")
    _record, body = make_record()
    response = submit(api, body | {"device_id": "android-7f3a"})
    assert response.status_code == 201, response.json()
    invoice = Invoice.objects.get(uid=response.json()["invoice"]["uid"])
    assert invoice.status == "held" and invoice.entered_at is None
    assert invoice.device_hash == device_fingerprint("android-7f3a")
    assert "android-7f3a" not in invoice.device_hash  # only the keyed hash is stored
    assessment = RiskAssessment.objects.get(invoice=invoice)
    assert assessment.action == "hold" and assessment.hits[0]["rule"] == "shared_device"
    assert invoice.history.last().code == "risk.held"
    assert response.json()["instant_prize"] is None


def test_the_device_header_is_read_when_the_body_has_none(api, make_record, past):
    _shared_device(past, "ios-0001")
    _record, body = make_record()
    response = api.post(
        "/api/v1/invoices/",
        body,
        format="json",
        HTTP_IDEMPOTENCY_KEY="risk-device-header-1",
        HTTP_X_DEVICE_ID="ios-0001",
    )
    assert response.json()["invoice"]["status"] == "held"


def test_an_unremarkable_submission_is_accepted_and_leaves_no_assessment(
    api, make_record, campaign
):
    _record, body = make_record()
    response = submit(api, body | {"device_id": "own-phone"})
    assert response.status_code == 201, response.json()
    assert response.json()["invoice"]["status"] == "accepted"
    assert not RiskAssessment.objects.exists()


def test_a_blacklisted_consumer_is_blocked(api, consumer, make_record, campaign):
    watch_add(kind="consumer", value=str(consumer.public_id), actor=None, reason="farm")
    _record, body = make_record()
    response = submit(api, body)
    assert response.status_code == 422 and response.json()["code"] == "risk.blocked"
    invoice = Invoice.objects.get(consumer=consumer)
    assert invoice.status == "rejected" and invoice.rejection_code == "risk.blocked"
    assert RiskAssessment.objects.get(invoice=invoice).action == "block"


def test_held_and_blocked_invoices_get_no_ticket_until_released(
    api,
    consumer,
    campaign,
    make_record,
    past,
    manager,  # noqa: F811 - the draws fixture
    window,  # noqa: F811
):
    _shared_device(past, "shared-9")
    _r1, held_body = make_record()
    held = Invoice.objects.get(
        uid=submit(api, held_body | {"device_id": "shared-9"}).json()["invoice"]["uid"]
    )
    _r2, fine_body = make_record()
    fine = Invoice.objects.get(uid=submit(api, fine_body).json()["invoice"]["uid"])
    watch_add(kind="merchant", value=MerchantFactory().uscc, actor=None, reason="other shop")
    blocked_consumer = ConsumerFactory(real_name="张三")
    watch_add(kind="consumer", value=str(blocked_consumer.public_id), actor=None, reason="x y")
    assert held.status == "held" and fine.status == "accepted"

    draw = frozen_draw(campaign, manager, window)
    ticketed = set(DrawTicket.objects.filter(draw=draw).values_list("invoice_id", flat=True))
    assert fine.pk in ticketed and held.pk not in ticketed
    assert not Invoice.objects.filter(rejection_code="risk.blocked", draw_tickets__isnull=False)

    invoice_review(invoice=held, accept=True, actor=staff("审核员"), reason="核实为本人购物")
    held.refresh_from_db()
    assert held.status == "accepted" and held.entered_at is not None
    later = frozen_draw(
        campaign,
        manager,
        (window[0], window[1] + (window[1] - window[0]), window[2] + (window[1] - window[0])),
    )
    assert DrawTicket.objects.filter(draw=later, invoice=held).exists()


@pytest.fixture
def sms():
    templates = {"invoice_review": ("number_tail", "outcome")}
    with (
        SMSSandbox(templates=templates) as server,
        override_settings(
            SMS_BACKEND="apps.accounts.sms.HttpSMSBackend",
            SMS_GATEWAY_URL=server.base_url,
            SMS_GATEWAY_CLIENT_ID=server.client_id,
            SMS_GATEWAY_SECRET=server.secret,
        ),
    ):
        yield server


@pytest.mark.parametrize(
    "accept, outcome, action",
    [
        (True, "released", "invoice.released"),
        (False, "rejected", "invoice.review_rejected"),
    ],
)
def test_review_outcomes_are_audited_and_texted_to_the_consumer(
    api,
    consumer,
    make_record,
    past,
    sms,
    django_capture_on_commit_callbacks,
    accept,
    outcome,
    action,
):
    _shared_device(past, "shared-5")
    _record, body = make_record()
    held = Invoice.objects.get(
        uid=submit(api, body | {"device_id": "shared-5"}).json()["invoice"]["uid"]
    )
    reviewer = staff("审核员")
    with django_capture_on_commit_callbacks(execute=True):
        invoice_review(invoice=held, accept=accept, actor=reviewer, reason="人工复核")
    event = AuditEvent.objects.get(action=action, target_id=str(held.pk))
    assert event.actor_id == reviewer.pk and event.reason == "人工复核"
    (message,) = sms.messages_to(consumer.phone)
    assert message.template == "invoice_review"
    assert message.params == {"number_tail": held.number[-6:], "outcome": outcome}
    assert consumer.real_name not in str(message.params)


def test_nothing_is_texted_when_the_review_is_refused(api, make_record, sms, consumer, campaign):
    _record, body = make_record()
    accepted = Invoice.objects.get(uid=submit(api, body).json()["invoice"]["uid"])
    with pytest.raises(Exception, match="invalid_transition"):
        invoice_review(invoice=accepted, accept=True, actor=staff("审核员"), reason="again")
    assert not sms.messages_to(consumer.phone)
