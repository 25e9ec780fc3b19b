"""Merchant API keys: issue and revoke (audited), signed requests, every refusal's code,
replays, scopes, one merchant never acting as another, and the admin pages."""

from __future__ import annotations

import base64
import hmac
import threading
import time
from contextlib import nullcontext
from datetime import timedelta

import pytest
import time_machine
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse
from django.utils import timezone
from rest_framework.response import Response

from apps.accounts import merchant_keys
from apps.accounts.api.merchant_views import MerchantAPIView
from apps.accounts.merchant_auth import HasMerchantScope, MerchantPrincipal
from apps.accounts.merchant_keys import (
    MerchantKeyError,
    merchant_key_issue,
    merchant_key_revoke,
    sign_merchant_request,
    token_hash,
)
from apps.accounts.models import MerchantAPIKey, MerchantKeyScope
from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify
from apps.merchants.choices import MerchantStatus
from lotteryinvoice.urls import urlpatterns as project_urlpatterns
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/merchant/whoami/"
PROBE = "/api/v1/merchant/test-probe/"
ALL_SCOPES = [s.value for s in MerchantKeyScope]


# --- a probe endpoint that needs a scope (mounted for this module only) -----------------------


class RedeemProbeView(MerchantAPIView):
    """Stands in for the coupon redemption endpoint: needs `coupons:redeem`."""

    required_scopes = (MerchantKeyScope.COUPONS_REDEEM,)

    def post(self, request):
        return Response(
            {
                "merchant": request.user.merchant.uscc,
                "key_id": request.auth.key_id,
                "data": request.data,
                "is_staff": request.user.is_staff,
            }
        )

    get = post


urlpatterns = [*project_urlpatterns, path(PROBE.lstrip("/"), RedeemProbeView.as_view())]
use_probe_urls = pytest.mark.urls(__name__)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def official():
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="专班管理员"))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def merchant():
    return MerchantFactory()


@pytest.fixture
def issued(merchant, official):
    return merchant_key_issue(merchant=merchant, label="till 1", scopes=ALL_SCOPES, actor=official)


def signed(issued, *, method="GET", target=WHOAMI, body=b"", **overrides) -> dict[str, str]:
    fields = {
        "key_id": issued.key.key_id,
        "token": issued.token,
        "private_key_pem": issued.private_key_pem,
    }
    fields.update(overrides)
    return sign_merchant_request(method=method, path=target, body=body, **fields)


def send(client, headers, *, method="GET", target=WHOAMI, body=b"", **extra):
    return client.generic(
        method, target, data=body, content_type="application/json", headers=headers, **extra
    )


def call(client, issued, *, method="GET", target=WHOAMI, body=b"", **overrides):
    headers = signed(issued, method=method, target=target, body=body, **overrides)
    return send(client, headers, method=method, target=target, body=body)


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    payload = response.json()
    assert set(payload) == {"code", "message", "detail"}
    assert payload["code"] == code, payload
    assert payload["message"]
    if status == 401:
        assert response["WWW-Authenticate"].startswith("MerchantKey")


# --- issuing and revoking ---------------------------------------------------------------------


def test_issue_returns_secrets_once_and_stores_only_hash_and_public_key(issued, merchant):
    key = MerchantAPIKey.objects.get(pk=issued.key.pk)
    assert key.merchant == merchant and key.scopes == sorted(ALL_SCOPES)
    assert key.key_id.startswith("mk_") and len(key.key_id) == 19
    assert issued.token.startswith("mks_") and len(issued.token) >= 4 + 43  # 256 bits
    # The token only as its keyed hash, bound to the key ID.
    assert key.token_hash == token_hash(key.key_id, issued.token) != issued.token
    assert len(key.token_hash) == 64
    # The private key's public half is what is stored; the private key nowhere.
    private = serialization.load_pem_private_key(issued.private_key_pem.encode(), None)
    assert isinstance(private, Ed25519PrivateKey)
    public_raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.b64decode(key.public_key) == public_raw
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {MerchantAPIKey._meta.db_table} WHERE id = %s", [key.pk])
        row = " ".join(str(v) for v in cursor.fetchone())
    secret_body = issued.private_key_pem.split("-----")[2].strip()
    assert issued.token not in row and issued.token[4:] not in row
    assert secret_body not in row
    # Nor in the object's repr or the audit trail.
    assert issued.token not in repr(issued) and secret_body not in repr(issued)
    event = AuditEvent.objects.get(action="merchant_key.issued")
    assert event.target_id == str(key.pk) and event.actor_id == key.created_by_id
    assert event.after["key_id"] == key.key_id and event.after["scopes"] == sorted(ALL_SCOPES)
    assert issued.token not in str(event.after) and secret_body not in str(event.after)


