"""Conditional GET for public content: ETag, Last-Modified and Cache-Control.

Public pages and API replies may be stored by browsers and proxies, but must be revalidated on
every use (`max-age=0, must-revalidate`): an archived article or a withdrawn winner story must
disappear at once, and a revalidation is a cheap 304.
"""

from __future__ import annotations

import hashlib

from django.utils.cache import patch_vary_headers
from django.utils.http import http_date, parse_http_date_safe, quote_etag

CACHE_CONTROL = "public, max-age=0, must-revalidate"


def etag_for(payload: bytes) -> str:
    return quote_etag(hashlib.sha256(payload).hexdigest()[:32])


def not_modified(request, *, etag: str, last_modified) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {t.strip() for t in if_none_match.split(",")}
        weak = {t[2:] if t.startswith("W/") else t for t in tags}
        return "*" in tags or etag in weak
    since = parse_http_date_safe(request.headers.get("If-Modified-Since") or "")
    if since is not None and last_modified is not None:
        return int(last_modified.timestamp()) <= since
    return False


def set_cache_headers(response, *, etag: str, last_modified) -> None:
    response["ETag"] = etag
    if last_modified is not None:
        response["Last-Modified"] = http_date(last_modified.timestamp())
    response["Cache-Control"] = CACHE_CONTROL
    patch_vary_headers(response, ("Accept-Language",))
