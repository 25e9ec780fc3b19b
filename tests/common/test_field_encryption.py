"""Personal data at rest: ciphertext only, bound to its row and column, unique by blind index."""

from __future__ import annotations

import base64
import os
import threading

import pytest
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.test import override_settings

from apps.accounts.models import Consumer
from apps.common import crypto
from apps.common.crypto import DecryptionError
from tests.factories.core import ConsumerFactory, UserFactory, make_resident_id

pytestmark = pytest.mark.django_db

NAME, ID_NUMBER, PHONE = "张某三", make_resident_id(4242), "13812345678"


def raw_row(consumer: Consumer) -> dict:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT real_name, id_number, phone, real_name_index, id_number_index, phone_index "
            "FROM accounts_consumer WHERE id = %s",
            [consumer.pk],
        )
        cols = [c[0] for c in cur.description]
        return dict(zip(cols, cur.fetchone(), strict=True))


def test_raw_row_holds_no_plaintext():
    consumer = ConsumerFactory(real_name=NAME, id_number=ID_NUMBER, phone=PHONE)
    row = raw_row(consumer)
    dump = repr(row)
    for secret in (NAME, ID_NUMBER, PHONE, ID_NUMBER[-4:] + "'", PHONE[3:]):
        assert secret not in dump
    assert row["real_name"].startswith("1$")
    # Reading through the ORM decrypts.
    fresh = Consumer.objects.get(pk=consumer.pk)
    assert (fresh.real_name, fresh.id_number, fresh.phone) == (NAME, ID_NUMBER, PHONE)


def test_same_value_encrypts_differently_each_time():
    a = ConsumerFactory(real_name=NAME)
    b = ConsumerFactory(real_name=NAME)
    assert raw_row(a)["real_name"] != raw_row(b)["real_name"]
    assert raw_row(a)["real_name_index"] == raw_row(b)["real_name_index"]


def test_ciphertext_moved_to_another_row_fails_to_decrypt():
    victim = ConsumerFactory(id_number=ID_NUMBER)
    attacker = ConsumerFactory()
    stolen = raw_row(victim)["id_number"]
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE accounts_consumer SET id_number = %s WHERE id = %s", [stolen, attacker.pk]
        )
    with pytest.raises(DecryptionError):
        _ = Consumer.objects.get(pk=attacker.pk).id_number
    # The victim's own row still decrypts.
    assert Consumer.objects.get(pk=victim.pk).id_number == ID_NUMBER


def test_ciphertext_moved_to_another_column_fails_to_decrypt():
    consumer = ConsumerFactory(id_number=ID_NUMBER)
    with connection.cursor() as cur:
        cur.execute("UPDATE accounts_consumer SET phone = id_number WHERE id = %s", [consumer.pk])
    with pytest.raises(DecryptionError):
        _ = Consumer.objects.get(pk=consumer.pk).phone


def test_tampered_ciphertext_fails():
    consumer = ConsumerFactory(phone=PHONE)
    sealed = raw_row(consumer)["phone"]
    version, _, body = sealed.partition("$")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1
    forged = f"{version}${base64.urlsafe_b64encode(bytes(raw)).decode()}"
    Consumer.objects.filter(pk=consumer.pk).update(phone=forged)
    with pytest.raises(DecryptionError):
        _ = Consumer.objects.get(pk=consumer.pk).phone


def test_blind_index_lookup_normalises_spelling():
    consumer = ConsumerFactory(id_number=ID_NUMBER)
    field = Consumer._meta.get_field("id_number_index")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in ID_NUMBER)
    assert Consumer.objects.get(id_number_index__in=field.candidates(f" {fullwidth} ")) == consumer


def test_encrypted_field_refuses_content_lookups():
    from django.core.exceptions import FieldError

    with pytest.raises(FieldError):
        list(Consumer.objects.filter(id_number=ID_NUMBER))


def test_same_identity_cannot_register_twice():
    ConsumerFactory(id_number=ID_NUMBER)
    lower = ID_NUMBER[:-1] + ID_NUMBER[-1].lower()
    with pytest.raises(IntegrityError), transaction.atomic():
        ConsumerFactory(id_number=lower)


def test_same_phone_cannot_register_twice():
    ConsumerFactory(phone=PHONE)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConsumerFactory(phone=PHONE[:3] + " " + PHONE[3:])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_one_identity_yield_one_consumer():
    threads_n = 12
    barrier = threading.Barrier(threads_n)
    outcomes: list[str] = []
    users = [UserFactory() for _ in range(threads_n)]

    def register(user):
        try:
            barrier.wait()
            with transaction.atomic():
                Consumer.objects.create(user=user, real_name=NAME, id_number=ID_NUMBER)
            outcomes.append("created")
        except IntegrityError:
            outcomes.append("conflict")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=register, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("created") == 1
    assert outcomes.count("conflict") == threads_n - 1
    assert Consumer.objects.count() == 1


def test_sm4_key_version_round_trips_and_old_rows_still_decrypt():
    old = ConsumerFactory(id_number=ID_NUMBER)
    sm4_key = base64.b64encode(os.urandom(16)).decode()
    from django.conf import settings

    keys = f"{settings.FIELD_ENCRYPTION_KEYS};2:sm4-gcm:{sm4_key}"
    with override_settings(FIELD_ENCRYPTION_KEYS=keys):
        new = ConsumerFactory(phone=PHONE)
        assert raw_row(new)["phone"].startswith("2$")
        assert crypto.keyring().active.algorithm == "sm4-gcm"
        assert Consumer.objects.get(pk=new.pk).phone == PHONE
        assert Consumer.objects.get(pk=old.pk).id_number == ID_NUMBER
