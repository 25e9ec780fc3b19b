"""tools/backup.sh and tools/restore.sh: a seeded database is backed up, restored into a new
database, and there the audit chain and the prize ledger verify, with every row present."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit.models import AuditEvent
from apps.prizes.models import LedgerEntry

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("audit_event", "prizes_ledgerentry", "invoices_invoice", "accounts_consumer")


def _url(name: str) -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
    base["PYTHON"] = sys.executable  # restore.sh --verify runs manage.py with it
    return subprocess.run(
        list(args), cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip


def _counts(url: str) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        result = _run("psql", url, "-tAc", f"SELECT count(*) FROM {table}")
        assert result.returncode == 0, result.stderr
        counts[table] = int(result.stdout.strip())
    return counts


def _drop(name: str) -> None:
    _run("psql", _url("postgres"), "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_backup_then_restore_into_a_new_database_verifies(tmp_path):
    call_command("seed_demo", merchants=40, consumers=30, invoices=300, stdout=io.StringIO())
    assert AuditEvent.objects.exists() and LedgerEntry.objects.exists()
    source = _url(connection.settings_dict["NAME"])
    archive = tmp_path / "nightly.dump"

    backup = _run("tools/backup.sh", str(archive), env={"DATABASE_URL": source})
    assert backup.returncode == 0, backup.stderr
    assert backup.stdout.strip() == str(archive)
    assert archive.stat().st_size > 0 and (tmp_path / "nightly.dump.sha256").exists()
    assert oct(archive.stat().st_mode)[-3:] == "600"
    assert not list(tmp_path.glob("*.partial"))

    target_name = f"{connection.settings_dict['NAME']}_restored_{uuid.uuid4().hex[:8]}"
    target = _url(target_name)
    try:
        restore = _run("tools/restore.sh", str(archive), target, "--verify")
        assert restore.returncode == 0, restore.stdout + restore.stderr
        assert "audit chain OK" in restore.stdout
        assert "ledger OK" in restore.stdout
        assert _counts(target) == _counts(source)

        # Never over existing data: a second restore into the same database is refused.
        again = _run("tools/restore.sh", str(archive), target)
        assert again.returncode == 3 and "restore into a new one" in again.stderr
    finally:
        _drop(target_name)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_damaged_archive_is_refused_before_anything_is_restored(tmp_path):
    call_command("seed_demo", merchants=5, consumers=5, invoices=20, stdout=io.StringIO())
    archive = tmp_path / "b.dump"
    source = _url(connection.settings_dict["NAME"])
    assert _run("tools/backup.sh", str(archive), env={"DATABASE_URL": source}).returncode == 0
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    target_name = f"{connection.settings_dict['NAME']}_damaged_{uuid.uuid4().hex[:8]}"
    try:
        result = _run("tools/restore.sh", str(archive), _url(target_name))
        assert result.returncode != 0
        assert "FAILED" in result.stdout + result.stderr  # the checksum
        exists = _run("psql", _url("postgres"), "-tAc",
                      f"SELECT 1 FROM pg_database WHERE datname = '{target_name}'")  # fmt: skip
        assert exists.stdout.strip() == ""
    finally:
        _drop(target_name)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_verify_fails_on_a_restored_database_whose_trail_was_tampered_with(tmp_path):
    """The verification after a restore is not a formality: a changed audit record fails it."""
    call_command("seed_demo", merchants=5, consumers=5, invoices=20, stdout=io.StringIO())
    archive = tmp_path / "t.dump"
    source = _url(connection.settings_dict["NAME"])
    assert _run("tools/backup.sh", str(archive), env={"DATABASE_URL": source}).returncode == 0
    target_name = f"{connection.settings_dict['NAME']}_tamper_{uuid.uuid4().hex[:8]}"
    target = _url(target_name)
    try:
        assert _run("tools/restore.sh", str(archive), target).returncode == 0
        tamper = _run(
            "psql", target, "-v", "ON_ERROR_STOP=1", "-c",
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update_delete; "
            "UPDATE audit_event SET action = 'x.forged' WHERE seq = 2",
        )  # fmt: skip
        assert tamper.returncode == 0, tamper.stderr
        verify = _run(sys.executable, "manage.py", "audit_verify", env={"DATABASE_URL": target})
        assert verify.returncode == 1 and "#2" in verify.stderr
    finally:
        _drop(target_name)