def test_every_issue_makes_new_secrets(merchant, official):
    one = merchant_key_issue(merchant=merchant, label="a", scopes=ALL_SCOPES, actor=official)
    two = merchant_key_issue(merchant=merchant, label="b", scopes=ALL_SCOPES, actor=official)
    assert one.key.key_id != two.key.key_id and one.token != two.token
    assert one.private_key_pem != two.private_key_pem and one.key.public_key != two.key.public_key


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"scopes": []}, "merchant_key.scopes_required"),
        ({"scopes": ["coupons:redeem", "admin:all"]}, "merchant_key.unknown_scope"),
        ({"label": "  "}, "merchant_key.label_required"),
        ({"label": "x" * 101}, "merchant_key.label_too_long"),
        ({"expires_at": "past"}, "merchant_key.expiry_in_past"),
    ],
)
def test_issue_refuses_bad_input(merchant, official, kwargs, code):
    args = {"merchant": merchant, "label": "till", "scopes": ALL_SCOPES, "actor": official}
    if kwargs.get("expires_at") == "past":
        kwargs = {"expires_at": timezone.now() - timedelta(seconds=1)}
    with pytest.raises(MerchantKeyError) as caught:
        merchant_key_issue(**{**args, **kwargs})
    assert caught.value.code == code
    assert not MerchantAPIKey.objects.exists()


def test_no_key_for_an_inactive_merchant(official):
    merchant = MerchantFactory(status=MerchantStatus.SUSPENDED)
    with pytest.raises(MerchantKeyError) as caught:
        merchant_key_issue(merchant=merchant, label="till", scopes=ALL_SCOPES, actor=official)
    assert caught.value.code == "merchant_key.merchant_inactive"


def test_revoke_needs_a_reason_happens_once_and_is_audited(issued, official):
    with pytest.raises(MerchantKeyError) as caught:
        merchant_key_revoke(key=issued.key, actor=official, reason="  ")
    assert caught.value.code == "merchant_key.reason_required"
    revoked = merchant_key_revoke(key=issued.key, actor=official, reason="till stolen")
    assert revoked.revoked_at and revoked.revoked_by == official
    assert revoked.revoked_reason == "till stolen" and revoked.status == "revoked"
    with pytest.raises(MerchantKeyError) as caught:
        merchant_key_revoke(key=issued.key, actor=official, reason="again")
    assert caught.value.code == "merchant_key.already_revoked"
    event = AuditEvent.objects.get(action="merchant_key.revoked")
    assert event.reason == "till stolen" and event.actor_id == official.pk
    assert event.target_id == str(issued.key.pk)
    assert audit_verify().ok


# --- a signed request -------------------------------------------------------------------------


def test_signed_request_succeeds(client, issued, merchant):
    response = call(client, issued)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "merchant": {"name": merchant.name, "uscc": merchant.uscc},
        "key_id": issued.key.key_id,
        "label": "till 1",
        "scopes": sorted(ALL_SCOPES),
        "expires_at": None,
    }
    assert "no-store" in response["Cache-Control"]
    key = MerchantAPIKey.objects.get(pk=issued.key.pk)
    assert key.last_used_at is not None and key.last_used_ip == "127.0.0.1"


def test_query_string_is_signed(client, issued):
    target = WHOAMI + "?page=2&x=%E4%B8%AD"
    assert call(client, issued, target=target).status_code == 200
    # Signed for one query, sent with another.
    headers = signed(issued, target=WHOAMI + "?page=2")
    assert_error(
        send(client, headers, target=WHOAMI + "?page=3"), 401, "merchant_auth.bad_signature"
    )


