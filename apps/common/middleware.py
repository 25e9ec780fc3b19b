"""Response hardening that applies across the project."""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers


class NoStoreMiddleware:
    """API replies carry personal data: no browser or proxy may keep them (`no-store`).

    Admin views are already `never_cache`; this covers the REST API.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/api/") and "Cache-Control" not in response:
            add_never_cache_headers(response)
        return response
