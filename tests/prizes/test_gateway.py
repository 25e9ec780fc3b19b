"""The production payment-gateway client (`HttpPaymentGateway`) against the sandbox provider on
127.0.0.1: transfers, idempotent retries, faults, callbacks and statements.

"Paid exactly once" is always asserted on the provider's side (`payment_sandbox.paid()`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone

from apps.common.http import signed_headers
from apps.prizes.gateway import (
    CallbackRejected,
    GatewayMisuse,
    GatewayUnavailable,
    HttpPaymentGateway,
    PaymentGateway,
    StatementLine,
    TransferRequest,
    TransferResult,
    TransferStatus,
    get_payment_gateway,
    parse_statement,
)
from tests.prizes.conftest import PAYMENT_CLIENT_TIMEOUT, PAYMENT_TIMEOUT_FAULT_SECONDS
from tools.sandbox.payment_gateway import PaymentSandbox, PaymentSandboxControl

ROOT = Path(__file__).resolve().parents[2]
CARD = "6222021234567890"  # an ordinary card: paid at once
NAME = "张三"


def req(n: int = 1, *, amount: str = "640.00", account_no: str = CARD, **fields) -> TransferRequest:
    return TransferRequest(
        request_no=f"PAY-{n:08d}",
        amount=Decimal(amount),
        account_type=fields.pop("account_type", "bank_card"),
        account_no=account_no,
        account_name=fields.pop("account_name", NAME),
        memo=fields.pop("memo", "发票抽奖奖金"),
    )


def make_gateway(sandbox, *, notify_url: str = "", **overrides) -> HttpPaymentGateway:
    values = {
        "base_url": sandbox.url,
        "client_id": sandbox.client_id,
        "secret": sandbox.secret,
        "callback_secret": sandbox.callback_secret,
        "timeout": PAYMENT_CLIENT_TIMEOUT,
        "notify_url": notify_url,
        **overrides,
    }
    return HttpPaymentGateway(**values)


@pytest.fixture
def gateway(payment_sandbox):
    return make_gateway(payment_sandbox)


def paid_once(sandbox, request_no: str) -> dict:
    paid = [t for t in sandbox.paid() if t["request_no"] == request_no]
    assert len(paid) == 1, f"{request_no} paid {len(paid)} times"
    assert sandbox.executions.count(request_no) == 1 and paid[0]["executions"] == 1
    return paid[0]


def wait_until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


# --- Requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_no", "pay-00000001"),
        ("request_no", "PAY-1"),
        ("request_no", "PAY_00000001"),
        ("amount", Decimal("0.00")),
        ("amount", Decimal("-1.00")),
        ("amount", Decimal("1.005")),
        ("amount", Decimal("NaN")),
        ("amount", 12.5),
        ("account_type", "alipay"),
        ("account_no", ""),
        ("account_name", "x" * 65),
        ("memo", "x" * 129),
    ],
)
def test_malformed_requests_never_leave(field, value):
    fields = {
        "request_no": "PAY-00000001",
        "amount": Decimal("1.00"),
        "account_type": "bank_card",
        "account_no": CARD,
        "account_name": NAME,
        field: value,
    }
    with pytest.raises(ValueError):
        TransferRequest(**fields)


def test_request_repr_hides_the_account():
    text = repr(req(1))
    assert CARD not in text and NAME not in text and "PAY-00000001" in text


def test_the_http_client_is_a_payment_gateway(gateway):
    assert isinstance(gateway, PaymentGateway)


# --- Definite outcomes -----------------------------------------------------------------------


def test_success_is_paid_once_with_the_documented_body(payment_sandbox, gateway):
    result = gateway.transfer(req(1, amount="640.00"))
    assert result.status == TransferStatus.SUCCESS and result.is_final
    assert result.request_no == "PAY-00000001" and result.amount == Decimal("640.00")
    assert result.provider_ref.startswith("SBX") and not result.fail_code
    assert result.finished_at is not None and result.finished_at.utcoffset() is not None
    body = payment_sandbox.last_request.json()
    assert body == {
        "request_no": "PAY-00000001",
        "amount": "640.00",
        "currency": "CNY",
        "account_type": "bank_card",
        "account_no": CARD,
        "account_name": NAME,
        "memo": "发票抽奖奖金",
    }
    assert {"X-Client-Id", "X-Timestamp", "X-Nonce", "X-Signature"} <= set(
        payment_sandbox.last_request.headers
    )
    paid = paid_once(payment_sandbox, "PAY-00000001")
    assert paid["amount"] == "640.00" and paid["provider_ref"] == result.provider_ref


@pytest.mark.parametrize(
    ("suffix", "code"),
    [("4000", "account_invalid"), ("4001", "account_frozen"), ("4002", "name_mismatch")],
)
def test_a_definite_refusal_is_failed_with_its_code(payment_sandbox, gateway, suffix, code):
    result = gateway.transfer(req(2, account_no=f"622202123456{suffix}"))
    assert result.status == TransferStatus.FAILED and result.is_final
    assert result.fail_code == code and result.fail_message
    assert payment_sandbox.paid() == []
    # A refused number stays refused: asking again does not pay.
    assert gateway.transfer(req(2, account_no=f"622202123456{suffix}")).status == "FAILED"
    assert payment_sandbox.paid() == []


def test_insufficient_funds_is_a_refusal():
    with PaymentSandbox(balance="100.00") as sandbox:
        gateway = make_gateway(sandbox)
        assert gateway.transfer(req(1, amount="60.00")).status == TransferStatus.SUCCESS
        refused = gateway.transfer(req(2, amount="60.00"))
        assert (refused.status, refused.fail_code) == ("FAILED", "insufficient_funds")
        assert [t["request_no"] for t in sandbox.paid()] == ["PAY-00000001"]


def test_processing_then_success_by_query(payment_sandbox, gateway):
    first = gateway.transfer(req(3, account_no="6222021234565000"))
    assert first.status == TransferStatus.PROCESSING and not first.is_final
    assert first.finished_at is None and payment_sandbox.paid() == []
    final = wait_until(
        lambda: (r := gateway.query("PAY-00000003")).status == "SUCCESS" and r, timeout=5
    )
    assert final.provider_ref == first.provider_ref and final.finished_at is not None
    paid_once(payment_sandbox, "PAY-00000003")


def test_processing_then_failed_and_manual_settlement(payment_sandbox, gateway):
    assert gateway.transfer(req(4, account_no="6222021234565001")).status == "PROCESSING"
    failed = wait_until(lambda: (r := gateway.query("PAY-00000004")).status == "FAILED" and r)
    assert failed.fail_code == "account_closed"
    assert gateway.transfer(req(5, account_no="6222021234565009")).status == "PROCESSING"
    time.sleep(0.4)
    assert gateway.query("PAY-00000005").status == TransferStatus.PROCESSING
    payment_sandbox.settle("PAY-00000005", "SUCCESS")
    assert gateway.query("PAY-00000005").status == TransferStatus.SUCCESS
    assert [t["request_no"] for t in payment_sandbox.paid()] == ["PAY-00000005"]


# --- Idempotency -----------------------------------------------------------------------------


def test_replaying_a_request_number_returns_the_same_transfer(payment_sandbox, gateway):
    first = gateway.transfer(req(6))
    again = gateway.transfer(req(6))
    assert again == first
    assert payment_sandbox.calls("/v1/transfers", status=200) == 2
    paid_once(payment_sandbox, "PAY-00000006")


def test_a_request_number_reused_for_another_body_is_misuse(payment_sandbox, gateway):
    gateway.transfer(req(7, amount="100.00"))
    for changed in (req(7, amount="100.01"), req(7, account_no="6222029999999999")):
        with pytest.raises(GatewayMisuse) as exc:
            gateway.transfer(changed)
        assert exc.value.code == "request_no_conflict"
    assert paid_once(payment_sandbox, "PAY-00000007")["amount"] == "100.00"


def test_parallel_retries_of_one_number_pay_once(payment_sandbox, gateway):
    barrier = threading.Barrier(8)
    results: list[TransferResult] = []

    def send():
        barrier.wait()
        results.append(gateway.transfer(req(8)))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status for r in results} == {TransferStatus.SUCCESS}
    assert len({r.provider_ref for r in results}) == 1
    paid_once(payment_sandbox, "PAY-00000008")


# --- Faults: never a guess -------------------------------------------------------------------


def test_timeout_is_unknown_and_the_query_finds_it_paid(payment_sandbox, gateway):
    payment_sandbox.control("timeout", seconds=PAYMENT_TIMEOUT_FAULT_SECONDS)
    started = time.monotonic()
    result = gateway.transfer(req(10))
    assert time.monotonic() - started < PAYMENT_TIMEOUT_FAULT_SECONDS
    assert (result.status, result.fail_code) == (TransferStatus.UNKNOWN, "timeout")
    assert not result.is_final and result.provider_ref == ""
    queried = gateway.query("PAY-00000010")
    assert queried.status == TransferStatus.SUCCESS
    # The retry reuses the number and gets the same transfer: paid exactly once.
    assert gateway.transfer(req(10)).provider_ref == queried.provider_ref
    paid_once(payment_sandbox, "PAY-00000010")


@pytest.mark.parametrize("execute", [False, True])
def test_5xx_is_unknown_whether_or_not_it_was_executed(payment_sandbox, gateway, execute):
    payment_sandbox.control("error_5xx", status=502, execute=execute)
    result = gateway.transfer(req(11))
    assert (result.status, result.fail_code) == (TransferStatus.UNKNOWN, "http_502")
    queried = gateway.query("PAY-00000011")
    assert queried.status == (TransferStatus.SUCCESS if execute else TransferStatus.NOT_FOUND)
    assert gateway.transfer(req(11)).status == TransferStatus.SUCCESS
    paid_once(payment_sandbox, "PAY-00000011")


def test_lost_reply_is_unknown_and_paid_once(payment_sandbox, gateway):
    payment_sandbox.control("lost_reply")
    result = gateway.transfer(req(12))
    assert (result.status, result.fail_code) == (TransferStatus.UNKNOWN, "connection_error")
    assert gateway.query("PAY-00000012").status == TransferStatus.SUCCESS
    assert gateway.transfer(req(12)).status == TransferStatus.SUCCESS
    paid_once(payment_sandbox, "PAY-00000012")


def test_garbled_reply_is_unknown(payment_sandbox, gateway):
    payment_sandbox.control("garbled")
    result = gateway.transfer(req(13))
    assert (result.status, result.fail_code) == (TransferStatus.UNKNOWN, "malformed_reply")
    paid_once(payment_sandbox, "PAY-00000013")


NO_14 = "PAY-00000014"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        pytest.param(
            {"status": 200, "body": {"request_no": NO_14, "status": "DONE"}}, "", id="status"
        ),
        pytest.param(
            {"status": 200, "body": {"request_no": "PAY-99999999", "status": "SUCCESS"}},
            "",
            id="another-number",
        ),
        pytest.param(
            {"status": 200, "body": {"request_no": NO_14, "status": "SUCCESS", "amount": 640.0}},
            "",
            id="float-amount",
        ),
        pytest.param(
            {"status": 200, "body": {"request_no": NO_14, "status": "SUCCESS", "amount": "641.00"}},
            "amount_mismatch",
            id="another-amount",
        ),
        pytest.param({"status": 404}, "http_404", id="404"),
        pytest.param({"status": 429}, "http_429", id="429"),
        pytest.param({"status": 200, "malformed": True}, "malformed_reply", id="truncated"),
        pytest.param({"drop": True}, "connection_error", id="drop"),
    ],
)
def test_anything_but_a_clear_answer_is_unknown(payment_sandbox, gateway, reply, code):
    payment_sandbox.faults.next(**reply)
    result = gateway.transfer(req(14))
    assert result.status == TransferStatus.UNKNOWN and result.fail_code
    assert result.fail_code == (code or "malformed_reply")
    assert payment_sandbox.paid() == []  # these faults stopped the request before the provider


def test_refused_credentials_are_unknown_not_failed(payment_sandbox, caplog):
    gateway = make_gateway(payment_sandbox, secret="not-the-right-secret-0000")
    with caplog.at_level(logging.ERROR, logger="apps.prizes.gateway"):
        result = gateway.transfer(req(15))
    assert (result.status, result.fail_code) == (TransferStatus.UNKNOWN, "http_401")
    assert payment_sandbox.last_request.auth_error == "bad_signature"
    assert any("401" in r.getMessage() for r in caplog.records)
    assert payment_sandbox.transfers() == []


def test_no_provider_at_all_is_unknown():
    with PaymentSandbox() as sandbox:
        gateway = make_gateway(sandbox)
    result = gateway.transfer(req(16))  # the port is closed now
    assert (result.status, result.fail_code) == (TransferStatus.UNKNOWN, "connection_error")
    assert gateway.query("PAY-00000016").status == TransferStatus.UNKNOWN


def test_query_not_found_and_query_faults(payment_sandbox, gateway):
    assert gateway.query("PAY-00000017") == TransferResult(
        request_no="PAY-00000017", status=TransferStatus.NOT_FOUND
    )
    gateway.transfer(req(17))
    payment_sandbox.control("timeout", endpoint="query", seconds=PAYMENT_TIMEOUT_FAULT_SECONDS)
    assert gateway.query("PAY-00000017").fail_code == "timeout"
    payment_sandbox.control("error_5xx", endpoint="query")
    assert gateway.query("PAY-00000017").status == TransferStatus.UNKNOWN
    assert gateway.query("PAY-00000017").status == TransferStatus.SUCCESS
    with pytest.raises(ValueError):
        gateway.query("../../etc")


def test_a_wrong_url_is_unknown_never_not_found(payment_sandbox):
    # A bare 404 {"error": "not_found"} means no such route, not "never received".
    gateway = make_gateway(payment_sandbox, base_url=payment_sandbox.url + "/pay")
    assert gateway.query("PAY-00000018").status == TransferStatus.UNKNOWN
    assert gateway.query("PAY-00000018").fail_code == "http_404"


def test_transfer_faults_do_not_touch_queries(payment_sandbox, gateway):
    payment_sandbox.control("error_5xx", times=2)
    assert gateway.query("PAY-00000019").status == TransferStatus.NOT_FOUND
    assert gateway.transfer(req(19)).status == TransferStatus.UNKNOWN
    assert gateway.transfer(req(19)).status == TransferStatus.UNKNOWN
    assert gateway.transfer(req(19)).status == TransferStatus.SUCCESS
    paid_once(payment_sandbox, "PAY-00000019")


def test_logs_carry_no_account_name_or_secret(payment_sandbox, gateway, caplog):
    payment_sandbox.control("timeout", seconds=PAYMENT_TIMEOUT_FAULT_SECONDS)
    with caplog.at_level(logging.DEBUG):
        gateway.transfer(req(20))
        gateway.transfer(req(21))
        gateway.query("PAY-00000021")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "timeout" in text
    for secret in (CARD, NAME, payment_sandbox.secret, payment_sandbox.callback_secret):
        assert secret not in text
    assert payment_sandbox.secret not in repr(gateway)


# --- Callbacks -------------------------------------------------------------------------------


def deliver(gateway, callback):
    return gateway.parse_callback(
        method=callback.method, path=callback.path, headers=callback.headers, body=callback.body
    )


def test_a_signed_callback_is_believed(payment_sandbox, payment_callbacks):
    gateway = make_gateway(payment_sandbox, notify_url=payment_callbacks.url + "?v=1")
    sent = gateway.transfer(req(30, account_no="6222021234565000"))
    assert payment_sandbox.last_request.json()["notify_url"] == payment_callbacks.url + "?v=1"
    (callback,) = payment_callbacks.wait_for(1)
    assert callback.path == payment_callbacks.path + "?v=1"
    result = deliver(gateway, callback)
    assert result.status == TransferStatus.SUCCESS
    assert (result.request_no, result.provider_ref) == ("PAY-00000030", sent.provider_ref)
    assert result.amount == Decimal("640.00") and result.finished_at is not None


def test_a_replayed_callback_is_rejected(payment_sandbox, payment_callbacks):
    gateway = make_gateway(payment_sandbox, notify_url=payment_callbacks.url)
    gateway.transfer(req(31))
    (callback,) = payment_callbacks.wait_for(1)
    deliver(gateway, callback)
    with pytest.raises(CallbackRejected) as exc:
        deliver(gateway, callback)
    assert exc.value.code == "replayed_nonce"


def test_a_forged_callback_is_rejected_and_the_genuine_one_follows(
    payment_sandbox, payment_callbacks
):
    gateway = make_gateway(payment_sandbox, notify_url=payment_callbacks.url)
    payment_sandbox.control("forged_callback", status="SUCCESS")
    assert gateway.transfer(req(32, account_no="6222021234564000")).status == "FAILED"
    forged, genuine = payment_callbacks.wait_for(2)
    assert forged.headers["X-Nonce"] != genuine.headers["X-Nonce"]
    with pytest.raises(CallbackRejected) as exc:
        deliver(gateway, forged)  # claims SUCCESS for a refused transfer
    assert exc.value.code == "bad_signature"
    result = deliver(gateway, genuine)
    assert (result.status, result.fail_code) == (TransferStatus.FAILED, "account_invalid")
    assert payment_sandbox.paid() == []


def test_a_duplicate_callback_verifies_twice_with_the_same_content(
    payment_sandbox, payment_callbacks
):
    gateway = make_gateway(payment_sandbox, notify_url=payment_callbacks.url)
    payment_sandbox.control("duplicate_callback")
    gateway.transfer(req(33))
    first, second = payment_callbacks.wait_for(2)
    assert first.body == second.body
    assert deliver(gateway, first) == deliver(gateway, second)  # the service must be idempotent
    paid_once(payment_sandbox, "PAY-00000033")


def test_callbacks_are_retried_until_acknowledged(payment_sandbox, payment_callbacks):
    gateway = make_gateway(payment_sandbox, notify_url=payment_callbacks.url)
    payment_callbacks.answer = 503
    gateway.transfer(req(34))
    received = payment_callbacks.wait_for(3)
    assert len({c.headers["X-Nonce"] for c in received}) == 3  # each attempt freshly signed
    wait_until(lambda: len(payment_sandbox.callbacks_for("PAY-00000034")) == 3)
    assert [c.attempt for c in payment_sandbox.callbacks_for("PAY-00000034")] == [1, 2, 3]


def signed_callback(sandbox, body: bytes, *, path="/cb", secret=None, timestamp=None):
    headers = signed_headers(
        client_id=sandbox.client_id,
        secret=secret or sandbox.callback_secret,
        method="POST",
        path=path,
        body=body,
        timestamp=timestamp,
    )
    return {"method": "POST", "path": path, "headers": headers, "body": body}


CALLBACK_BODY = (
    b'{"request_no":"PAY-00000035","status":"SUCCESS","provider_ref":"SBX1","amount":"9.90",'
    b'"fail_code":"","fail_message":"","finished_at":"2026-03-01T10:00:00+08:00"}'
)


def test_callback_checks_in_order(payment_sandbox, gateway):
    good = signed_callback(payment_sandbox, CALLBACK_BODY)
    lowered = {**good, "headers": {k.lower(): v for k, v in good["headers"].items()}}
    assert gateway.parse_callback(**lowered).amount == Decimal("9.90")

    cases = {
        "missing_signature": {**good, "headers": {"X-Client-Id": payment_sandbox.client_id}},
        "bad_signature": signed_callback(payment_sandbox, CALLBACK_BODY, secret="x" * 24),
        "stale_timestamp": signed_callback(
            payment_sandbox, CALLBACK_BODY, timestamp=int(time.time()) - 301
        ),
        "bad_body": signed_callback(payment_sandbox, b'{"request_no":"PAY-00000035"}'),
    }
    for code, callback in cases.items():
        with pytest.raises(CallbackRejected) as exc:
            gateway.parse_callback(**callback)
        assert exc.value.code == code, code

    tampered = signed_callback(payment_sandbox, CALLBACK_BODY)
    tampered["body"] = CALLBACK_BODY.replace(b"9.90", b"99.90")
    other_path = {**signed_callback(payment_sandbox, CALLBACK_BODY), "path": "/elsewhere"}
    other_client = signed_callback(payment_sandbox, CALLBACK_BODY)
    other_client["headers"]["X-Client-Id"] = "someone-else"
    for callback in (tampered, other_path, other_client):
        with pytest.raises(CallbackRejected) as exc:
            gateway.parse_callback(**callback)
        assert exc.value.code == "bad_signature"


def test_callback_nonce_is_remembered_only_after_the_signature_holds(payment_sandbox, gateway):
    good = signed_callback(payment_sandbox, CALLBACK_BODY)
    forged = {**good, "headers": {**good["headers"], "X-Signature": "0" * 64}}
    with pytest.raises(CallbackRejected):
        gateway.parse_callback(**forged)
    assert gateway.parse_callback(**good).status == TransferStatus.SUCCESS  # not "replayed"
    with pytest.raises(CallbackRejected) as exc:
        gateway.parse_callback(**good)
    assert exc.value.code == "replayed_nonce"
    assert cache.get(f"paygw:cb-nonce:{payment_sandbox.client_id}:{good['headers']['X-Nonce']}")


def test_callback_timestamp_window_uses_the_clock(payment_sandbox):
    body = CALLBACK_BODY
    callback = signed_callback(payment_sandbox, body, timestamp=1_767_225_600)
    late = make_gateway(payment_sandbox, clock=lambda: 1_767_225_600 + 300)
    assert late.parse_callback(**callback).status == TransferStatus.SUCCESS
    later = make_gateway(payment_sandbox, clock=lambda: 1_767_225_600 + 301)
    with pytest.raises(CallbackRejected) as exc:
        later.parse_callback(**signed_callback(payment_sandbox, body, timestamp=1_767_225_600))
    assert exc.value.code == "stale_timestamp"


# --- Statements ------------------------------------------------------------------------------


def today() -> date:
    return timezone.localdate()


def test_statement_lists_what_was_finished(payment_sandbox, gateway):
    gateway.transfer(req(40, amount="10.00"))
    gateway.transfer(req(41, amount="20.00", account_no="6222021234564000"))
    gateway.transfer(req(42, amount="30.00", account_no="6222021234565009"))  # PROCESSING
    raw = gateway.fetch_statement(today())
    assert raw.splitlines()[0] == b"request_no,provider_ref,amount,status,finished_at"
    lines, errors = parse_statement(raw)
    assert errors == []
    assert [(x.request_no, x.amount, x.status) for x in lines] == [
        ("PAY-00000040", Decimal("10.00"), "SUCCESS"),
        ("PAY-00000041", Decimal("20.00"), "FAILED"),
    ]
    assert all(isinstance(x, StatementLine) and x.finished_at for x in lines)
    assert parse_statement(gateway.fetch_statement(today() - timedelta(days=1))) == ([], [])


def test_statement_mismatch_is_injected_and_bad_lines_are_reported(payment_sandbox, gateway):
    for n in range(50, 54):
        gateway.transfer(req(n, amount="10.00"))
    payment_sandbox.control(
        "statement_mismatch",
        missing=["PAY-00000050"],
        wrong_amount=["PAY-00000051"],
        wrong_status=["PAY-00000052"],
        extra=1,
        bad_lines=2,
    )
    lines, errors = parse_statement(gateway.fetch_statement(today()))
    by_no = {x.request_no: x for x in lines}
    assert "PAY-00000050" not in by_no
    assert by_no["PAY-00000051"].amount == Decimal("10.01")
    assert by_no["PAY-00000052"].status == "FAILED"
    assert by_no["PAY-00000053"].amount == Decimal("10.00")
    assert by_no["PAY-00000053"].status == "SUCCESS"
    assert [no for no in by_no if no.startswith("EXTRA-")] != []
    assert [e for _line, e in errors] == ["field_count", "field_count"]
    # The fault was for one statement only.
    lines, errors = parse_statement(gateway.fetch_statement(today()))
    assert len(lines) == 4 and errors == []


def test_statement_mismatch_by_default_breaks_one_of_each(payment_sandbox, gateway):
    for n in range(60, 64):
        gateway.transfer(req(n, amount="10.00"))
    payment_sandbox.control("statement_mismatch")
    lines, errors = parse_statement(gateway.fetch_statement(today()))
    by_no = {x.request_no: x for x in lines}
    real = {no: x for no, x in by_no.items() if no.startswith("PAY-")}
    assert len(real) == 3 and len(by_no) == 4 and errors == []
    assert sum(x.amount != Decimal("10.00") for x in real.values()) == 1
    assert sum(x.status != "SUCCESS" for x in real.values()) == 1


def test_statement_trouble_raises_unavailable(payment_sandbox, gateway):
    payment_sandbox.control("error_5xx", endpoint="statement")
    with pytest.raises(GatewayUnavailable) as exc:
        gateway.fetch_statement(today())
    assert exc.value.code == "http_503"
    payment_sandbox.control("timeout", endpoint="statement", seconds=PAYMENT_TIMEOUT_FAULT_SECONDS)
    with pytest.raises(GatewayUnavailable) as exc:
        gateway.fetch_statement(today())
    assert exc.value.code == "timeout"
    payment_sandbox.faults.next(status=404, body={"error": "statement_not_ready"})
    with pytest.raises(GatewayUnavailable) as exc:
        gateway.fetch_statement(today())
    assert exc.value.code == "statement_not_ready"
    payment_sandbox.faults.next(status=200, body={"not": "csv"})
    with pytest.raises(GatewayUnavailable) as exc:
        gateway.fetch_statement(today())
    assert exc.value.code == "malformed_reply"


def test_parse_statement_reports_every_bad_line():
    data = (
        "\ufeffrequest_no,provider_ref,amount,status,finished_at\r\n"
        "PAY-00000001,R1,10.00,SUCCESS,2026-03-01T10:00:00+08:00\r\n"
        "PAY-00000002,R2,10.5,SUCCESS,2026-03-01T10:00:00+08:00\r\n"
        "PAY-00000003,R3,10.00,DONE,2026-03-01T10:00:00+08:00\r\n"
        "PAY-00000004,R4,10.00,SUCCESS,2026-03-01T10:00:00\r\n"
        "pay-5,R5,10.00,SUCCESS,2026-03-01T10:00:00+08:00\r\n"
        "PAY-00000006,,10.00,SUCCESS,2026-03-01T10:00:00+08:00\r\n"
        "PAY-00000001,R1,10.00,SUCCESS,2026-03-01T10:00:00+08:00\r\n"
        "PAY-00000008,R8,10.00\r\n"
        '"PAY-00000009,R9,10.00,SUCCESS,\r\n'
        "\r\n"
        "PAY-00000010,R10,-1.00,FAILED,\n"
        "PAY-00000011,R11,0.01,FAILED,\n"
    ).encode()
    lines, errors = parse_statement(data)
    assert [(x.line_no, x.request_no) for x in lines] == [(2, "PAY-00000001"), (13, "PAY-00000011")]
    assert lines[1].finished_at is None
    assert errors == [
        (3, "amount"),
        (4, "status"),
        (5, "finished_at"),
        (6, "request_no"),
        (7, "provider_ref"),
        (8, "duplicate_request_no"),
        (9, "field_count"),
        (10, "unreadable"),
        (12, "amount"),
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", (1, "bad_header")),
        (b"request_no,amount\r\nPAY-00000001,1.00\r\n", (1, "bad_header")),
        (b"request_no,provider_ref,amount,status,finished_at\r\n\xff\xfe", (0, "not_utf8")),
    ],
)
def test_parse_statement_refuses_an_unreadable_file(data, error):
    assert parse_statement(data) == ([], [error])


# --- Configuration ---------------------------------------------------------------------------


def test_the_factory_builds_the_http_client_from_settings(payment_gateway, payment_callbacks):
    assert isinstance(payment_gateway, HttpPaymentGateway)
    assert payment_gateway.transfer(req(70)).status == TransferStatus.SUCCESS
    (callback,) = payment_callbacks.wait_for(1)
    assert deliver(payment_gateway, callback).request_no == "PAY-00000070"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PAYMENT_GATEWAY_BASE_URL", ""),
        ("PAYMENT_GATEWAY_BASE_URL", "http://pay.example.cn"),
        ("PAYMENT_GATEWAY_BASE_URL", "ftp://127.0.0.1"),
        ("PAYMENT_GATEWAY_CLIENT_ID", ""),
        ("PAYMENT_GATEWAY_SECRET", "short"),
        ("PAYMENT_GATEWAY_CALLBACK_SECRET", ""),
        ("PAYMENT_GATEWAY_CALLBACK_SECRET", "short"),
        ("PAYMENT_GATEWAY_TIMEOUT", 0),
        ("PAYMENT_GATEWAY_TIMEOUT", "soon"),
        ("PAYMENT_GATEWAY_NOTIFY_URL", "http://our.example.cn/cb"),
    ],
)
def test_the_factory_refuses_a_bad_configuration(payment_gateway_settings, setting, value):
    with override_settings(**{setting: value}), pytest.raises(ImproperlyConfigured) as exc:
        get_payment_gateway()
    assert setting.removeprefix("PAYMENT_GATEWAY_") in str(exc.value)


# --- The sandbox as a separate process (the demo) and its control endpoint ---------------------


def test_the_sandbox_runs_alone_and_is_controlled_over_http():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.sandbox.payment_gateway",
            "--port",
            "0",
            "--secret",
            "demo-payment-secret-0123456789",
            "--callback-secret",
            "demo-callback-secret-0123456789",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        url = ""
        for line in process.stdout:  # the banner is flushed as a whole once it is serving
            if line.startswith("Payment gateway sandbox on http://127.0.0.1:"):
                url = line.rsplit(" ", 1)[1].strip()
                break
        assert url, "the sandbox did not start"
        control = PaymentSandboxControl(url)
        gateway = HttpPaymentGateway(
            base_url=url,
            client_id="sandbox-client",
            secret="demo-payment-secret-0123456789",
            callback_secret="demo-callback-secret-0123456789",
            timeout=PAYMENT_CLIENT_TIMEOUT,
        )
        assert control.control("lost_reply") == 1
        assert gateway.transfer(req(80)).status == TransferStatus.UNKNOWN
        assert gateway.transfer(req(80)).status == TransferStatus.SUCCESS
        assert [t["request_no"] for t in control.transfers() if t["paid"]] == ["PAY-00000080"]
        assert gateway.transfer(req(81, account_no="6222021234565009")).status == "PROCESSING"
        assert control.settle("PAY-00000081", "FAILED", "account_closed")["status"] == "FAILED"
        assert gateway.query("PAY-00000081").fail_code == "account_closed"
        control.control("error_5xx", times=3)
        control.clear_faults()
        assert gateway.transfer(req(82)).status == TransferStatus.SUCCESS
        assert control.callbacks() == []  # no notify_url, no callbacks
        control.reset()
        assert control.transfers() == []
        with pytest.raises(Exception, match="400"):
            control.control("meteor_strike")
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_statement_time_is_china_time(payment_sandbox, gateway):
    gateway.transfer(req(90))
    (line,) = parse_statement(gateway.fetch_statement(today()))[0]
    assert line.finished_at.utcoffset() == timedelta(hours=8)
    assert timezone.localtime(line.finished_at).date() == today()
    assert isinstance(line.finished_at, datetime)
