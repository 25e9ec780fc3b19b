"""The phone-pattern blind index: the keyed hash of the number's 100-number block, filled on
save and by the data migration, and the generator's realistic phones and payout accounts."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as registry

from apps.accounts.models import Consumer, phone_block
from apps.common import crypto
from tests.factories.core import ConsumerFactory

pytestmark = pytest.mark.django_db


def test_numbers_of_one_block_share_the_index_and_others_do_not():
    a = ConsumerFactory(phone="13912345601")
    b = ConsumerFactory(phone="139 1234 5699")  # spelled with spaces: normalised first
    c = ConsumerFactory(phone="13912345701")
    assert a.phone_block_index and a.phone_block_index == b.phone_block_index
    assert c.phone_block_index != a.phone_block_index
    # Keyed, and not the whole number's index nor a plain hash of the prefix.
    assert a.phone_block_index != a.phone_index
    assert a.phone_block_index == crypto.blind_index("phone_block", "139123456")
    assert phone_block("+86 139-1234-5601") == "139123456"


def test_a_consumer_without_phone_has_no_block_and_a_changed_phone_moves_it():
    consumer = ConsumerFactory(phone="")
    assert consumer.phone_block_index is None
    consumer.phone = "13712340001"
    consumer.save()
    consumer.refresh_from_db()
    assert consumer.phone_block_index == crypto.blind_index("phone_block", "137123400")
    consumer.save()  # untouched (sealed) phone keeps its stored index
    consumer.refresh_from_db()
    assert consumer.phone_block_index == crypto.blind_index("phone_block", "137123400")


def test_the_data_migration_fills_existing_consumers():
    filled = ConsumerFactory(phone="13612345678")
    no_phone = ConsumerFactory(phone="")
    Consumer.objects.update(phone_block_index=None)
    migration = importlib.import_module("apps.accounts.migrations.0005_consumer_phone_block_index")
    migration.fill_phone_blocks(registry, None)
    filled.refresh_from_db()
    no_phone.refresh_from_db()
    assert filled.phone_block_index == crypto.blind_index("phone_block", "136123456")
    assert no_phone.phone_block_index is None


def test_generated_phones_and_cards_look_real():
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from apps.risk.evaluation.generator import _Gen, _luhn_digit

    # A fixed moment: with the seed, the generated population is the same on every run.
    gen = _Gen(4000, 3, 30, datetime(2026, 11, 2, 12, tzinfo=UTC), Decimal("100.00"))
    gen.population()
    gen.scenarios(gen.end - timedelta(days=1))
    phones = list(gen.phones.values())
    assert len(set(phones)) == len(phones) == gen.next_consumer
    assert all(len(p) == 11 and p[0] == "1" and p.isdigit() for p in phones)
    numbers = [number for _c, number, _bank in gen.accounts]
    assert all(n.isdigit() and 16 <= len(n) <= 19 for n in numbers)
    assert all(_luhn_digit(n[:-1]) == n[-1] for n in numbers)
    assert _luhn_digit("453201511283036") == "6"  # a published test card number
    # Farms (and claim-and-return operations) that share an account share the card number;
    # ordinary consumers do not.
    farms = [i for i in gen.instances if i.scenario in ("identity_farm", "claim_reverse")]
    owners: dict[str, set[int]] = {}
    for c, number, _bank in gen.accounts:
        owners.setdefault(number, set()).add(c)
    shared = [o for o in owners.values() if len(o) > 1]
    assert shared and all(any(o <= f.consumers for f in farms) for o in shared)


@pytest.mark.postgres
def test_generated_rows_are_stored_like_real_ones():
    """Phones and card numbers written by the generator's COPY decrypt through the models and
    carry the same blind indexes the models compute."""
    from apps.prizes.models import PayoutAccount
    from apps.risk.evaluation import generator

    generator.generate(invoices=3000, seed=5, log=lambda *_: None)
    consumer = Consumer.objects.filter(user__username__startswith=generator.USER_PREFIX).first()
    field = Consumer._meta.get_field("phone_index")
    assert len(consumer.phone) == 11
    assert consumer.phone_index == field.digest(consumer.phone)
    assert consumer.phone_block_index == crypto.blind_index("phone_block", consumer.phone[:9])
    account = PayoutAccount.objects.filter(consumer__user__username__startswith="riskeval-")[0]
    number = account.account_no
    assert number.isdigit() and number.endswith(account.account_last4)
    assert account.account_no_index == PayoutAccount._meta.get_field("account_no_index").digest(
        number
    )
    assert account.bank_name and account.status == "verified"
