# Every index of the invoice table is written by every submission: drop those no query needs.
# - the foreign keys' own indexes: each key leads a composite index that serves its look-ups
#   (invoice_consumer_time, invoice_merchant_time, invoice_campaign_entry);
# - the creation time's: nothing searches or sorts invoices by it (`submitted_at` is indexed);
# - the pattern-operator copy of the seller's credit-code index (PostgreSQL): it serves LIKE
#   searches, and none are made (the admin and the risk rules match the code exactly, by the
#   plain index, which stays).
# Only the indexes go: Django's own AlterField would also drop and re-add the foreign-key
# constraints, re-checking ten million rows under a lock.

import django.db.models.deletion
from django.db import migrations, models

DROPPED = [
    ("invoices_invoice_campaign_id_b2a98219", "campaign_id"),
    ("invoices_invoice_consumer_id_1668f6e0", "consumer_id"),
    ("invoices_invoice_created_at_0664c4b6", "created_at"),
    ("invoices_invoice_merchant_id_7f860705", "merchant_id"),
]
LIKE_INDEX = "invoices_invoice_seller_uscc_ae703d39_like"


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{LIKE_INDEX}"')


def restore_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{LIKE_INDEX}" '
            'ON "invoices_invoice" ("seller_uscc" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_consumer_phone_block_index"),
        ("invoices", "0007_taxrecord_number_pk"),
        ("merchants", "0002_name_grams_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="invoice",
                    name="campaign",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to="invoices.campaign",
                        verbose_name="campaign",
                    ),
                ),
                migrations.AlterField(
                    model_name="invoice",
                    name="consumer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to="accounts.consumer",
                        verbose_name="consumer",
                    ),
                ),
                migrations.AlterField(
                    model_name="invoice",
                    name="created_at",
                    field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
                ),
                migrations.AlterField(
                    model_name="invoice",
                    name="merchant",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to="merchants.merchant",
                        verbose_name="merchant",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "invoices_invoice" ("{column}")',
                )
                for name, column in DROPPED
            ],
        ),
        migrations.RunPython(drop_like_index, restore_like_index),
    ]
