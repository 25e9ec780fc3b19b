"""The three ways to start: embedded default, production with secrets, production without."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAFE_ENV = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL"}}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**SAFE_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def production_env() -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    return {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": base64.b64encode(os.urandom(48)).decode(),
        "DJANGO_ALLOWED_HOSTS": "fapiao.example.gov.cn",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "FIELD_ENCRYPTION_KEYS": f"1:aes-256-gcm:{key};2:sm4-gcm:{key[:22]}==",
        "BLIND_INDEX_KEYS": key,
        "AUDIT_HMAC_KEY": key,
    }


def test_production_passes_check_deploy_at_warning_level():
    env = production_env()
    env["FIELD_ENCRYPTION_KEYS"] = env["FIELD_ENCRYPTION_KEYS"].split(";")[0]
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_secrets_refuses_with_a_clear_message():
    result = manage("check", env={"DJANGO_ENV": "production"})
    assert result.returncode != 0
    assert "refuses to start without explicit secrets" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr and "FIELD_ENCRYPTION_KEYS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("1:aes-256-gcm:c2hvcnQ=", "needs a 32-byte key"),
        ("1:des:c2hvcnQ=", "unknown algorithm"),
        ("nonsense", "look like"),
    ],
)
def test_production_with_malformed_keys_refuses(keys, message):
    env = production_env() | {"FIELD_ENCRYPTION_KEYS": keys}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr


def test_embedded_default_generates_keys_once(tmp_path):
    env = {"LOTTERYINVOICE_VAR_DIR": str(tmp_path)}
    probe = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    first = manage("shell", "-c", probe, env=env)
    assert first.returncode == 0, first.stderr
    assert "sqlite3" in first.stdout
    keys = (tmp_path / "keys.json").read_text()
    assert oct((tmp_path / "keys.json").stat().st_mode)[-3:] == "600"
    second = manage("shell", "-c", probe, env=env)
    assert second.returncode == 0
    assert (tmp_path / "keys.json").read_text() == keys
