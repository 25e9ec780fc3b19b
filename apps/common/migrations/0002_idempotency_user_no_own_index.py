# Every submission claims its idempotency key with an INSERT: the user's own index is not
# needed beside the unique (user, key) index, which serves every look-up by user (the cascade
# when a user is deleted included). Only the index goes: Django's own AlterField would also
# drop and re-add the foreign-key constraint, re-checking every row under a lock.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_INDEX = "common_idempotencyrecord_user_id_2def651a"


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0001_idempotency"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="idempotencyrecord",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{OLD_INDEX}"',
                    reverse_sql=(
                        f'CREATE INDEX IF NOT EXISTS "{OLD_INDEX}" '
                        'ON "common_idempotencyrecord" ("user_id")'
                    ),
                ),
            ],
        ),
    ]
