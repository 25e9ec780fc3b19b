"""API rate limits per consumer and per client IP (429 with our error shape, never a 5xx).

Rates come from settings `API_THROTTLE_RATES` so operators can change them; counters live in
the shared cache (Redis in production), so every process counts together.

On Redis each throttle is one atomic script call on a sorted set of the key's request times
(a sliding window log, the same rule as DRF's `SimpleRateThrottle`: at most N requests in any
window of the rate's duration, a refused request is not counted). DRF's own implementation
reads and writes the whole history as one pickled list per request: two round trips, a lost
update when two requests of one key run at once, and, for a busy key (many consumers behind
one address), tens of kilobytes moved and unpickled on every request. Other cache backends
(local memory in development) use DRF's implementation.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.cache import cache, caches
from rest_framework.throttling import SimpleRateThrottle

# KEYS[1] the key; ARGV: now (seconds), window (seconds), limit, a unique member.
# Returns {1, count} when allowed (and recorded), {0, oldest time in the window} when refused.
_SLIDING_LOG = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, oldest[2] or ARGV[1]}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, math.ceil(window * 1000))
return {1, tostring(count + 1)}
"""


def _redis_script():
    """The script on the default cache's Redis client, or None off Redis. (Registering only
    hashes the text: Redis keeps the script itself after its first run, by that hash.)"""
    if not type(caches["default"]).__module__.startswith("django_redis"):
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default").register_script(_SLIDING_LOG)


class SlidingWindowThrottle(SimpleRateThrottle):
    """DRF's rate rule in one atomic Redis call (see the module's docstring)."""

    def allow_request(self, request, view):
        script = _redis_script()
        if script is None:
            return super().allow_request(request, view)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        allowed, value = script(
            keys=[cache.make_key(f"sw:{self.key}")],
            args=[repr(self.now), self.duration, self.num_requests, uuid.uuid4().hex],
        )
        if int(allowed):
            return True
        self._oldest = float(value)
        return self.throttle_failure()

    def wait(self):
        oldest = getattr(self, "_oldest", None)
        if oldest is None:
            return super().wait()
        # As DRF: the time until the oldest request leaves the window (with one slot free).
        return max(0.0, self.duration - (self.now - oldest))


DEFAULT_RATES = {
    "consumer": "120/min",
    "ip": "300/min",
    "invoice_submit": "20/min",
    # Each identity check costs money and could be used to test ID numbers: few a day.
    "identity_verify": "5/day",
    # A merchant's till system: per API key, generous but bounded.
    "merchant_key": "600/min",
}


class _ConfiguredRateThrottle(SlidingWindowThrottle):
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
