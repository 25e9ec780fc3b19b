"""Rules about API clients and consumers, through the real endpoints: credential stuffing
(failed staff sign-ins and app sign-in code requests across many accounts from one address —
these block the address at once), enumeration (many 404s, sequential IDs) and merchant API keys
(a new network, far above the usual rate — with the key suspended and restored)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from apps.accounts.merchant_keys import merchant_key_issue, sign_merchant_request
from apps.accounts.models import MerchantKeyScope
from apps.audit.models import AuditEvent
from apps.monitoring import services
from apps.monitoring.choices import ResponseKind, ResponseStatus
from apps.monitoring.models import AutomaticResponse, KeyUsageBaseline, KnownNetwork
from tests.accounts.helpers import LOGIN_URL, make_staff, post_login
from tests.accounts.test_consumer_login import CODE_REQUEST, sms  # noqa: F401  (fixture)
from tests.factories.core import MerchantFactory, UserFactory
from tests.monitoring.conftest import alerts

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.66"
OTHER = "198.51.100.20"
WHOAMI = "/api/v1/merchant/whoami/"


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Credential stuffing ---------------------------------------------------------------------


def test_failed_sign_ins_across_many_accounts_block_the_source(committed, set_rule, fast_hashing):
    set_rule("failed_login_burst", threshold=3, window_minutes=10, params={"block_minutes": 30})
    victim = make_staff("victim")
    client = Client()
    for name in ("alice", "bob"):
        assert (
            committed(post_login, client, name, "wrong-Password-1", ip=ATTACKER).status_code == 200
        )
    assert not alerts("failed_login_burst").exists()

    committed(post_login, client, "carol", "wrong-Password-1", ip=ATTACKER)
    alert = alerts("failed_login_burst").get()
    assert alert.subject_id == ATTACKER and alert.details["distinct_logins"] == 3
    failed = AuditEvent.objects.filter(action="auth.login_failed", ip=ATTACKER)
    assert set(alert.evidence) == set(failed.values_list("pk", flat=True))
    block = AutomaticResponse.objects.get(alert=alert)
    assert block.kind == ResponseKind.BLOCK_SOURCE and block.expires_at is not None

    # Blocked at once, even with the right password; other addresses are unaffected.
    refused = post_login(Client(), victim.username, "Staff-Login-2026!", ip=ATTACKER)
    assert refused.status_code == 429
    assert Client().get(LOGIN_URL, REMOTE_ADDR=OTHER).status_code == 200

    committed(
        services.response_reverse, response=block, actor=_security_admin(), note="误报：出口地址"
    )
    assert Client().get(LOGIN_URL, REMOTE_ADDR=ATTACKER).status_code == 200


def _security_admin():
    user = UserFactory(is_staff=True, username="sec2")
    user.groups.add(Group.objects.get(name="安全管理员"))
    return type(user).objects.get(pk=user.pk)


def test_failed_sign_ins_of_one_account_are_not_stuffing(committed, set_rule, fast_hashing):
    set_rule("failed_login_burst", threshold=3, window_minutes=10)
    make_staff("victim")
    client = Client()
    for _ in range(4):
        committed(post_login, client, "victim", "wrong-Password-1", ip=ATTACKER)
    assert not alerts("failed_login_burst").exists()
    assert not AutomaticResponse.objects.exists()


def request_code(client, phone, ip):
    return client.post(
        CODE_REQUEST, {"phone": phone}, content_type="application/json", REMOTE_ADDR=ip
    )


def test_code_requests_for_many_phones_from_one_source_block_it(committed, set_rule, sms):  # noqa: F811
    set_rule("sms_code_burst", threshold=3, window_minutes=10)
    client = Client()
    for phone in ("13912340001", "13912340002"):
        assert committed(request_code, client, phone, ATTACKER).status_code == 401
    assert not alerts("sms_code_burst").exists()
    committed(request_code, Client(), "13912340003", ATTACKER)
    alert = alerts("sms_code_burst").get()
    assert alert.subject_id == ATTACKER and alert.details["distinct_phones"] == 3
    blocked = request_code(Client(), "13912340004", ATTACKER)
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "monitoring.source_blocked"
    assert len(sms.messages_to("13912340004")) == 0
    assert request_code(Client(), "13912340004", OTHER).status_code == 401  # others get codes


def test_repeated_code_requests_for_one_phone_do_not_alert(committed, set_rule, sms):  # noqa: F811
    set_rule("sms_code_burst", threshold=3, window_minutes=10)
    for _ in range(4):
        committed(request_code, Client(), "13912340001", ATTACKER)
    assert not alerts("sms_code_burst").exists()


# --- Enumeration -----------------------------------------------------------------------------


def test_many_not_found_answers_alert(committed, set_rule):
    set_rule("enumeration", threshold=5, window_minutes=5)
    client = Client()
    for i in range(4):
        assert (
            committed(client.get, f"/draws/NO-SUCH-{i}/", REMOTE_ADDR=ATTACKER).status_code == 404
        )
    assert not alerts("enumeration").exists()
    committed(client.get, "/draws/NO-SUCH-9/", REMOTE_ADDR=ATTACKER)
    alert = alerts("enumeration").get()
    assert alert.details["pattern"] == "not_found" and alert.subject_id == ATTACKER


def test_walking_numeric_ids_alerts(committed, set_rule, security_client):
    set_rule("enumeration", threshold=100, window_minutes=5, params={"sequential_threshold": 4})
    for pk in range(5000, 5005):
        response = committed(
            security_client.get, f"/admin/monitoring/alert/{pk}/detail/", REMOTE_ADDR=ATTACKER
        )
        assert response.status_code == 404
    alert = alerts("enumeration").get()
    assert alert.details["pattern"] == "sequential_ids"
    assert alert.details["actor"] == "secadmin"


def test_a_few_scattered_not_found_answers_do_not_alert(committed, set_rule):
    set_rule("enumeration", threshold=5, window_minutes=5, params={"sequential_threshold": 3})
    client = Client()
    for pk in (17, 4242, 99, 1000):
        committed(client.get, f"/draws/{pk}/", REMOTE_ADDR=ATTACKER)
    for pk in (1, 3):  # from another address: its own count
        committed(client.get, f"/draws/{pk}/", REMOTE_ADDR=OTHER)
    assert not alerts("enumeration").exists()


# --- Merchant API keys -----------------------------------------------------------------------


@pytest.fixture
def issued(db):
    official = UserFactory(is_staff=True)
    official.groups.add(Group.objects.get(name="专班管理员"))
    official = type(official).objects.get(pk=official.pk)
    return merchant_key_issue(
        merchant=MerchantFactory(),
        label="till 1",
        scopes=[s.value for s in MerchantKeyScope],
        actor=official,
    )


def call(issued, ip):
    headers = sign_merchant_request(
        key_id=issued.key.key_id,
        token=issued.token,
        private_key_pem=issued.private_key_pem,
        method="GET",
        path=WHOAMI,
    )
    return Client().get(WHOAMI, headers=headers, REMOTE_ADDR=ip)


def test_key_used_from_a_new_network_is_suspended_and_can_be_restored(committed, set_rule, issued):
    set_rule("key_new_network", response=ResponseKind.SUSPEND_KEY)
    assert committed(call, issued, "198.51.100.7").status_code == 200  # its first network
    assert committed(call, issued, "198.51.100.200").status_code == 200  # same /24
    assert not alerts("key_new_network").exists()
    assert committed(call, issued, "203.0.113.9").status_code == 200
    alert = alerts("key_new_network").get()
    assert alert.subject_id == issued.key.key_id
    assert alert.details["network"] == "203.0.113.0/24"
    assert set(
        KnownNetwork.objects.filter(subject_id=issued.key.key_id).values_list("network", flat=True)
    ) == {"198.51.100.0/24", "203.0.113.0/24"}

    response = AutomaticResponse.objects.get(alert=alert)
    assert response.kind == ResponseKind.SUSPEND_KEY
    refused = call(issued, "198.51.100.7")
    assert refused.status_code == 401 and refused.json()["code"] == "merchant_auth.key_suspended"

    committed(
        services.response_reverse, response=response, actor=_security_admin(), note="商户更换网络"
    )
    assert call(issued, "198.51.100.7").status_code == 200
    assert AutomaticResponse.objects.get(pk=response.pk).status == ResponseStatus.REVERSED


def test_key_far_above_its_rate_alerts(committed, set_rule, issued):
    set_rule("key_rate", threshold=6, params={"min_requests": 3})
    for _ in range(5):
        assert committed(call, issued, "198.51.100.7").status_code == 200
    assert not alerts("key_rate").exists()
    committed(call, issued, "198.51.100.7")
    alert = alerts("key_rate").get()
    assert alert.details["requests_this_minute"] == 6 and alert.details["limit"] == 6


def test_usual_rate_is_learnt_and_lowers_the_limit(committed, set_rule, issued):
    """Busy minutes fold into the key's usual rate; a known rate × multiplier is the limit."""
    from apps.monitoring import counters, state

    set_rule(
        "key_rate", threshold=1000, params={"min_requests": 3, "multiplier": 2, "min_samples": 2}
    )
    key_id = issued.key.key_id
    minute = 29_000_000
    for offset, count in ((0, 4), (1, 4)):
        for _ in range(count):
            counters._incr(f"{counters.PREFIX}keyrate:{key_id}:{minute + offset}", 180)
        services.key_rate_fold(key_id=key_id, minute=minute + offset)
    baseline = KeyUsageBaseline.objects.get(key_id=key_id)
    assert baseline.samples == 2 and baseline.per_minute == 4
    now = (minute + 5) * 60
    for _ in range(7):
        committed(counters.merchant_key_used, key_id=key_id, ip=None, now=now)
    assert not alerts("key_rate").exists()  # 7 < 2 × 4
    committed(counters.merchant_key_used, key_id=key_id, ip=None, now=now)
    assert alerts("key_rate").get().details["limit"] == 8
    assert state.rule("key_rate").threshold == 1000


def test_a_key_within_its_rate_does_not_alert(committed, set_rule, issued):
    set_rule("key_rate", threshold=50, params={"min_requests": 3})
    for _ in range(8):
        assert committed(call, issued, "198.51.100.7").status_code == 200
    assert not alerts("key_rate").exists()
