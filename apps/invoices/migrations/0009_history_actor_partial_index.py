# Every submission writes two status-history rows without an actor (only staff decisions have
# one): the actor's index keeps out those NULLs, so submissions no longer write it; look-ups of
# a staff member's rows (and the foreign key's check when a user is deleted: `actor_id = …`
# implies NOT NULL) use the partial index.
# Only the indexes change: Django's own AlterField would also drop and re-add the foreign-key
# constraint, re-checking every history row under a lock; on PostgreSQL the new index is built
# CONCURRENTLY (submissions go on meanwhile), hence a non-atomic migration.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_INDEX = "invoices_invoicestatuschange_actor_id_873f44c1"
NEW_INDEX = "invoicestatus_actor"
TABLE = "invoices_invoicestatuschange"


def create_partial_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{NEW_INDEX}" ON "{TABLE}" ("actor_id") '
        'WHERE "actor_id" IS NOT NULL'
    )


def drop_partial_index(apps, schema_editor):
    schema_editor.execute(f'DROP INDEX IF EXISTS "{NEW_INDEX}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("invoices", "0008_invoice_fewer_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="invoicestatuschange",
                    name="actor",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="actor",
                    ),
                ),
                migrations.AddIndex(
                    model_name="invoicestatuschange",
                    index=models.Index(
                        condition=models.Q(("actor__isnull", False)),
                        fields=["actor"],
                        name=NEW_INDEX,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(create_partial_index, drop_partial_index),
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{OLD_INDEX}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{OLD_INDEX}" ON "{TABLE}" ("actor_id")',
                ),
            ],
        ),
    ]
