"""Middleware that applies across the project: request ids, response hardening."""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers

from .logging import REQUEST_ID_HEADER, clean_request_id, request_id_var


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


class RequestIdMiddleware:
    """Gives every request an id, logs carry it, the response returns it (`X-Request-ID`).

    A well-formed incoming X-Request-ID (nginx's `$request_id`, or the caller's own) is kept so
    one id follows a request through proxy, web and Celery logs; otherwise a new one is made.
    Tasks queued while serving the request carry it in a header (lotteryinvoice.celery). First
    in MIDDLEWARE, so even the health probes and early refusals are tagged.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = clean_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
