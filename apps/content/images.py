"""Uploaded article images: checked for real type and size, then re-encoded with Pillow.

The bytes a browser sent are never served. The type is read from the first bytes (not from the
name or the declared Content-Type); the image must open with Pillow within a pixel budget (no
decompression bombs); it is then decoded and written anew as PNG (images with transparency) or
JPEG, which drops metadata (EXIF with GPS positions, comments), embedded profiles and anything
appended after the image data (polyglot files).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from .exceptions import ContentError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4000
MAX_PIXELS = 16_000_000
SNIFF_BYTES = 16
JPEG_QUALITY = 85


def sniff_image_type(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class CleanImage:
    content: bytes
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str
    original_sha256: str


def _read_limited(upload, max_bytes: int) -> bytes:
    upload.seek(0)
    data = upload.read(max_bytes + 1)
    upload.seek(0)
    return data


def reencode_image(upload, *, max_bytes: int = MAX_UPLOAD_BYTES) -> CleanImage:
    """Check an uploaded file and return its re-encoded form. Raises `ContentError`."""
    data = _read_limited(upload, max_bytes)
    if len(data) > max_bytes:
        raise ContentError("image.too_large", detail={"max_bytes": max_bytes})
    if sniff_image_type(data[:SNIFF_BYTES]) is None:
        raise ContentError("image.type_not_allowed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in {"JPEG", "PNG", "WEBP"}:
                    raise ContentError("image.type_not_allowed")
                width, height = probe.size
                if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                    raise ContentError(
                        "image.dimensions", detail={"width": width, "height": height}
                    )
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                has_alpha = image.mode in {"RGBA", "LA", "PA"} or (
                    image.mode == "P" and "transparency" in image.info
                )
                out = io.BytesIO()
                if has_alpha:
                    image.convert("RGBA").save(out, format="PNG", optimize=True)
                    content_type, extension = "image/png", "png"
                else:
                    image.convert("RGB").save(
                        out, format="JPEG", quality=JPEG_QUALITY, optimize=True
                    )
                    content_type, extension = "image/jpeg", "jpg"
                size = image.size
    except ContentError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        raise ContentError("image.unreadable") from None
    content = out.getvalue()
    return CleanImage(
        content=content,
        content_type=content_type,
        extension=extension,
        width=size[0],
        height=size[1],
        sha256=hashlib.sha256(content).hexdigest(),
        original_sha256=hashlib.sha256(data).hexdigest(),
    )
