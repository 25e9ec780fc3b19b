"""Identity verification: the HTTP client against the sandbox on 127.0.0.1, the development-only
local backend and the factory."""

from __future__ import annotations

import logging
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from apps.accounts.identity import (
    HttpIdentityVerifier,
    IdentityCheck,
    IdentityOutcome,
    LocalIdentityVerifier,
    get_identity_verifier,
    is_well_formed_name,
)
from tests.factories.core import make_resident_id
from tools.sandbox import IdentitySandbox

ZHANG_ID = make_resident_id(1)
LI_ID = make_resident_id(2)
NOBODY_ID = make_resident_id(3)
ZHANG_PHONE = "13800000001"


@pytest.fixture
def sandbox():
    with IdentitySandbox(people={ZHANG_ID: ("张三", ZHANG_PHONE), LI_ID: ("李四", None)}) as server:
        yield server


def make_verifier(server, *, secret=None, timeout=5.0):
    return HttpIdentityVerifier(server.base_url, server.client_id, secret or server.secret, timeout)


@pytest.fixture
def verifier(sandbox):
    return make_verifier(sandbox)


# --- Business outcomes -----------------------------------------------------------------------


def test_match_without_phone(verifier):
    check = verifier.verify(name="张三", id_number=ZHANG_ID)
    assert check == IdentityCheck(outcome=IdentityOutcome.MATCH, phone_match=None)
    assert check.is_answer


def test_match_with_the_registered_phone(verifier):
    check = verifier.verify(name="张三", id_number=ZHANG_ID, phone=ZHANG_PHONE)
    assert check.outcome == IdentityOutcome.MATCH and check.phone_match is True


def test_match_with_another_phone(verifier):
    check = verifier.verify(name="张三", id_number=ZHANG_ID, phone="13999999999")
    assert check.outcome == IdentityOutcome.MATCH and check.phone_match is False


def test_phone_unknown_to_the_register_is_null(verifier):
    check = verifier.verify(name="李四", id_number=LI_ID, phone="13999999999")
    assert check.outcome == IdentityOutcome.MATCH and check.phone_match is None


def test_mismatch(verifier):
    check = verifier.verify(name="张四", id_number=ZHANG_ID, phone=ZHANG_PHONE)
    assert check.outcome == IdentityOutcome.MISMATCH and check.phone_match is None


def test_not_found(verifier):
    check = verifier.verify(name="王五", id_number=NOBODY_ID)
    assert check.outcome == IdentityOutcome.NOT_FOUND


def test_input_is_sent_normalised(sandbox, verifier):
    full_width_id = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in ZHANG_ID)
    check = verifier.verify(name=" 张 三 ", id_number=full_width_id, phone=" 138-0000-0001 ")
    assert check.outcome == IdentityOutcome.MATCH and check.phone_match is True
    sent = sandbox.last_request.json()
    assert sent == {"name": "张三", "id_number": ZHANG_ID, "phone": ZHANG_PHONE}


def test_no_phone_field_is_sent_without_a_phone(sandbox, verifier):
    verifier.verify(name="张三", id_number=ZHANG_ID)
    assert "phone" not in sandbox.last_request.json()


def test_a_stray_phone_match_is_ignored_when_no_phone_was_asked(sandbox, verifier):
    sandbox.faults.next(status=200, body={"result": "match", "phone_match": True})
    check = verifier.verify(name="张三", id_number=ZHANG_ID)
    assert check.phone_match is None


# --- Faults ----------------------------------------------------------------------------------


def test_timeout_is_unavailable_quickly(sandbox):
    # The other tests' verifier waits 5 s, so a loaded machine never turns a slow answer
    # into a timeout; this one is told 0.5 s, and the sandbox answers after 2.
    verifier = make_verifier(sandbox, timeout=0.5)
    sandbox.faults.next(delay=2.0)
    started = time.monotonic()
    check = verifier.verify(name="张三", id_number=ZHANG_ID)
    assert check.outcome == IdentityOutcome.UNAVAILABLE and check.detail == "timeout"
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_unavailable(sandbox, verifier, status):
    sandbox.faults.next(status=status)
    check = verifier.verify(name="张三", id_number=ZHANG_ID)
    assert check.outcome == IdentityOutcome.UNAVAILABLE and check.detail == f"http_{status}"


def test_429_is_rate_limited(sandbox, verifier):
    sandbox.faults.next(status=429)
    check = verifier.verify(name="张三", id_number=ZHANG_ID)
    assert check.outcome == IdentityOutcome.UNAVAILABLE and check.detail == "rate_limited"


def test_malformed_json(sandbox, verifier):
    sandbox.faults.next(malformed=True)
    assert verifier.verify(name="张三", id_number=ZHANG_ID).detail == "malformed_reply"


@pytest.mark.parametrize(
    "body",
    [
        {"result": "probably"},
        {"phone_match": True},
        {"result": "match", "phone_match": "yes"},
        {"result": "match", "phone_match": 1},
        {"result": ["match"]},
    ],
)
def test_replies_off_the_schema_are_malformed(sandbox, verifier, body):
    sandbox.faults.next(status=200, body=body)
    check = verifier.verify(name="张三", id_number=ZHANG_ID, phone=ZHANG_PHONE)
    assert check.outcome == IdentityOutcome.UNAVAILABLE and check.detail == "malformed_reply"


