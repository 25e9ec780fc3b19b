"""Key rotation: new writes use the new version, old rows decrypt, re-encryption resumes."""

from __future__ import annotations

import base64
import io
import os

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from apps.accounts.models import Consumer
from tests.factories.core import ConsumerFactory

pytestmark = pytest.mark.django_db


def raw_versions() -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT real_name, id_number, phone FROM accounts_consumer ORDER BY id")
        return [v.split("$")[0] for row in cur.fetchall() for v in row if v]


def rotate(**kwargs) -> str:
    out = io.StringIO()
    call_command("rotate_field_keys", stdout=out, **kwargs)
    return out.getvalue()


def test_rotation_to_sm4_is_resumable_and_idempotent():
    consumers = ConsumerFactory.create_batch(5)
    expected = {c.pk: (c.real_name, c.id_number, c.phone) for c in consumers}
    assert set(raw_versions()) == {"1"}
    sm4 = base64.b64encode(os.urandom(16)).decode()
    with override_settings(
        FIELD_ENCRYPTION_KEYS=f"{settings.FIELD_ENCRYPTION_KEYS};2:sm4-gcm:{sm4}"
    ):
        # A run stopped after the first batch of two rows…
        first = sorted(expected)[1]
        rotate(batch_size=2, start_after=first)  # …simulated by starting after row 2
        versions = raw_versions()
        assert versions.count("1") == 6 and versions.count("2") == 9
        # …is finished by running again: only stale rows are picked.
        assert "2 rows re-encrypted" in rotate(batch_size=2)
        assert set(raw_versions()) == {"2"}
        assert "0 rows re-encrypted" in rotate()
        for pk, values in expected.items():
            c = Consumer.objects.get(pk=pk)
            assert (c.real_name, c.id_number, c.phone) == values


def test_reindex_under_a_new_blind_key_keeps_lookups_and_uniqueness():
    consumer = ConsumerFactory()
    field = Consumer._meta.get_field("id_number_index")
    old_digest = Consumer.objects.get(pk=consumer.pk).id_number_index
    new_key = base64.b64encode(os.urandom(32)).decode()
    with override_settings(BLIND_INDEX_KEYS=f"{new_key},{settings.BLIND_INDEX_KEYS}"):
        # Mid-rotation, lookups try every key.
        assert Consumer.objects.filter(id_number_index__in=field.candidates(consumer.id_number))
        rotate(reindex=True)
        fresh = Consumer.objects.get(pk=consumer.pk)
        assert fresh.id_number_index != old_digest
        assert fresh.id_number_index == field.digest(consumer.id_number)
    with override_settings(BLIND_INDEX_KEYS=new_key):
        assert Consumer.objects.get(id_number_index__in=field.candidates(consumer.id_number))
