"""Runbook drill "key compromise": the field-encryption key and the blind-index key are
presumed stolen. Following the runbook step by step, as separate processes with only the
environment changing between them (the way a restart picks up new keys):

1. add a new key version next to the old one (and a new blind-index key first in line);
2. `manage.py rotate_field_keys --reindex` re-encrypts and re-indexes everything;
3. drop the old keys; the application reads every record, finds people by their indexed
   numbers, and nothing in the database is left under the stolen key.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.factories.core import ConsumerFactory

ROOT = Path(__file__).resolve().parents[2]

READ_BACK = """
from apps.accounts.models import Consumer
from apps.audit.services import audit_verify
field = Consumer._meta.get_field("id_number_index")
for c in Consumer.objects.order_by("pk"):
    found = Consumer.objects.get(id_number_index__in=field.candidates(c.id_number))
    assert found.pk == c.pk
    print("ROW", c.pk, c.real_name, c.id_number, c.phone)
print("AUDIT", audit_verify().ok)
"""


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    db = connection.settings_dict
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    base["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    base["AUDIT_HMAC_KEY"] = settings.AUDIT_HMAC_KEY
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _raw_versions() -> set[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT real_name, id_number, phone FROM accounts_consumer")
        return {value.split("$")[0] for row in cur.fetchall() for value in row if value}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rotating_away_from_a_stolen_key_keeps_every_record_readable():
    consumers = ConsumerFactory.create_batch(7)
    expected = {(c.pk, c.real_name, c.id_number, c.phone) for c in consumers}
    stolen_field_keys = settings.FIELD_ENCRYPTION_KEYS
    stolen_index_keys = settings.BLIND_INDEX_KEYS
    assert ";" not in stolen_field_keys and _raw_versions() == {"1"}

    new_field_key = "2:aes-256-gcm:" + base64.b64encode(os.urandom(32)).decode()
    new_index_key = base64.b64encode(os.urandom(32)).decode()
    # Steps 1-2: both keys configured, the new one active; re-encrypt and re-index.
    rotation = _manage(
        "rotate_field_keys",
        "--reindex",
        "--batch-size",
        "3",
        env={
            "FIELD_ENCRYPTION_KEYS": f"{stolen_field_keys};{new_field_key}",
            "BLIND_INDEX_KEYS": f"{new_index_key},{stolen_index_keys}",
        },
    )
    assert "re-encrypted" in rotation.stdout
    assert _raw_versions() == {"2"}, "nothing may stay under the stolen key"

    # Step 3: the stolen keys are gone from the environment.
    after = _manage(
        "shell",
        "-c",
        READ_BACK,
        env={"FIELD_ENCRYPTION_KEYS": new_field_key, "BLIND_INDEX_KEYS": new_index_key},
    )
    rows = {
        (int(pk), name, id_number, phone)
        for _, pk, name, id_number, phone in (
            line.split(" ") for line in after.stdout.splitlines() if line.startswith("ROW ")
        )
    }
    assert rows == expected
    assert "AUDIT True" in after.stdout