def test_dropped_connection(sandbox, verifier):
    sandbox.faults.next(drop=True)
    assert verifier.verify(name="张三", id_number=ZHANG_ID).detail == "connection_error"


def test_wrong_secret_is_refused(sandbox):
    check = make_verifier(sandbox, secret="a-wrong-secret-of-some-length").verify(
        name="张三", id_number=ZHANG_ID
    )
    assert check.outcome == IdentityOutcome.UNAVAILABLE and check.detail == "http_401"
    assert sandbox.last_request.auth_error == "bad_signature"


def test_bad_request_is_unavailable_not_a_verdict(sandbox, verifier):
    check = verifier.verify(name="张" * 70, id_number=ZHANG_ID)
    assert check.outcome == IdentityOutcome.UNAVAILABLE and check.detail == "http_400"


def test_logs_carry_no_name_id_or_phone(sandbox, verifier, caplog):
    sandbox.faults.next(status=503).next(malformed=True)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            verifier.verify(name="张三", id_number=ZHANG_ID, phone=ZHANG_PHONE)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "http_503" in text
    for secret in ("张三", ZHANG_ID, ZHANG_PHONE, sandbox.secret):
        assert secret not in text


# --- The local (development-only) backend ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "id_number", "outcome"),
    [
        ("张三", ZHANG_ID, IdentityOutcome.MATCH),
        ("阿依古丽·买买提", ZHANG_ID, IdentityOutcome.MATCH),
        ("张 三", ZHANG_ID.lower(), IdentityOutcome.MATCH),
        ("张三", ZHANG_ID[:-1] + ("0" if ZHANG_ID[-1] != "0" else "1"), IdentityOutcome.NOT_FOUND),
        ("张三", "12345", IdentityOutcome.NOT_FOUND),
        ("张", ZHANG_ID, IdentityOutcome.MISMATCH),
        ("张三3", ZHANG_ID, IdentityOutcome.MISMATCH),
        ("·张三", ZHANG_ID, IdentityOutcome.MISMATCH),
        ("<script>", ZHANG_ID, IdentityOutcome.MISMATCH),
    ],
)
def test_local_backend(name, id_number, outcome):
    check = LocalIdentityVerifier().verify(name=name, id_number=id_number, phone=ZHANG_PHONE)
    assert check.outcome == outcome
    assert check.phone_match is None  # it never claims to know a phone


def test_well_formed_names():
    assert is_well_formed_name("欧阳小明") and is_well_formed_name("JOHN·SMITH")
    assert not is_well_formed_name("张··三") and not is_well_formed_name("x" * 65)


def test_identity_check_invariants():
    with pytest.raises(ValueError):
        IdentityCheck(outcome=IdentityOutcome.UNAVAILABLE)
    with pytest.raises(ValueError):
        IdentityCheck(outcome=IdentityOutcome.MISMATCH, phone_match=False)
    with pytest.raises(ValueError):
        IdentityCheck(outcome=IdentityOutcome.MATCH, detail="timeout")


def test_inputs_must_be_text():
    with pytest.raises(TypeError):
        LocalIdentityVerifier().verify(name=None, id_number=ZHANG_ID)
    with pytest.raises(TypeError):
        LocalIdentityVerifier().verify(name="张三", id_number=ZHANG_ID, phone=13800000001)


# --- Factory ---------------------------------------------------------------------------------


def test_factory_defaults_to_local_in_development():
    with override_settings(PRODUCTION=False):
        assert isinstance(get_identity_verifier(), LocalIdentityVerifier)


def test_factory_refuses_local_in_production():
    with override_settings(PRODUCTION=True), pytest.raises(ImproperlyConfigured):
        get_identity_verifier()
    with (
        override_settings(PRODUCTION=True, IDENTITY_VERIFIER_BACKEND="local"),
        pytest.raises(ImproperlyConfigured),
    ):
        get_identity_verifier()


def test_factory_builds_the_http_backend(sandbox):
    with override_settings(
        PRODUCTION=True,
        IDENTITY_VERIFIER_BACKEND="http",
        IDENTITY_VERIFIER_URL=sandbox.base_url,
        IDENTITY_VERIFIER_CLIENT_ID=sandbox.client_id,
        IDENTITY_VERIFIER_SECRET=sandbox.secret,
        IDENTITY_VERIFIER_TIMEOUT=0.5,
    ):
        verifier = get_identity_verifier()
    assert isinstance(verifier, HttpIdentityVerifier)
    assert verifier.verify(name="张三", id_number=ZHANG_ID).outcome == IdentityOutcome.MATCH


@pytest.mark.parametrize(
    "overrides",
    [
        {"IDENTITY_VERIFIER_BACKEND": "trust-me"},
        {"IDENTITY_VERIFIER_URL": "http://identity.example.cn"},
        {"IDENTITY_VERIFIER_SECRET": ""},
        {"IDENTITY_VERIFIER_TIMEOUT": 1000},
    ],
)
def test_factory_refuses_bad_configuration(overrides):
    settings = {
        "IDENTITY_VERIFIER_BACKEND": "http",
        "IDENTITY_VERIFIER_URL": "https://identity.example.cn",
        "IDENTITY_VERIFIER_CLIENT_ID": "lotteryinvoice",
        "IDENTITY_VERIFIER_SECRET": "s" * 32,
        **overrides,
    }
    with override_settings(**settings), pytest.raises(ImproperlyConfigured):
        get_identity_verifier()
