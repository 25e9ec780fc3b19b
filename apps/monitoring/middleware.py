"""The request-path part of monitoring: refuses blocked sources and suspended merchant keys,
and feeds the counting rules (403s, 404s, sign-in code requests, merchant API use).

Costs one cache read per request (the state), plus one or two cache operations on the rare
requests that are counted. Every failure of the cache is swallowed: monitoring never takes a
request down. Placed right after `AuditContextMiddleware`, so it sees the client address and the
final response of everything below.
"""

from __future__ import annotations

import json
import logging
import time

from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from apps.audit.middleware import client_ip

from . import counters, state

logger = logging.getLogger(__name__)

SMS_CODE_REQUEST_PATHS = frozenset({"/_allauth/app/v1/auth/code/request"})
MERCHANT_AUTH_PREFIX = "MerchantKey "
JSON_PREFIXES = ("/api/", "/_allauth/")


def _key_id_of(request) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith(MERCHANT_AUTH_PREFIX):
        return ""
    return header[len(MERCHANT_AUTH_PREFIX) :].split(":", 1)[0].strip()


def _refuse(request, code: str, message: str, status: int):
    if request.path_info.startswith(JSON_PREFIXES):
        return JsonResponse({"code": code, "message": message, "detail": {}}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class MonitoringMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ip = client_ip(request)
        try:
            current = state.current()
        except Exception:
            logger.exception("monitoring state unavailable")
            current = None
        if current is not None:
            until = current["blocked_ips"].get(ip) if ip else None
            if until is not None and until > time.time():
                return _refuse(
                    request,
                    "monitoring.source_blocked",
                    _("Too many suspicious requests from your address. Try again later."),
                    429,
                )
            key_id = _key_id_of(request)
            if key_id and key_id in current["suspended_keys"]:
                return _refuse(
                    request,
                    "merchant_auth.key_suspended",
                    _("This API key has been suspended by the security administrator."),
                    401,
                )
        response = self.get_response(request)
        if current is not None:
            try:
                self.observe(request, response, ip)
            except Exception:
                logger.exception("monitoring counters failed")
        return response

    def observe(self, request, response, ip):
        status = response.status_code
        user = getattr(request, "user", None)
        if status in (403, 404):
            authenticated = bool(user is not None and user.is_authenticated)
            if status == 403 and authenticated and getattr(user, "pk", None) is not None:
                counters.permission_denied(user=user, ip=ip, path=request.path_info)
            counters.not_found_or_refused(
                ip=ip,
                path=request.path_info,
                status=status,
                actor=user.get_username() if authenticated else "",
            )
        if request.method == "POST" and request.path_info in SMS_CODE_REQUEST_PATHS:
            try:
                phone = str(json.loads(request.body or b"{}").get("phone") or "")
            except Exception:
                phone = ""
            counters.sms_code_request(ip=ip, phone=phone)
        api_key = getattr(user, "api_key", None)
        if api_key is not None and getattr(user, "pk", 0) is None:
            counters.merchant_key_used(key_id=api_key.key_id, ip=ip)