@use_probe_urls
def test_body_and_method_are_signed(client, issued):
    body = b'{"code": "ABC123"}'
    response = call(client, issued, method="POST", target=PROBE, body=body)
    assert response.status_code == 200, response.content
    assert response.json()["data"] == {"code": "ABC123"}
    assert response.json()["is_staff"] is False

    headers = signed(issued, method="POST", target=PROBE, body=body)
    tampered = send(client, headers, method="POST", target=PROBE, body=b'{"code": "ABC124"}')
    assert_error(tampered, 401, "merchant_auth.bad_signature")

    headers = signed(issued, method="POST", target=PROBE, body=b"")
    assert_error(
        send(client, headers, method="GET", target=PROBE), 401, "merchant_auth.bad_signature"
    )


def test_principal_is_a_merchant_not_a_user(issued):
    principal = MerchantPrincipal(merchant=issued.key.merchant, api_key=issued.key)
    assert principal.is_authenticated and not principal.is_staff and not principal.is_superuser
    assert principal.pk is None and not principal.has_perm("accounts.view_user")
    assert principal.get_username() == f"merchant-key:{issued.key.key_id}"


def test_a_back_office_session_does_not_open_the_merchant_api(admin_client):
    assert_error(admin_client.get(WHOAMI), 401, "merchant_auth.missing_headers")


# --- every refusal, with its code -------------------------------------------------------------


@pytest.mark.parametrize("header", ["Authorization", "X-Timestamp", "X-Nonce", "X-Signature"])
def test_missing_header(client, issued, header):
    headers = signed(issued)
    del headers[header]
    assert_error(send(client, headers), 401, "merchant_auth.missing_headers")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Authorization", "Bearer abc"),
        ("Authorization", "MerchantKey mk_abcdefghijklmnop"),
        ("Authorization", "MerchantKey mk_ABC:token-token-token"),
        ("X-Timestamp", "17e8"),
        ("X-Timestamp", "-5"),
        ("X-Nonce", "abc123"),  # shorter than 16
        ("X-Nonce", "z" * 32),  # not hex
        ("X-Nonce", "a" * 130),  # longer than 128
        ("X-Signature", "not base64!"),
        ("X-Signature", base64.b64encode(b"short").decode()),
    ],
)
def test_malformed_header(client, issued, header, value):
    headers = {**signed(issued), header: value}
    assert_error(send(client, headers), 401, "merchant_auth.malformed_headers")


def test_unknown_key(client, issued):
    assert_error(call(client, issued, key_id="mk_" + "a" * 16), 401, "merchant_auth.unknown_key")


def test_revoked_key_is_refused_immediately(client, issued, official):
    assert call(client, issued).status_code == 200
    merchant_key_revoke(key=issued.key, actor=official, reason="contract ended")
    assert_error(call(client, issued), 401, "merchant_auth.key_revoked")


