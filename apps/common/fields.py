"""Model fields for personal data: encrypted text and its blind index.

`EncryptedTextField` keeps only ciphertext in the column (see `apps.common.crypto`). The row key
used in the associated data is a field of the model that exists before the first INSERT and never
changes (a UUID such as `Consumer.public_id`), so the binding holds from the first write.
Values loaded from the database stay sealed until read, so listing rows costs no decryption.

`BlindIndexField` stores the HMAC of another field's normalised plaintext, for exact lookups and
unique constraints (one real identity = one consumer) without plaintext in the database.
"""

from __future__ import annotations

from django.core import checks
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from . import crypto
from .pii import normalize_for_index


class Sealed(str):
    """A ciphertext as loaded from the database, not yet decrypted."""

    __slots__ = ()


class EncryptedAttribute(DeferredAttribute):
    """Decrypts on first read and caches the plaintext on the instance."""

    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            value = self.field.decrypt_for(instance, value)
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    """Personal data encrypted at rest, bound to table, column and row (`row_key_field`)."""

    descriptor_class = EncryptedAttribute

    def __init__(self, *args, row_key_field: str = "public_id", **kwargs):
        self.row_key_field = row_key_field
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["row_key_field"] = self.row_key_field
        return name, path, args, kwargs

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        names = {f.name for f in self.model._meta.get_fields()}
        if self.row_key_field not in names:
            errors.append(
                checks.Error(
                    f"row_key_field {self.row_key_field!r} is not a field of this model.",
                    obj=self,
                    id="common.E001",
                )
            )
        return errors

    def associated_data(self, instance) -> bytes:
        row_key = getattr(instance, self.row_key_field)
        if row_key in (None, ""):
            raise crypto.DecryptionError(f"{self.row_key_field} must be set before encrypting")
        return crypto.associated_data(self.model._meta.db_table, self.column, row_key)

    def decrypt_for(self, instance, sealed: str) -> str:
        return crypto.decrypt(sealed, self.associated_data(instance))

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return Sealed(value)

    def pre_save(self, model_instance, add):
        value = model_instance.__dict__.get(self.attname)
        if value is None or value == "" or isinstance(value, Sealed):
            return value
        return crypto.encrypt(str(value), self.associated_data(model_instance))

    def get_lookup(self, lookup_name):
        # Comparing ciphertexts is meaningless: only null checks are allowed; exact lookups go
        # through the matching BlindIndexField.
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None


class BlindIndexField(models.CharField):
    """HMAC-SHA256 of `source`'s normalised plaintext under the blind-index key."""

    def __init__(self, *args, source: str, purpose: str, **kwargs):
        self.source = source
        self.purpose = purpose
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.update(source=self.source, purpose=self.purpose)
        for key, default in (("max_length", 64), ("editable", False), ("null", True)):
            if kwargs.get(key) == default:
                kwargs.pop(key)
        kwargs.pop("blank", None)
        return name, path, args, kwargs

    def digest(self, plaintext: str) -> str:
        return crypto.blind_index(self.purpose, normalize_for_index(self.purpose, plaintext))

    def candidates(self, plaintext: str) -> list[str]:
        """Digests under every configured key, for lookups while a key rotation runs."""
        normalized = normalize_for_index(self.purpose, plaintext)
        return crypto.blind_index_candidates(self.purpose, normalized)

    def pre_save(self, model_instance, add):
        source_field = model_instance._meta.get_field(self.source)
        raw = model_instance.__dict__.get(source_field.attname)
        if isinstance(raw, Sealed):
            # Plaintext untouched since loading: the stored digest is still right.
            return getattr(model_instance, self.attname)
        value = None if raw in (None, "") else self.digest(str(raw))
        setattr(model_instance, self.attname, value)
        return value
