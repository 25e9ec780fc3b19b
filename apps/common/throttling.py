"""API rate limits per consumer and per client IP (429 with our error shape, never a 5xx).

Rates come from settings `API_THROTTLE_RATES` so operators can change them; counters live in
the shared cache (Redis in production), so every process counts together.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

DEFAULT_RATES = {
    "consumer": "120/min",
    "ip": "300/min",
    "invoice_submit": "20/min",
    # Each identity check costs money and could be used to test ID numbers: few a day.
    "identity_verify": "5/day",
    # A merchant's till system: per API key, generous but bounded.
    "merchant_key": "600/min",
}


class _ConfiguredRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        rates = {**DEFAULT_RATES, **getattr(settings, "API_THROTTLE_RATES", {})}
        return rates[self.scope]


class ConsumerRateThrottle(_ConfiguredRateThrottle):
    """Every authenticated user, by user id."""

    scope = "consumer"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class IPRateThrottle(_ConfiguredRateThrottle):
    """Every client, by IP address (also before authentication)."""

    scope = "ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class InvoiceSubmitThrottle(ConsumerRateThrottle):
    """Submissions only: a consumer's bursts are capped well below the read limits."""

    scope = "invoice_submit"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class IdentityVerifyThrottle(ConsumerRateThrottle):
    scope = "identity_verify"


class MerchantKeyRateThrottle(_ConfiguredRateThrottle):
    """Merchant API calls, by API key (a merchant principal has no user id)."""

    scope = "merchant_key"

    def get_cache_key(self, request, view):
        api_key = getattr(request.user, "api_key", None)
        if api_key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.key_id}
