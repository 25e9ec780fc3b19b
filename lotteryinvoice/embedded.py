"""Secrets for the embedded default (no environment at all).

On a fresh machine `make run` must work without any configuration, so the first start generates
a secret key, the field-encryption key, the blind-index key and the audit-chain key into
`var/keys.json` (git-ignored) and every later start reads the same file. Creation is atomic, so
parallel first starts (pytest-xdist workers, `runserver`'s reloader) agree on one set of keys.

Production never reads this file: settings refuse to start without explicit keys there.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode("ascii")


def _new_keys() -> dict[str, str]:
    return {
        "secret_key": secrets.token_urlsafe(50),
        # version:algorithm:base64-key, the same format as FIELD_ENCRYPTION_KEYS.
        "field_encryption_keys": f"1:aes-256-gcm:{_b64(32)}",
        "blind_index_keys": _b64(32),
        "audit_hmac_key": _b64(32),
    }


def load_or_create_keys(var_dir: Path) -> dict[str, str]:
    """Return the embedded keys, creating `var/keys.json` once if it does not exist."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "keys.json"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=var_dir, prefix=".keys-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(_new_keys(), fh)
            os.chmod(tmp, 0o600)
            # link() fails if another process won the race; then we read theirs.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    with path.open() as fh:
        return json.load(fh)
