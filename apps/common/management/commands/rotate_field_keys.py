"""Re-encrypt personal data under the active key version, and optionally re-index blind indexes.

Run after adding a new key version (and making it active) to FIELD_ENCRYPTION_KEYS, or after
putting a new key first in BLIND_INDEX_KEYS (with --reindex). Works in batches, each in its own
transaction with row locks, so it can be stopped and run again: re-encryption only picks rows
not yet under the active version, and re-indexing is idempotent and resumes with --start-after.
Old keys can be removed from the configuration once a run reports nothing left to do.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import models, transaction
from django.db.models.functions import Substr

from apps.common import crypto
from apps.common.fields import BlindIndexField, EncryptedTextField


def encrypted_models():
    for model in apps.get_models():
        enc = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if enc:
            idx = [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)]
            yield model, enc, idx


class Command(BaseCommand):
    help = "Re-encrypt personal data under the active key; --reindex recomputes blind indexes."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument(
            "--reindex",
            action="store_true",
            help="Also recompute every blind index under the newest BLIND_INDEX_KEYS key.",
        )
        parser.add_argument(
            "--start-after", type=int, default=0, help="Resume after this primary key."
        )

    def handle(self, *args, batch_size, reindex, start_after, **options):
        active = crypto.keyring().active_version
        prefix = f"{active}$"
        total = 0
        for model, enc_fields, idx_fields in encrypted_models():
            label = model._meta.label
            queryset = model._default_manager.order_by("pk")
            if not reindex:
                stale = models.Q()
                for field in enc_fields:
                    alias = f"_keyver_{field.attname}"
                    queryset = queryset.annotate(
                        **{
                            alias: Substr(
                                field.attname, 1, len(prefix), output_field=models.CharField()
                            )
                        }
                    )
                    stale |= ~models.Q(**{alias: prefix}) & ~models.Q(**{alias: ""})
                queryset = queryset.filter(stale)
            update_fields = [f.attname for f in enc_fields + idx_fields]
            last_pk = start_after
            done = 0
            while True:
                with transaction.atomic():
                    rows = list(
                        queryset.filter(pk__gt=last_pk).select_for_update(of=("self",))[:batch_size]
                    )
                    if not rows:
                        break
                    for row in rows:
                        for field in enc_fields:
                            getattr(row, field.attname)  # decrypt: the save re-encrypts
                        row.save(update_fields=update_fields)
                    last_pk = rows[-1].pk
                    done += len(rows)
                self.stdout.write(f"{label}: {done} rows done, last pk {last_pk}")
            self.stdout.write(f"{label}: {done} rows re-encrypted under key version {active}")
            total += done
        self.stdout.write(self.style.SUCCESS(f"done: {total} rows"))
