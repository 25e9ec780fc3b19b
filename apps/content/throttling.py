"""Rate limit of the public merchant lookup, per client address (API and page alike)."""

from __future__ import annotations

from django.conf import settings

from apps.common.throttling import IPRateThrottle

DEFAULT_RATE = "30/min"


class MerchantLookupThrottle(IPRateThrottle):
    """Searches per client address; `API_THROTTLE_RATES["merchant_lookup"]` overrides."""

    scope = "merchant_lookup"

    def get_rate(self):
        return getattr(settings, "API_THROTTLE_RATES", {}).get(self.scope, DEFAULT_RATE)
