"""The audit trail: chained, gapless, append-only, verified."""

from __future__ import annotations

import io
import threading

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.urls import reverse

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import audit_record, audit_verify
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import UserFactory

pytestmark = pytest.mark.django_db


def seed(n: int = 5) -> int:
    """Append n records; return the seq of the first (migrations may have audited already)."""
    start = AuditChainHead.objects.get(pk=1).seq + 1
    for i in range(n):
        audit_record(action="test.step", target_type="test", target_id=str(i), after={"i": i})
    return start


def tamper(sql: str, params=()) -> None:
    """Bypass the append-only trigger the way a DBA with superuser rights could."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE audit_event DISABLE TRIGGER USER")
        cur.execute(sql, params)
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE audit_event ENABLE TRIGGER USER")


def verify_cmd() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
        return 0, out.getvalue()
    except SystemExit as exc:
        return exc.code, err.getvalue()


def test_chain_verifies_and_is_gapless():
    start = seed(5)
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, start + 5)
    )
    assert audit_verify().ok
    code, out = verify_cmd()
    assert code == 0 and f"{start + 4} records" in out


def test_edited_record_is_detected():
    s = seed(5)
    tamper("UPDATE audit_event SET reason = 'nothing to see' WHERE seq = %s", [s + 2])
    result = audit_verify()
    assert not result.ok and result.seq == s + 2 and "altered" in result.problem
    code, err = verify_cmd()
    assert code == 1 and f"#{s + 2}" in err


def test_deleted_record_is_detected():
    s = seed(5)
    tamper("DELETE FROM audit_event WHERE seq = %s", [s + 1])
    result = audit_verify()
    assert not result.ok and result.seq == s + 1 and "missing" in result.problem


def test_deleted_tail_record_is_detected_by_the_head():
    s = seed(5)
    tamper("DELETE FROM audit_event WHERE seq = %s", [s + 4])
    result = audit_verify()
    assert not result.ok and "head" in result.problem


def test_inserted_record_is_detected():
    s = seed(5)
    forged = AuditEvent.objects.get(seq=s + 2)
    tamper("DELETE FROM audit_event WHERE seq = %s", [s + 2])
    forged.pk, forged.reason = None, "forged"
    forged.save(force_insert=True)  # same seq, attacker cannot compute the HMAC
    result = audit_verify()
    assert not result.ok and result.seq == s + 2


def test_appended_record_without_head_is_detected():
    s = seed(3)
    extra = AuditEvent.objects.get(seq=s + 2)
    extra.pk, extra.seq = None, s + 3
    extra.save(force_insert=True)
    assert not audit_verify().ok


@pytest.mark.postgres
def test_trigger_blocks_update_delete_truncate():
    before = AuditEvent.objects.count()
    seed(2)
    with connection.cursor() as cur:  # the test database allows TRUNCATE for flushing only
        cur.execute("SET lotteryinvoice.allow_audit_truncate = 'off'")
    for sql in (
        "UPDATE audit_event SET reason = 'x'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql)
    assert AuditEvent.objects.count() == before + 2
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(seq=1).update(reason="x")
    with connection.cursor() as cur:
        cur.execute("SET lotteryinvoice.allow_audit_truncate = 'on'")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_appends_stay_gapless_and_verify():
    n = 16
    start = AuditChainHead.objects.get(pk=1).seq
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def append(i: int):
        try:
            barrier.wait()
            with transaction.atomic():
                audit_record(action="test.parallel", target_type="t", target_id=str(i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=append, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, start + n + 1))
    assert AuditChainHead.objects.get(pk=1).seq == start + n
    assert audit_verify().ok


def test_failed_login_is_recorded_without_the_login_name(client):
    client.post(reverse("account_login"), {"login": "13812345678", "password": "wrong-pass"})
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert "13812345678" not in str(event.__dict__)
    assert len(event.after["login_fingerprint"]) == 16
    assert event.ip == "127.0.0.1" and event.request_id


def test_group_membership_change_is_audited():
    user = UserFactory()
    group = Group.objects.get(name="审计员")
    user.groups.add(group)
    event = AuditEvent.objects.get(action="permission.groups_added")
    assert event.after == {"groups": ["审计员"]} and event.target_id == str(user.pk)


def _staff_in(group_name: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def test_only_audit_roles_read_the_trail(client):
    seed(1)
    url = reverse("admin:audit_auditevent_changelist")
    for group_name, status in (("审计员", 200), ("审计管理员", 200), ("系统管理员", 403)):
        sign_in_staff(client, _staff_in(group_name))
        assert client.get(url).status_code == status, group_name


def test_audit_export_is_itself_audited(client):
    seed(2)
    sign_in_staff(client, _staff_in("审计员"))
    url = reverse("admin:audit_auditevent_changelist")
    ids = list(AuditEvent.objects.values_list("pk", flat=True))
    response = client.post(url, {"action": "export_csv", "_selected_action": ids})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert AuditEvent.objects.filter(action="audit.exported").exists()
    assert audit_verify().ok