def test_expired_key(client, merchant, official):
    issued = merchant_key_issue(
        merchant=merchant,
        label="temporary",
        scopes=ALL_SCOPES,
        actor=official,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert call(client, issued).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert_error(call(client, issued), 401, "merchant_auth.key_expired")


def test_bad_token(client, issued):
    wrong = "mks_" + "A" * 43
    assert_error(call(client, issued, token=wrong), 401, "merchant_auth.bad_token")


def test_token_is_compared_in_constant_time(client, issued, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(merchant_keys.hmac, "compare_digest", spy)
    stored = issued.key.token_hash.encode()
    assert call(client, issued).status_code == 200
    assert (token_hash(issued.key.key_id, issued.token).encode(), stored) in calls
    calls.clear()
    assert_error(call(client, issued, token="mks_" + "B" * 43), 401, "merchant_auth.bad_token")
    assert calls and all(b == stored for _a, b in calls)


def test_bad_signature_from_another_private_key(client, issued):
    stranger = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    assert_error(call(client, issued, private_key_pem=stranger), 401, "merchant_auth.bad_signature")


# Ten seconds past the 300 s tolerance: the header is whole seconds and the server compares
# with its clock when the request arrives, so +301 could pass on a slow machine (seen in CI).
@pytest.mark.parametrize("offset", [-310, 310, -3600])
def test_stale_timestamp(client, issued, offset):
    response = call(client, issued, timestamp=int(time.time()) + offset)
    assert_error(response, 401, "merchant_auth.stale_timestamp")


@pytest.mark.parametrize("offset", [-290, 290])
def test_timestamp_within_the_window_is_accepted(client, issued, offset):
    assert call(client, issued, timestamp=int(time.time()) + offset).status_code == 200


def test_wrong_signature_is_checked_before_the_clock_and_burns_no_nonce(client, issued):
    nonce = "ab" * 16
    forged = {**signed(issued, nonce=nonce), "X-Signature": base64.b64encode(b"x" * 64).decode()}
    assert_error(send(client, forged), 401, "merchant_auth.bad_signature")
    # The forged request did not use up the nonce: the merchant's real request still passes.
    assert call(client, issued, nonce=nonce).status_code == 200


@pytest.mark.parametrize(
    "caches",
    [
        None,  # the configured cache (Redis in CI)
        {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    ],
    ids=["configured-cache", "locmem"],
)
def test_replaying_the_same_request_is_refused(client, issued, caches):
    with override_settings(CACHES=caches) if caches else nullcontext():
        headers = signed(issued)
        assert send(client, headers).status_code == 200
        assert_error(send(client, headers), 401, "merchant_auth.replayed_nonce")
        # The same nonce under a new signature (new timestamp) is still a replay.
        again = signed(issued, nonce=headers["X-Nonce"], timestamp=int(time.time()) + 1)
        assert_error(send(client, again), 401, "merchant_auth.replayed_nonce")
        # A fresh nonce is fine.
        assert call(client, issued).status_code == 200


def test_same_nonce_under_another_key_is_not_a_replay(client, issued, merchant, official):
    other = merchant_key_issue(merchant=merchant, label="till 2", scopes=ALL_SCOPES, actor=official)
    nonce = "cd" * 16
    assert call(client, issued, nonce=nonce).status_code == 200
    assert call(client, other, nonce=nonce).status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_replays_let_exactly_one_through(merchant):
    actor = UserFactory(is_staff=True)
    issued = merchant_key_issue(merchant=merchant, label="t", scopes=ALL_SCOPES, actor=actor)
    headers = signed(issued)
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def worker():
        try:
            barrier.wait()
            statuses.append(send(Client(), headers).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401, 401, 401, 401, 401]


@use_probe_urls
def test_scope_is_enforced(client, merchant, official):
    reader = merchant_key_issue(
        merchant=merchant, label="reports", scopes=["coupons:read", "reports:read"], actor=official
    )
    redeemer = merchant_key_issue(
        merchant=merchant, label="till", scopes=["coupons:redeem"], actor=official
    )
    assert_error(call(client, reader, target=PROBE), 403, "merchant_auth.scope_missing")
    assert call(client, redeemer, target=PROBE).status_code == 200
    # whoami needs no scope
    assert call(client, reader).json()["scopes"] == ["coupons:read", "reports:read"]


def test_view_without_required_scopes_is_a_programming_error(issued, rf):
    class Forgetful(MerchantAPIView):
        pass

    request = rf.get("/")
    request.user = MerchantPrincipal(merchant=issued.key.merchant, api_key=issued.key)
    with pytest.raises(ImproperlyConfigured):
        HasMerchantScope().has_permission(request, Forgetful())


def test_suspended_merchant_is_refused(client, issued, merchant):
    from apps.merchants.services import merchant_set_status

    merchant_set_status(
        merchant=merchant, status=MerchantStatus.SUSPENDED, reason="inspection", actor=None
    )
    assert_error(call(client, issued), 403, "merchant_auth.merchant_inactive")


# --- one merchant never acts as another -------------------------------------------------------


@use_probe_urls
def test_merchant_a_cannot_act_as_merchant_b(client, official):
    a, b = MerchantFactory(), MerchantFactory()
    key_a = merchant_key_issue(merchant=a, label="a", scopes=ALL_SCOPES, actor=official)
    key_b = merchant_key_issue(merchant=b, label="b", scopes=ALL_SCOPES, actor=official)
    # A's token with B's key ID, and B's token with A's key ID.
    assert_error(call(client, key_a, key_id=key_b.key.key_id), 401, "merchant_auth.bad_token")
    assert_error(call(client, key_a, token=key_b.token), 401, "merchant_auth.bad_token")
    # B's key ID and token, signed with A's private key.
    assert_error(
        call(client, key_b, private_key_pem=key_a.private_key_pem),
        401,
        "merchant_auth.bad_signature",
    )
    # A's own credentials act for A only, whatever the body claims.
    response = call(
        client, key_a, method="POST", target=PROBE, body=f'{{"merchant": "{b.uscc}"}}'.encode()
    )
    assert response.status_code == 200 and response.json()["merchant"] == a.uscc


# --- last use ---------------------------------------------------------------------------------


def test_last_use_is_written_at_most_once_a_minute(client, issued):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert call(client, issued).status_code == 200
    first = MerchantAPIKey.objects.get(pk=issued.key.pk).last_used_at
    assert first == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        with CaptureQueriesContext(connection) as queries:
            assert call(client, issued).status_code == 200
        assert not any(q["sql"].startswith("UPDATE") for q in queries.captured_queries)
    assert MerchantAPIKey.objects.get(pk=issued.key.pk).last_used_at == first
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert call(client, issued).status_code == 200
    assert MerchantAPIKey.objects.get(pk=issued.key.pk).last_used_at == start + timedelta(
        seconds=61
    )


# --- schema -----------------------------------------------------------------------------------


def test_whoami_is_in_the_api_schema_with_its_security_scheme(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"][WHOAMI]["get"]
    assert {"merchantKey": []} in operation["security"]
    assert len(operation["security"]) == 1
    names = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"X-Timestamp", "X-Nonce", "X-Signature"} <= names
    assert schema["components"]["securitySchemes"]["merchantKey"]["name"] == "Authorization"
    for status in ("401", "403"):
        ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/Error")


# --- admin ------------------------------------------------------------------------------------

CHANGELIST = reverse("admin:accounts_merchantapikey_changelist")
ISSUE = reverse("admin:accounts_merchantapikey_issue")


def staff_in(group_name: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def test_campaign_admin_issues_a_key_and_sees_the_secrets_once(client, official, merchant):
    sign_in_staff(client, official)
    page = client.get(ISSUE)
    assert page.status_code == 200
    response = client.post(
        ISSUE,
        {
            "uscc": merchant.uscc.lower(),
            "label": "收银台 1",
            "scopes": ["coupons:redeem", "coupons:read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200, response.content
    issued = response.context["issued"]
    assert issued is not None
    html = response.content.decode()
    assert issued.token in html and issued.key.key_id in html
    assert "BEGIN PRIVATE KEY" in html
    assert "no-store" in response["Cache-Control"]
    key = MerchantAPIKey.objects.get()
    assert key.merchant == merchant and key.created_by == official
    assert key.scopes == ["coupons:read", "coupons:redeem"]
    assert AuditEvent.objects.filter(action="merchant_key.issued", actor_id=official.pk).exists()
    # The secrets work, and are on no other page.
    assert call(Client(), issued).status_code == 200
    listing = client.get(CHANGELIST).content.decode()
    detail = client.get(
        reverse("admin:accounts_merchantapikey_change", args=[key.pk])
    ).content.decode()
    for text in (listing, detail):
        assert issued.token not in text and "PRIVATE KEY" not in text
        assert key.token_hash not in text
    assert key.masked_key_id in listing and key.key_id not in listing
    assert key.key_id in detail


def test_issue_form_errors(client, official):
    sign_in_staff(client, official)
    suspended = MerchantFactory(status=MerchantStatus.SUSPENDED)
    for data in (
        {"uscc": "91410105MA00000000", "label": "x", "scopes": ["coupons:read"]},
        {"uscc": suspended.uscc, "label": "x", "scopes": ["coupons:read"]},
        {"uscc": suspended.uscc, "label": "x", "scopes": []},
    ):
        response = client.post(ISSUE, data)
        assert response.status_code == 200
        assert response.context["issued"] is None and response.context["form"].errors
    assert not MerchantAPIKey.objects.exists()


def test_campaign_admin_revokes_with_a_reason(client, official, issued):
    sign_in_staff(client, official)
    listing = client.get(CHANGELIST)
    assert "revoke" in listing.context["cl"].model_admin.get_actions(listing.wsgi_request)
    # No reason: nothing happens.
    client.post(CHANGELIST, {"action": "revoke", "_selected_action": [issued.key.pk]})
    assert MerchantAPIKey.objects.get(pk=issued.key.pk).revoked_at is None
    response = client.post(
        CHANGELIST,
        {"action": "revoke", "_selected_action": [issued.key.pk], "reason": "POS replaced"},
    )
    assert response.status_code == 302
    key = MerchantAPIKey.objects.get(pk=issued.key.pk)
    assert key.revoked_at and key.revoked_by == official and key.revoked_reason == "POS replaced"
    event = AuditEvent.objects.get(action="merchant_key.revoked")
    assert event.actor_id == official.pk and event.reason == "POS replaced"
    assert_error(call(Client(), issued), 401, "merchant_auth.key_revoked")


def test_keys_are_never_added_edited_or_deleted_as_rows(client, official, issued):
    sign_in_staff(client, official)
    assert client.get(reverse("admin:accounts_merchantapikey_add")).status_code == 403
    change = reverse("admin:accounts_merchantapikey_change", args=[issued.key.pk])
    before = MerchantAPIKey.objects.get(pk=issued.key.pk)
    client.post(change, {"label": "changed", "token_hash": "0" * 64, "public_key": "AAAA"})
    after = MerchantAPIKey.objects.get(pk=issued.key.pk)
    assert (after.label, after.token_hash, after.public_key) == (
        before.label,
        before.token_hash,
        before.public_key,
    )
    delete = reverse("admin:accounts_merchantapikey_delete", args=[issued.key.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert MerchantAPIKey.objects.filter(pk=issued.key.pk).exists()


@pytest.mark.parametrize(
    "group_name", ["审核员", "风控专员", "财务经办", "审计员", "系统管理员", "安全管理员"]
)
def test_other_roles_can_neither_see_issue_nor_revoke(client, issued, group_name):
    sign_in_staff(client, staff_in(group_name))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(ISSUE).status_code == 403
    response = client.post(
        ISSUE, {"uscc": issued.key.merchant.uscc, "label": "x", "scopes": ["coupons:read"]}
    )
    assert response.status_code == 403
    client.post(
        CHANGELIST, {"action": "revoke", "_selected_action": [issued.key.pk], "reason": "x"}
    )
    assert MerchantAPIKey.objects.count() == 1
    assert MerchantAPIKey.objects.get().revoked_at is None


def test_view_only_staff_may_not_issue_or_revoke(client, issued):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_merchantapikey"))
    sign_in_staff(client, user)
    listing = client.get(CHANGELIST)
    assert listing.status_code == 200 and not listing.context["can_issue"]
    assert client.get(ISSUE).status_code == 403
    client.post(
        CHANGELIST, {"action": "revoke", "_selected_action": [issued.key.pk], "reason": "x"}
    )
    assert MerchantAPIKey.objects.get(pk=issued.key.pk).revoked_at is None


def test_only_the_campaign_admin_role_holds_key_permissions():
    from apps.accounts.roles import ROLES

    key_perms = {
        "accounts.view_merchantapikey",
        "accounts.issue_merchantapikey",
        "accounts.revoke_merchantapikey",
    }
    holders = {role.code for role in ROLES if role.permissions & key_perms}
    assert holders == {"campaign_admin"}
    admin_role = next(role for role in ROLES if role.code == "campaign_admin")
    assert key_perms <= admin_role.permissions
