"""SMS: the HTTP backend against the gateway sandbox on 127.0.0.1, the console backend (the code
reaches the developer's terminal, never the log stream) and the factory."""

from __future__ import annotations

import io
import logging
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from apps.accounts.sms import (
    ConsoleSMSBackend,
    HttpSMSBackend,
    SMSBackend,
    SMSError,
    get_sms_backend,
)
from apps.common.exceptions import DomainError
from tools.sandbox import SMSSandbox

PHONE = "13812345678"
CODE = "482913"


@pytest.fixture
def sandbox():
    with SMSSandbox() as server:
        yield server


def make_backend(server, *, secret=None, timeout=5.0):
    return HttpSMSBackend(server.base_url, server.client_id, secret or server.secret, timeout)


@pytest.fixture
def backend(sandbox):
    return make_backend(sandbox)


def send(backend, phone=PHONE, template="login_code", params=None):
    return backend.send(phone=phone, template=template, params=params or {"code": CODE})


# --- HTTP backend ----------------------------------------------------------------------------


def test_send_delivers_the_code_and_returns_the_message_id(sandbox, backend):
    message_id = send(backend)
    assert message_id.startswith("sbx-")
    assert sandbox.last_code(PHONE) == CODE
    (message,) = sandbox.messages_to(PHONE)
    assert message.message_id == message_id and message.template == "login_code"
    assert sandbox.last_request.json() == {
        "phone": PHONE,
        "template": "login_code",
        "params": {"code": CODE},
    }


def test_invalid_phone_is_its_own_domain_error(sandbox, backend):
    with pytest.raises(SMSError) as excinfo:
        send(backend, phone="12345")
    error = excinfo.value
    assert isinstance(error, DomainError)
    assert error.code == "sms.invalid_phone" and error.status_code == 400
    assert sandbox.messages == []


def test_unknown_template_is_unavailable(backend):
    with pytest.raises(SMSError) as excinfo:
        send(backend, template="prize_notice")
    assert excinfo.value.code == "sms.unavailable" and excinfo.value.reason == "unknown_template"


def test_timeout_raises_quickly(sandbox):
    # The other tests' backend waits 5 s (a loaded machine must not turn a slow answer into a
    # timeout); this one is told 0.5 s, and the sandbox answers after 2.
    backend = make_backend(sandbox, timeout=0.5)
    sandbox.faults.next(delay=2.0)
    started = time.monotonic()
    with pytest.raises(SMSError) as excinfo:
        send(backend)
    assert time.monotonic() - started < 1.5
    assert excinfo.value.code == "sms.unavailable" and excinfo.value.status_code == 503
    assert excinfo.value.reason == "timeout"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"status": 500}, "http_500"),
        ({"status": 503}, "http_503"),
        ({"status": 429}, "rate_limited"),
        ({"malformed": True}, "malformed_reply"),
        ({"status": 200, "body": {"message_id": ""}}, "malformed_reply"),
        ({"status": 200, "body": {"message_id": 42}}, "malformed_reply"),
        ({"status": 200, "body": {"id": "x"}}, "malformed_reply"),
        ({"drop": True}, "connection_error"),
    ],
)
def test_failures_are_sms_unavailable(sandbox, backend, fault, reason):
    sandbox.faults.next(**fault)
    with pytest.raises(SMSError) as excinfo:
        send(backend)
    assert excinfo.value.code == "sms.unavailable"
    assert excinfo.value.reason == reason
    assert excinfo.value.detail == {}  # the failure token is for logs, not for API clients


def test_wrong_secret_is_refused(sandbox):
    with pytest.raises(SMSError) as excinfo:
        send(make_backend(sandbox, secret="wrong-secret-wrong-secret"))
    assert excinfo.value.code == "sms.unavailable" and excinfo.value.reason == "http_401"
    assert sandbox.last_request.auth_error == "bad_signature"
    assert sandbox.messages == []


def test_http_logs_mask_the_phone_and_never_show_the_code(sandbox, backend, caplog):
    sandbox.faults.next(status=503)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(SMSError):
            send(backend)
        send(backend)
        with pytest.raises(SMSError):
            send(backend, phone="12345678901")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "138****5678" in text
    for secret in (PHONE, CODE, "12345678901", sandbox.secret):
        assert secret not in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"phone": ""},
        {"template": "Login Code"},
        {"params": {"code": 482913}},
        {"params": ["482913"]},
    ],
)
def test_malformed_messages_are_the_callers_bug(backend, kwargs):
    message = {"phone": PHONE, "template": "login_code", "params": {"code": CODE}, **kwargs}
    with pytest.raises((TypeError, ValueError)):
        backend.send(**message)


# --- Console backend -------------------------------------------------------------------------


def test_console_prints_the_code_to_stdout_and_logs_only_masked_data(capsys, caplog):
    with override_settings(PRODUCTION=False), caplog.at_level(logging.DEBUG):
        message_id = send(ConsoleSMSBackend())
    out = capsys.readouterr().out
    assert CODE in out and "138****5678" in out and PHONE not in out
    assert message_id.startswith("console-")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "138****5678" in logged and "login_code" in logged and message_id in logged
    assert CODE not in logged and PHONE not in logged


def test_console_prints_nothing_in_production():
    stream = io.StringIO()
    with override_settings(PRODUCTION=True):
        ConsoleSMSBackend(stream=stream).send(
            phone=PHONE, template="login_code", params={"code": CODE}
        )
    assert stream.getvalue() == ""


# --- Factory ---------------------------------------------------------------------------------


def test_factory_defaults_to_console():
    with override_settings(PRODUCTION=False):
        assert isinstance(get_sms_backend(), ConsoleSMSBackend)


def test_factory_refuses_console_in_production():
    with override_settings(PRODUCTION=True), pytest.raises(ImproperlyConfigured):
        get_sms_backend()


def test_factory_builds_the_http_backend_from_its_dotted_path(sandbox):
    with override_settings(
        PRODUCTION=True,
        SMS_BACKEND="apps.accounts.sms.HttpSMSBackend",
        SMS_GATEWAY_URL=sandbox.base_url,
        SMS_GATEWAY_CLIENT_ID=sandbox.client_id,
        SMS_GATEWAY_SECRET=sandbox.secret,
        SMS_GATEWAY_TIMEOUT=0.5,
    ):
        backend = get_sms_backend()
    assert isinstance(backend, HttpSMSBackend)
    send(backend)
    assert sandbox.last_code(PHONE) == CODE


@pytest.mark.parametrize(
    "overrides",
    [
        {"SMS_BACKEND": "apps.accounts.sms.NoSuchBackend"},
        {"SMS_BACKEND": "apps.common.masking.mask_phone"},
        {"SMS_GATEWAY_URL": ""},
        {"SMS_GATEWAY_URL": "http://sms.example.cn"},
        {"SMS_GATEWAY_SECRET": "short"},
        {"SMS_GATEWAY_TIMEOUT": -1},
    ],
)
def test_factory_refuses_bad_configuration(overrides):
    settings = {
        "SMS_BACKEND": "apps.accounts.sms.HttpSMSBackend",
        "SMS_GATEWAY_URL": "https://sms.example.cn",
        "SMS_GATEWAY_CLIENT_ID": "lotteryinvoice",
        "SMS_GATEWAY_SECRET": "g" * 32,
        **overrides,
    }
    with override_settings(**settings), pytest.raises(ImproperlyConfigured):
        get_sms_backend()


def test_backends_are_sms_backends():
    assert issubclass(ConsoleSMSBackend, SMSBackend) and issubclass(HttpSMSBackend, SMSBackend)
