"""What an uploaded file really is, read from its first bytes (never from its name or the
browser's Content-Type, both chosen by the sender)."""

from __future__ import annotations

import hashlib

# type → (file name extension, test on the first bytes)
ALLOWED_TYPES: dict[str, str] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/pdf": ".pdf",
}
SNIFF_BYTES = 16


def sniff_content_type(head: bytes) -> str | None:
    """The allowed type whose signature `head` starts with, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def read_checked(upload, *, max_bytes: int) -> tuple[str, int, str]:
    """Sniff and measure an uploaded file without trusting its declared size.

    Returns (content type or "" when not allowed, size — stopping once past `max_bytes` —,
    sha256 hex). The file is left at position 0.
    """
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    digest = hashlib.sha256(head)
    size = len(head)
    while size <= max_bytes:
        chunk = upload.read(64 * 1024)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    upload.seek(0)
    return sniff_content_type(head) or "", size, digest.hexdigest()


def safe_file_name(name: str) -> str:
    """The uploaded name as shown to people: no path, no control characters, at most 200."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    return cleaned.strip()[:200] or "file"
