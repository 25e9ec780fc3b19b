"""The phone's 100-number block as a keyed blind index (risk control's phone-pattern link),
filled for the consumers that already have a phone."""

from django.db import migrations

import apps.accounts.models


def fill_phone_blocks(apps, schema_editor):
    from apps.accounts.models import phone_block
    from apps.common import crypto

    Consumer = apps.get_model("accounts", "Consumer")
    rows = Consumer.objects.filter(phone_index__isnull=False).only("pk", "public_id", "phone")
    batch = []
    for consumer in rows.iterator(chunk_size=2000):
        phone = consumer.phone  # decrypted (bound to the row's public_id)
        if not phone:
            continue
        consumer.phone_block_index = crypto.blind_index("phone_block", phone_block(phone))
        batch.append(consumer)
        if len(batch) >= 2000:
            Consumer.objects.bulk_update(batch, ["phone_block_index"])
            batch = []
    Consumer.objects.bulk_update(batch, ["phone_block_index"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_merchantapikey"),
    ]

    operations = [
        migrations.AddField(
            model_name="consumer",
            name="phone_block_index",
            field=apps.accounts.models.PhoneBlockIndexField(
                db_index=True, purpose="phone_block", source="phone"
            ),
        ),
        migrations.RunPython(fill_phone_blocks, migrations.RunPython.noop, elidable=True),
    ]
