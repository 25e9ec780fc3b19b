"""Carries the request id, client IP and user into the audit context of each request."""

from __future__ import annotations

import re
import uuid

from django.conf import settings

from .context import AuditContext, reset_context, set_context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or the address the configured number of trusted proxies saw."""
    hops = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if hops:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or None


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        user = getattr(request, "user", None)
        authenticated = bool(user is not None and user.is_authenticated)
        token = set_context(
            AuditContext(
                request_id=request_id,
                ip=client_ip(request),
                actor_id=user.pk if authenticated else None,
                actor_username=user.get_username() if authenticated else "",
            )
        )
        try:
            response = self.get_response(request)
        finally:
            reset_context(token)
        response["X-Request-ID"] = request_id
        return response
