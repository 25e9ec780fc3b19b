"""The registry's indexes are the ones its queries need, and no more (each one costs the
ten-million-row feed import; docs/benchmarks.md)."""

from __future__ import annotations

import pytest
from django.db import connection, models

from apps.common.indexes import EqualityIndex
from apps.invoices.feed import NUMBER_CONSTRAINT, REGISTRY
from apps.invoices.models import TaxInvoiceRecord


def test_an_equality_index_takes_one_plain_field():
    EqualityIndex(fields=["seller_uscc"], name="one_field")
    with pytest.raises(ValueError):
        EqualityIndex(fields=["seller_uscc", "number"], name="two_fields")
    with pytest.raises(ValueError):
        EqualityIndex(models.F("seller_uscc"), name="an_expression")


def test_the_number_is_the_primary_key():
    assert TaxInvoiceRecord._meta.pk.name == "number"
    assert not any(f.name == "id" for f in TaxInvoiceRecord._meta.fields)


@pytest.mark.postgres
@pytest.mark.django_db
def test_registry_indexes_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [REGISTRY]
        )
        indexes = dict(cursor.fetchall())
    # One unique index (the primary key, named so the importer recognises a number conflict),
    # no varchar_pattern_ops twin, the seller's credit code in a hash index, the red invoices'
    # blue numbers in a partial B-tree.
    assert set(indexes) == {
        NUMBER_CONSTRAINT,
        "taxrecord_seller_uscc_eq",
        "taxrecord_reverses_number",
    }
    assert "USING btree (number)" in indexes[NUMBER_CONSTRAINT]
    assert "USING hash (seller_uscc)" in indexes["taxrecord_seller_uscc_eq"]
    assert "pattern_ops" not in " ".join(indexes.values())


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_admin_search_by_seller_can_use_the_hash_index():
    queryset = TaxInvoiceRecord.objects.filter(seller_uscc="91410105MA00000000")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.explain()
    assert "taxrecord_seller_uscc_eq" in plan
