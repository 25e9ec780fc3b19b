"""Field encryption and blind indexes for personal data (GB/T 39786-2021 minded).

Ciphertext format (ASCII, stored in a text column)::

    <key version>$<base64url(nonce || ciphertext || tag)>

- Each key version names its algorithm: AES-256-GCM (default) or SM4-GCM (the national cipher,
  selectable). Old versions stay configured so old rows decrypt; new writes use the active one.
- The associated data binds a ciphertext to its table, column and row key
  (`"<table>|<column>|<row key>"`), so a ciphertext copied to another row or column fails the
  GCM tag check instead of decrypting to somebody else's data.
- Blind indexes are HMAC-SHA256 over a purpose label and the normalised value, with their own
  keys, so an exact lookup or a uniqueness constraint never needs the plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.exceptions import ImproperlyConfigured

ALGORITHMS = {"aes-256-gcm": 32, "sm4-gcm": 16}
NONCE_BYTES = 12
TAG_BYTES = 16


class DecryptionError(Exception):
    """A ciphertext could not be decrypted: wrong row/column, tampered, or unknown key."""


@dataclass(frozen=True)
class FieldKey:
    version: int
    algorithm: str
    key: bytes = b""

    def __repr__(self) -> str:  # never print key material
        return f"FieldKey(version={self.version}, algorithm={self.algorithm!r})"

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        if self.algorithm == "aes-256-gcm":
            return AESGCM(self.key).encrypt(nonce, plaintext, aad)
        encryptor = Cipher(algorithms.SM4(self.key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        if self.algorithm == "aes-256-gcm":
            return AESGCM(self.key).decrypt(nonce, data, aad)
        body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        decryptor = Cipher(algorithms.SM4(self.key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(body) + decryptor.finalize()


@dataclass(frozen=True)
class KeyRing:
    keys: dict[int, FieldKey]
    active_version: int
    blind_keys: tuple[bytes, ...]

    @property
    def active(self) -> FieldKey:
        return self.keys[self.active_version]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured(f"{what} is not valid base64.") from exc


def parse_field_keys(spec: str) -> dict[int, FieldKey]:
    """Parse `"1:aes-256-gcm:<b64>;2:sm4-gcm:<b64>"` into key objects, checking key sizes."""
    keys: dict[int, FieldKey] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        try:
            version_text, algorithm, key_text = item.split(":", 2)
            version = int(version_text)
        except ValueError as exc:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEYS entries look like '<version>:<algorithm>:<base64 key>'."
            ) from exc
        if algorithm not in ALGORITHMS:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS: unknown algorithm {algorithm!r}; use {sorted(ALGORITHMS)}."
            )
        key = _b64decode(key_text, f"FIELD_ENCRYPTION_KEYS version {version}")
        if len(key) != ALGORITHMS[algorithm]:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS version {version}: {algorithm} needs a "
                f"{ALGORITHMS[algorithm]}-byte key, got {len(key)}."
            )
        if version < 1 or version in keys:
            raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS: bad or repeated version {version}.")
        keys[version] = FieldKey(version=version, algorithm=algorithm, key=key)
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds no key.")
    return keys


def build_keyring(field_keys: str, active_version: int | None, blind_keys: str) -> KeyRing:
    keys = parse_field_keys(field_keys)
    active = active_version or max(keys)
    if active not in keys:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_ACTIVE_VERSION {active} is not configured.")
    blind = tuple(
        _b64decode(part, "BLIND_INDEX_KEYS") for part in blind_keys.split(",") if part.strip()
    )
    if not blind or any(len(k) < 32 for k in blind):
        raise ImproperlyConfigured("BLIND_INDEX_KEYS needs at least one key of 32 bytes or more.")
    return KeyRing(keys=keys, active_version=active, blind_keys=blind)


@lru_cache(maxsize=1)
def _keyring_for(field_keys: str, active_version: int | None, blind_keys: str) -> KeyRing:
    return build_keyring(field_keys, active_version, blind_keys)


def keyring() -> KeyRing:
    """The key ring from settings (cached per configuration, so tests may override settings)."""
    from django.conf import settings

    return _keyring_for(
        settings.FIELD_ENCRYPTION_KEYS,
        settings.FIELD_ENCRYPTION_ACTIVE_VERSION,
        settings.BLIND_INDEX_KEYS,
    )


def associated_data(table: str, column: str, row_key: object) -> bytes:
    return f"{table}|{column}|{row_key}".encode()


def encrypt(plaintext: str, aad: bytes, *, ring: KeyRing | None = None) -> str:
    ring = ring or keyring()
    key = ring.active
    nonce = os.urandom(NONCE_BYTES)
    sealed = key.encrypt(nonce, plaintext.encode("utf-8"), aad)
    return f"{key.version}${base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"


def ciphertext_version(ciphertext: str) -> int | None:
    head, sep, _ = ciphertext.partition("$")
    return int(head) if sep and head.isdigit() else None


def decrypt(ciphertext: str, aad: bytes, *, ring: KeyRing | None = None) -> str:
    ring = ring or keyring()
    version = ciphertext_version(ciphertext)
    if version is None:
        raise DecryptionError("not a ciphertext")
    key = ring.keys.get(version)
    if key is None:
        raise DecryptionError(f"key version {version} is not configured")
    try:
        raw = base64.urlsafe_b64decode(ciphertext.partition("$")[2].encode("ascii"))
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("ciphertext too short")
        return key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad).decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise DecryptionError("ciphertext does not belong here or was altered") from exc


def blind_index(purpose: str, normalized_value: str, *, key: bytes | None = None) -> str:
    """HMAC-SHA256 hex digest of `purpose|value` under the (newest) blind-index key."""
    key = key if key is not None else keyring().blind_keys[0]
    message = f"{purpose}|{normalized_value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def blind_index_candidates(purpose: str, normalized_value: str) -> list[str]:
    """Digests under every configured blind-index key, newest first (for lookups mid-rotation)."""
    return [blind_index(purpose, normalized_value, key=k) for k in keyring().blind_keys]
