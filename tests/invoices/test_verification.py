"""Tax verification: the HTTP client against the sandbox on 127.0.0.1, the cache, the registry
backend, the signing protocol of docs/adapters.md and the factory."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
import urllib3
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from apps.common.crypto import blind_index
from apps.common.http import JsonServiceClient, ServiceUnavailable, sign, signed_headers
from apps.common.pii import normalize_for_index
from apps.invoices.choices import RegistryStatus
from apps.invoices.models import TaxInvoiceRecord
from apps.invoices.verification import (
    CachedTaxVerifier,
    HttpTaxVerifier,
    RegistryTaxVerifier,
    TaxCheck,
    TaxOutcome,
    get_tax_verifier,
)
from tools.sandbox import TaxSandbox

ROOT = Path(__file__).resolve().parents[2]
CHINA = ZoneInfo("Asia/Shanghai")
NUMBER = "26411000000000000001"
OTHER = "26411000000000000002"
ISSUED = datetime(2026, 3, 1, 14, 5, 9, tzinfo=CHINA)
DAY = date(2026, 3, 1)
TOTAL = Decimal("268.00")


@pytest.fixture
def sandbox():
    with TaxSandbox() as server:
        server.add_invoice(NUMBER, total=TOTAL, issued_at=ISSUED, buyer_name="张三")
        yield server


def make_verifier(server: TaxSandbox, *, secret: str | None = None, timeout: float = 5.0):
    return HttpTaxVerifier(server.base_url, server.client_id, secret or server.secret, timeout)


@pytest.fixture
def verifier(sandbox):
    return make_verifier(sandbox)


def ask(verifier, number=NUMBER, issue_date=DAY, total=TOTAL) -> TaxCheck:
    return verifier.verify(number=number, issue_date=issue_date, total=total)


def fresh_cache() -> LocMemCache:
    return LocMemCache(f"taxcheck-test-{uuid.uuid4().hex}", {})


# --- Signing (docs/adapters.md §1.1) ---------------------------------------------------------


def test_signature_matches_the_worked_example_in_the_docs():
    body = json.dumps(
        {"number": NUMBER, "issue_date": "2026-01-01", "total": "120.00"}, separators=(",", ":")
    ).encode()
    signature = sign(
        "demo-secret-0123456789",
        timestamp=1767225600,
        nonce="0123456789abcdef0123456789abcdef",
        method="POST",
        path="/v1/invoices/verify",
        body=body,
    )
    assert signature == "6da7ddb8fdae09419c2a6e9da9ce749940e2184208c13a4fd6cdf6a53083ba07"
    doc = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    assert signature in doc and body.decode() in doc


def _raw_post(server: TaxSandbox, headers: dict[str, str], body: bytes):
    return urllib3.request(
        "POST",
        server.base_url + "/v1/invoices/verify",
        body=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=2.0,
        retries=False,
    )


def _body() -> bytes:
    return json.dumps({"number": NUMBER, "issue_date": "2026-03-01", "total": "268.00"}).encode()


def test_sandbox_accepts_a_correct_signature_once_and_refuses_the_replay(sandbox):
    body = _body()
    headers = signed_headers(
        client_id=sandbox.client_id,
        secret=sandbox.secret,
        method="POST",
        path="/v1/invoices/verify",
        body=body,
    )
    first = _raw_post(sandbox, headers, body)
    assert first.status == 200 and first.json()["result"] == "found"
    replay = _raw_post(sandbox, headers, body)
    assert replay.status == 401 and replay.json() == {"error": "replayed_nonce"}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("no_headers", "missing_signature"),
        ("unknown_client", "unknown_client"),
        ("stale", "stale_timestamp"),
        ("future", "stale_timestamp"),
        ("tampered_body", "bad_signature"),
        ("other_path", "bad_signature"),
    ],
)
def test_sandbox_refuses_bad_signatures(sandbox, change, error):
    body = _body()
    now = int(time.time())
    kwargs = {
        "client_id": sandbox.client_id,
        "secret": sandbox.secret,
        "method": "POST",
        "path": "/v1/invoices/verify",
        "body": body,
        "timestamp": now,
    }
    if change == "unknown_client":
        kwargs["client_id"] = "somebody-else"
    if change == "stale":
        kwargs["timestamp"] = now - 301 - 5
    if change == "future":
        kwargs["timestamp"] = now + 301 + 5
    if change == "other_path":
        kwargs["path"] = "/v1/invoices/verify?x=1"
    headers = signed_headers(**kwargs)
    if change == "no_headers":
        headers = {}
    if change == "tampered_body":
        body = body.replace(b"268.00", b"999.00")
    reply = _raw_post(sandbox, headers, body)
    assert reply.status == 401
    assert reply.json() == {"error": error}
    assert sandbox.last_request.auth_error == error


def test_client_with_a_wrong_secret_is_refused_and_reports_http_401(sandbox, caplog):
    wrong = make_verifier(sandbox, secret="not-the-right-secret-at-all")
    with caplog.at_level(logging.DEBUG):
        check = ask(wrong)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "http_401"
    assert sandbox.last_request.auth_error == "bad_signature"
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_client_with_a_skewed_clock_is_refused(sandbox):
    client = JsonServiceClient(
        service="tax-verifier",
        base_url=sandbox.base_url,
        client_id=sandbox.client_id,
        secret=sandbox.secret,
        timeout=0.5,
        clock=lambda: time.time() - 3600,
    )
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.post(
            "/v1/invoices/verify", {"number": NUMBER, "issue_date": "2026-03-01", "total": "1.00"}
        )
    assert excinfo.value.reason == "http_401" and excinfo.value.error == "stale_timestamp"


def test_every_request_is_signed_with_a_fresh_nonce(sandbox, verifier):
    ask(verifier)
    ask(verifier)
    nonces = {r.headers["X-Nonce"] for r in sandbox.requests}
    assert len(nonces) == 2
    assert all(len(n) == 32 for n in nonces)
    assert sandbox.calls(status=200) == 2


# --- Business outcomes over HTTP -------------------------------------------------------------


def test_found_returns_typed_registry_fields(verifier):
    check = ask(verifier)
    assert check.outcome == TaxOutcome.FOUND and check.is_answer
    record = check.record
    assert record is not None
    assert record.number == NUMBER and record.invoice_type == "32"
    assert record.issued_at == ISSUED and record.issued_at.utcoffset() == timedelta(hours=8)
    assert record.issue_date == DAY
    assert record.total == TOTAL and isinstance(record.amount, Decimal)
    assert record.amount + record.tax == record.total
    assert record.status == RegistryStatus.NORMAL and record.red_total == Decimal("0.00")
    assert record.issuer_kind == "self" and record.industry_code == "5211"
    assert record.area_code == "410105" and not record.is_red


def test_found_carries_the_buyer_name_and_its_blind_index(verifier):
    record = ask(verifier).record
    assert record.buyer_name == "张三"
    assert record.buyer_name_index == blind_index("name", normalize_for_index("name", "张三"))
    assert record.buyer_name_matches("张 三")  # normalised like every name comparison
    assert not record.buyer_name_matches("李四")
    assert "张三" not in repr(record)


def test_not_found(verifier):
    check = ask(verifier, number=OTHER)
    assert check.outcome == TaxOutcome.NOT_FOUND and check.record is None


@pytest.mark.parametrize(
    ("issue_date", "total", "fields"),
    [
        (DAY, Decimal("268.01"), ("total",)),
        (date(2026, 3, 2), TOTAL, ("issue_date",)),
        (date(2026, 3, 2), Decimal("1.00"), ("issue_date", "total")),
    ],
)
def test_mismatch_names_the_differing_fields_and_reveals_nothing(
    verifier, issue_date, total, fields
):
    check = ask(verifier, issue_date=issue_date, total=total)
    assert check.outcome == TaxOutcome.MISMATCH
    assert check.mismatched_fields == fields and check.record is None


def test_red_flushed_and_partially_red_flushed_status_is_surfaced(sandbox, verifier):
    sandbox.red_flush(NUMBER, "100.00")
    record = ask(verifier).record
    assert record.status == RegistryStatus.PARTIALLY_RED_FLUSHED and record.is_reversed
    assert record.red_total == Decimal("100.00")
    sandbox.red_flush(NUMBER)
    record = ask(verifier).record
    assert record.status == RegistryStatus.RED_FLUSHED and record.red_total == TOTAL


def test_an_invoice_issued_minutes_ago_is_not_found_yet(sandbox, verifier):
    sandbox.lag_seconds = 3600
    recent = datetime.now(UTC) - timedelta(minutes=10)
    sandbox.add_invoice(OTHER, total="150.00", issued_at=recent)
    today = recent.astimezone(CHINA).date()
    assert ask(verifier, OTHER, today, Decimal("150.00")).outcome == TaxOutcome.NOT_FOUND
    assert ask(verifier).outcome == TaxOutcome.FOUND  # issued long ago: visible


def test_quota_of_five_checks_per_invoice_per_day(sandbox, verifier):
    for _ in range(5):
        assert ask(verifier).outcome == TaxOutcome.FOUND
    check = ask(verifier)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "quota_exceeded"
    assert ask(verifier, number=OTHER).outcome == TaxOutcome.NOT_FOUND  # per number


# --- Faults ----------------------------------------------------------------------------------


def test_timeout_is_unavailable_quickly(sandbox):
    # The other tests' verifier waits 5 s, so a loaded machine never turns a slow answer
    # into a timeout; this one is told 0.5 s, and the sandbox answers after 2.
    verifier = make_verifier(sandbox, timeout=0.5)
    sandbox.faults.next(delay=2.0)
    started = time.monotonic()
    check = ask(verifier)
    elapsed = time.monotonic() - started
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "timeout"
    assert 0.4 < elapsed < 1.5


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_unavailable(sandbox, verifier, status):
    sandbox.faults.next(status=status)
    check = ask(verifier)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == f"http_{status}"
    assert ask(verifier).outcome == TaxOutcome.FOUND  # the next request goes through


def test_429_is_quota_exceeded(sandbox, verifier):
    sandbox.faults.next(status=429)
    check = ask(verifier)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "quota_exceeded"


def test_malformed_json_is_malformed_reply(sandbox, verifier):
    sandbox.faults.next(malformed=True)
    check = ask(verifier)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "malformed_reply"


def _found_body(**changes):
    invoice = {
        "number": NUMBER,
        "invoice_type": "32",
        "issued_at": "2026-03-01T14:05:09+08:00",
        "seller_uscc": "91410105MA00000001",
        "seller_name": "郑州示例商贸有限公司",
        "buyer_name": "张三",
        "buyer_tax_id": "",
        "amount": "237.17",
        "tax": "30.83",
        "total": "268.00",
        "issuer_kind": "self",
        "industry_code": "5211",
        "status": "normal",
        "red_total": "0.00",
    }
    invoice.update(changes)
    return {"result": "found", "invoice": invoice}


@pytest.mark.parametrize(
    "body",
    [
        {"result": "maybe"},
        {"result": "found"},
        {"result": "mismatch", "fields": []},
        {"result": "mismatch", "fields": ["buyer_name"]},
        {"result": "mismatch", "fields": [{"x": 1}]},
        {"invoices": []},
        _found_body(number=OTHER),
        _found_body(total=268.0),
        _found_body(total="268"),
        _found_body(total="267.00"),
        _found_body(issued_at="2026-03-01T14:05:09"),
        _found_body(issued_at="yesterday"),
        _found_body(status="voided"),
        _found_body(issuer_kind="friend"),
        _found_body(red_total="-1.00"),
        _found_body(is_red="no"),
    ],
)
def test_replies_off_the_schema_are_malformed(sandbox, verifier, body):
    sandbox.faults.next(status=200, body=body)
    check = ask(verifier)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "malformed_reply"


def test_the_well_formed_reply_used_above_is_accepted(sandbox, verifier):
    sandbox.faults.next(status=200, body=_found_body())
    assert ask(verifier).outcome == TaxOutcome.FOUND


def test_an_oversized_reply_is_refused_unread(sandbox, verifier):
    sandbox.faults.next(status=200, body={"result": "not_found", "pad": "x" * (1024 * 1024)})
    check = ask(verifier)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "malformed_reply"
    assert ask(verifier).outcome == TaxOutcome.FOUND  # the pool is still healthy


def test_redirects_are_not_followed(sandbox, verifier):
    sandbox.faults.next(status=302, body={"location": "elsewhere"})
    assert ask(verifier).detail == "http_302"
    assert sandbox.call_count == 1


def test_dropped_connection_is_unavailable(sandbox, verifier):
    sandbox.faults.next(drop=True)
    check = ask(verifier)
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "connection_error"


def test_refused_connection_is_unavailable():
    with TaxSandbox() as server:
        verifier = make_verifier(server)
    check = ask(verifier)  # the server is gone: nothing listens on that port
    assert check.outcome == TaxOutcome.UNAVAILABLE and check.detail == "connection_error"


def test_failures_log_no_personal_data_or_secret(sandbox, verifier, caplog):
    sandbox.faults.next(status=503).next(malformed=True).next(drop=True)
    with caplog.at_level(logging.DEBUG):
        for _ in range(4):
            ask(verifier)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "http_503" in text
    for secret in ("张三", sandbox.secret, NUMBER, "268.00"):
        assert secret not in text


# --- Caching ---------------------------------------------------------------------------------


def test_cache_answers_the_same_question_without_asking_again(sandbox, verifier):
    cached = CachedTaxVerifier(verifier, fresh_cache(), ttl=60)
    first = ask(cached)
    second = ask(cached)
    assert sandbox.call_count == 1
    assert first.outcome == second.outcome == TaxOutcome.FOUND
    assert second.record.buyer_name_index == first.record.buyer_name_index
    assert second.record.buyer_name is None  # the cache holds no plaintext name
    assert second.record.total == TOTAL and second.record.issued_at == ISSUED
    assert second.record.buyer_name_matches("张三")


def test_cache_keys_on_number_date_and_total(sandbox, verifier):
    cached = CachedTaxVerifier(verifier, fresh_cache(), ttl=60)
    ask(cached)
    ask(cached, total=Decimal("268.01"))
    ask(cached, issue_date=date(2026, 3, 2))
    ask(cached, number=OTHER)
    assert sandbox.call_count == 4
    for args in [(), (NUMBER, DAY, Decimal("268.01")), (OTHER,)]:
        ask(cached, *args)
    assert sandbox.call_count == 4


def test_cache_keeps_not_found_and_mismatch(sandbox, verifier):
    cached = CachedTaxVerifier(verifier, fresh_cache(), ttl=60)
    assert ask(cached, number=OTHER).outcome == TaxOutcome.NOT_FOUND
    assert ask(cached, number=OTHER).outcome == TaxOutcome.NOT_FOUND
    mismatch = ask(cached, total=Decimal("1.00"))
    assert ask(cached, total=Decimal("1.00")) == mismatch
    assert sandbox.call_count == 2


def test_cache_never_keeps_unavailable(sandbox, verifier):
    cached = CachedTaxVerifier(verifier, fresh_cache(), ttl=60)
    sandbox.faults.next(status=503)
    assert ask(cached).outcome == TaxOutcome.UNAVAILABLE
    assert ask(cached).outcome == TaxOutcome.FOUND
    assert ask(cached).outcome == TaxOutcome.FOUND
    assert sandbox.call_count == 2


def test_cache_expires_after_its_ttl(sandbox, verifier):
    cached = CachedTaxVerifier(verifier, fresh_cache(), ttl=60)
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        ask(cached)
        traveller.shift(61)
        ask(cached)
    assert sandbox.call_count == 2


def test_a_broken_cache_falls_back_to_asking(sandbox, verifier):
    class Broken(LocMemCache):
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

        def set(self, *args, **kwargs):
            raise ConnectionError("cache down")

    cached = CachedTaxVerifier(verifier, Broken("broken", {}), ttl=60)
    assert ask(cached).outcome == TaxOutcome.FOUND
    assert ask(cached).outcome == TaxOutcome.FOUND
    assert sandbox.call_count == 2


# --- Input checks and the result type --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"number": "2641"}, ValueError),
        ({"number": "２６411000000000000001"}, ValueError),
        ({"total": Decimal("1.005")}, ValueError),
        ({"total": Decimal("NaN")}, ValueError),
        ({"total": 268.0}, ValueError),
        ({"issue_date": datetime(2026, 3, 1, tzinfo=CHINA)}, TypeError),
    ],
)
def test_malformed_questions_are_the_callers_bug(verifier, kwargs, error):
    question = {"number": NUMBER, "issue_date": DAY, "total": TOTAL, **kwargs}
    with pytest.raises(error):
        verifier.verify(**question)


def test_tax_check_invariants():
    with pytest.raises(ValueError):
        TaxCheck(outcome=TaxOutcome.FOUND)
    with pytest.raises(ValueError):
        TaxCheck(outcome=TaxOutcome.MISMATCH)
    with pytest.raises(ValueError):
        TaxCheck(outcome=TaxOutcome.UNAVAILABLE)
    with pytest.raises(ValueError):
        TaxCheck(outcome=TaxOutcome.NOT_FOUND, detail="timeout")
    assert TaxCheck.unavailable("timeout").outcome == "unavailable"


# --- The registry backend --------------------------------------------------------------------


def _registry_row(number=NUMBER, **fields):
    values = {
        "number": number,
        "issued_at": ISSUED,
        "seller_uscc": "91410105MA00000001",
        "seller_name": "郑州示例商贸有限公司",
        "buyer_name_index": blind_index("name", normalize_for_index("name", "张三")),
        "amount": Decimal("237.17"),
        "tax": Decimal("30.83"),
        "total": TOTAL,
        "industry_code": "5211",
        "area_code": "410105",
        "last_synced_at": ISSUED,
    }
    values.update(fields)
    return TaxInvoiceRecord.objects.create(**values)


@pytest.mark.django_db
def test_registry_found_not_found_and_mismatch():
    _registry_row()
    verifier = RegistryTaxVerifier()
    found = ask(verifier)
    assert found.outcome == TaxOutcome.FOUND
    assert found.record.buyer_name is None and found.record.buyer_name_matches("张三")
    assert found.record.total == TOTAL and found.record.issue_date == DAY
    assert ask(verifier, number=OTHER).outcome == TaxOutcome.NOT_FOUND
    mismatch = ask(verifier, issue_date=date(2026, 2, 28), total=Decimal("1.00"))
    assert mismatch.outcome == TaxOutcome.MISMATCH
    assert mismatch.mismatched_fields == ("issue_date", "total") and mismatch.record is None


@pytest.mark.django_db
def test_registry_compares_the_china_date_not_the_utc_date():
    # 00:30 in Zhengzhou on 2 March is still 1 March in UTC.
    _registry_row(issued_at=datetime(2026, 3, 2, 0, 30, tzinfo=CHINA))
    verifier = RegistryTaxVerifier()
    assert ask(verifier, issue_date=date(2026, 3, 2)).outcome == TaxOutcome.FOUND
    check = ask(verifier, issue_date=date(2026, 3, 1))
    assert check.mismatched_fields == ("issue_date",)


@pytest.mark.django_db
def test_registry_surfaces_red_flushed_status():
    _registry_row(status=RegistryStatus.RED_FLUSHED, red_total=TOTAL)
    _registry_row(OTHER, status=RegistryStatus.PARTIALLY_RED_FLUSHED, red_total=Decimal("50.00"))
    verifier = RegistryTaxVerifier()
    full = ask(verifier).record
    assert full.status == RegistryStatus.RED_FLUSHED and full.red_total == TOTAL
    partial = ask(verifier, number=OTHER).record
    assert partial.status == RegistryStatus.PARTIALLY_RED_FLUSHED and partial.is_reversed
    assert partial.red_total == Decimal("50.00")


@pytest.mark.django_db
def test_registry_and_http_backends_agree(sandbox, verifier):
    _registry_row()
    from_registry = ask(RegistryTaxVerifier()).record
    from_http = ask(verifier).record
    assert from_http.buyer_name_index == from_registry.buyer_name_index
    for name in ("number", "issued_at", "amount", "tax", "total", "status", "red_total"):
        assert getattr(from_http, name) == getattr(from_registry, name), name


# --- Factory ---------------------------------------------------------------------------------


def test_factory_defaults_to_the_registry():
    assert isinstance(get_tax_verifier(), RegistryTaxVerifier)


def test_factory_builds_the_cached_http_backend(sandbox):
    settings = {
        "TAX_VERIFIER_BACKEND": "http",
        "TAX_VERIFIER_URL": sandbox.base_url,
        "TAX_VERIFIER_CLIENT_ID": sandbox.client_id,
        "TAX_VERIFIER_SECRET": sandbox.secret,
        "TAX_VERIFIER_TIMEOUT": 0.5,
    }
    with override_settings(**settings):
        cached = get_tax_verifier()
        assert isinstance(cached, CachedTaxVerifier) and cached.ttl == 3600
        assert isinstance(cached.inner, HttpTaxVerifier)
        assert isinstance(get_tax_verifier(cached=False), HttpTaxVerifier)
        assert ask(get_tax_verifier(cached=False)).outcome == TaxOutcome.FOUND
    with override_settings(**settings, TAX_VERIFY_CACHE_SECONDS=0):
        assert isinstance(get_tax_verifier(), HttpTaxVerifier)


@pytest.mark.parametrize(
    "overrides",
    [
        {"TAX_VERIFIER_BACKEND": "magic"},
        {"TAX_VERIFIER_URL": ""},
        {"TAX_VERIFIER_URL": "ftp://127.0.0.1/"},
        {"TAX_VERIFIER_URL": "http://tax.example.cn"},  # plain http off this machine
        {"TAX_VERIFIER_URL": "https://user:pw@tax.example.cn"},
        {"TAX_VERIFIER_SECRET": "short"},
        {"TAX_VERIFIER_CLIENT_ID": ""},
        {"TAX_VERIFIER_TIMEOUT": 0},
        {"TAX_VERIFIER_TIMEOUT": "soon"},
        {"TAX_VERIFY_CACHE_SECONDS": -1},
    ],
)
def test_factory_refuses_bad_configuration(overrides):
    settings = {
        "TAX_VERIFIER_BACKEND": "http",
        "TAX_VERIFIER_URL": "https://tax.example.cn/gw",
        "TAX_VERIFIER_CLIENT_ID": "lotteryinvoice",
        "TAX_VERIFIER_SECRET": "x" * 32,
        "TAX_VERIFIER_TIMEOUT": 5,
        **overrides,
    }
    with override_settings(**settings), pytest.raises(ImproperlyConfigured):
        get_tax_verifier()


def test_a_base_path_prefix_is_part_of_the_signed_path(sandbox):
    # The sandbox serves /v1/… at the root; a prefixed base URL must reach /gw/v1/… (404 here)
    # and sign that full path, not the endpoint alone.
    verifier = HttpTaxVerifier(sandbox.base_url + "/gw", sandbox.client_id, sandbox.secret, 0.5)
    assert ask(verifier).detail == "http_404"
    request = sandbox.last_request
    assert request.path == "/gw/v1/invoices/verify"
    assert request.headers["X-Signature"] == sign(
        sandbox.secret,
        timestamp=request.headers["X-Timestamp"],
        nonce=request.headers["X-Nonce"],
        method="POST",
        path="/gw/v1/invoices/verify",
        body=request.body,
    )
