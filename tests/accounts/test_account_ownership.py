"""Payout accounts must be the consumer's own: `verify_account` through the identity service
(the sandbox on 127.0.0.1), the development-only local backend, and the protocol's edges."""

from __future__ import annotations

import argparse
import logging

import pytest
from django.test import override_settings

from apps.accounts.identity import (
    AccountCheck,
    AccountCheckCode,
    HttpIdentityVerifier,
    LocalIdentityVerifier,
    get_identity_verifier,
)
from tests.factories.core import make_resident_id
from tools.sandbox.identity_service import IdentitySandbox

ZHANG_ID = make_resident_id(11)
LI_ID = make_resident_id(12)
ZHANG_CARD = "6222020000000000011"
ZHANG_WALLET = "zhangsan-wallet-01"
LI_CARD = "6222020000000000012"


@pytest.fixture
def sandbox():
    with IdentitySandbox(
        people={ZHANG_ID: ("张三", None), LI_ID: ("李四", None)},
        accounts={
            ("bank_card", ZHANG_CARD): ZHANG_ID,
            ("wallet", ZHANG_WALLET): ZHANG_ID,
            ("bank_card", LI_CARD): LI_ID,
        },
    ) as server:
        yield server


@pytest.fixture
def verifier(sandbox):
    return HttpIdentityVerifier(sandbox.base_url, sandbox.client_id, sandbox.secret, 0.5)


def check(verifier, *, name="张三", id_number=ZHANG_ID, account_type="bank_card", no=ZHANG_CARD):
    return verifier.verify_account(
        name=name, id_number=id_number, account_type=account_type, account_no=no
    )


# --- Answers ---------------------------------------------------------------------------------


def test_own_card_and_own_wallet_match(verifier, sandbox):
    assert check(verifier) == AccountCheck(match=True, code="match")
    assert sandbox.last_request.path == "/v1/identity/account-verify"
    assert sandbox.last_request.json() == {
        "name": "张三",
        "id_number": ZHANG_ID,
        "account_type": "bank_card",
        "account_no": ZHANG_CARD,
    }
    assert check(verifier, account_type="wallet", no=ZHANG_WALLET).match


def test_input_is_normalised_before_it_is_sent(verifier, sandbox):
    spaced = " ".join(ZHANG_CARD[i : i + 4] for i in range(0, len(ZHANG_CARD), 4))
    result = check(verifier, name=" 张 三 ", id_number=ZHANG_ID.lower(), no=spaced)
    assert result.match
    sent = sandbox.last_request.json()
    assert (sent["name"], sent["account_no"]) == ("张三", ZHANG_CARD)
    assert check(verifier, no=ZHANG_CARD[:4] + "-" + ZHANG_CARD[4:]).match
    # A wallet id keeps its case and dashes: another case is another wallet.
    assert check(verifier, account_type="wallet", no=f" {ZHANG_WALLET} ").match
    sent = sandbox.last_request.json()
    assert sent["account_no"] == ZHANG_WALLET
    assert check(verifier, account_type="wallet", no=ZHANG_WALLET.upper()).code == "not_found"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"no": LI_CARD}, "mismatch"),  # someone else's card
        ({"name": "李四", "id_number": LI_ID}, "mismatch"),  # Li asks to be paid on Zhang's card
        ({"name": "张四"}, "mismatch"),  # right ID number, wrong name
        ({"no": "6222020000000009999"}, "not_found"),
        ({"account_type": "wallet"}, "not_found"),  # a card number is no wallet
    ],
)
def test_anything_but_the_own_account_does_not_match(verifier, fields, code):
    result = check(verifier, **fields)
    assert result == AccountCheck(match=False, code=code)
    assert result.is_answer


def test_an_unknown_account_type_is_the_callers_bug(verifier, sandbox):
    with pytest.raises(ValueError):
        check(verifier, account_type="alipay")
    assert sandbox.call_count == 0


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ({"status": 503}, "http_503"),
        ({"status": 429}, "rate_limited"),
        ({"delay": 2.0}, "timeout"),
        ({"malformed": True}, "malformed_reply"),
        ({"drop": True}, "connection_error"),
        ({"status": 200, "body": {"result": "probably"}}, "malformed_reply"),
        ({"status": 200, "body": {"result": True}}, "malformed_reply"),
    ],
)
def test_no_answer_is_unavailable_never_a_match(verifier, sandbox, fault, detail):
    sandbox.faults.next(**fault)
    result = check(verifier)
    assert result == AccountCheck(match=False, code="unavailable", detail=detail)
    assert not result.is_answer
    assert check(verifier).match  # asking again works


def test_refused_credentials_are_unavailable(sandbox):
    wrong = HttpIdentityVerifier(sandbox.base_url, sandbox.client_id, "w" * 32, 0.5)
    assert check(wrong).detail == "http_401"
    assert sandbox.last_request.auth_error == "bad_signature"


def test_sandbox_refuses_malformed_requests(sandbox, verifier):
    # A field longer than the protocol allows is our bug: a 400, reported as unavailable.
    assert check(verifier, no="9" * 65).detail == "http_400"
    assert sandbox.last_request.status == 400


def test_logs_carry_no_account_name_or_id(verifier, sandbox, caplog):
    sandbox.faults.next(status=503)
    with caplog.at_level(logging.DEBUG):
        check(verifier)
        check(verifier)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "503" in text
    for secret in (ZHANG_CARD, ZHANG_ID, "张三"):
        assert secret not in text


# --- The value object ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"match": True, "code": "mismatch"},
        {"match": False, "code": "match"},
        {"match": False, "code": "unavailable"},
        {"match": False, "code": "mismatch", "detail": "timeout"},
        {"match": False, "code": "maybe"},
    ],
)
def test_account_check_invariants(fields):
    with pytest.raises(ValueError):
        AccountCheck(**fields)


# --- Local backend and factory ---------------------------------------------------------------


def test_local_backend_is_development_only_and_checks_form_only():
    local = LocalIdentityVerifier()
    assert check(local).code == AccountCheckCode.MATCH
    assert check(local, account_type="wallet", no=ZHANG_WALLET).match
    assert check(local, no="1234").code == AccountCheckCode.NOT_FOUND  # too short for a card
    assert check(local, no="62220200000000ABCD").code == AccountCheckCode.NOT_FOUND
    assert check(local, id_number=ZHANG_ID[:-1] + "0").code == AccountCheckCode.MISMATCH
    assert check(local, name="张3").code == AccountCheckCode.MISMATCH


def test_the_factory_gives_the_http_backend(sandbox):
    with override_settings(
        IDENTITY_VERIFIER_BACKEND="http",
        IDENTITY_VERIFIER_URL=sandbox.base_url,
        IDENTITY_VERIFIER_CLIENT_ID=sandbox.client_id,
        IDENTITY_VERIFIER_SECRET=sandbox.secret,
        IDENTITY_VERIFIER_TIMEOUT=0.5,
    ):
        assert check(get_identity_verifier(), no=LI_CARD).code == "mismatch"
    assert sandbox.calls("/v1/identity/account-verify", status=200) == 1


def test_sandbox_demo_accepts_accounts():
    from tools.sandbox import identity_service

    sandbox = IdentitySandbox()
    parser_args = argparse.Namespace(
        person=[f"{ZHANG_ID},张三"], account=[f"wallet,{ZHANG_WALLET},{ZHANG_ID}"]
    )
    identity_service._configure(sandbox, parser_args)
    assert sandbox.accounts == {("wallet", ZHANG_WALLET): ZHANG_ID}
