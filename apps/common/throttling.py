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
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

# KEYS: the throttles' keys, then keys only to read; ARGV: now (seconds), a unique member, the
# number of throttle keys, then window (seconds) and limit of each throttle key in turn. Each
# key is decided on its own, as DRF checks throttles one after another: {1, count} when allowed
# (and recorded), {0, oldest time in the window} when refused, one pair per key; then the value
# of each key to read (false for none), so that a request's other small reads need no round
# trip of their own (`OneRoundTripThrottlesMixin.read_with_throttles`).
_SLIDING_LOG = """
local now = tonumber(ARGV[1])
local throttled = tonumber(ARGV[3])
local out = {}
for i = 1, throttled do
  local key = KEYS[i]
  local window = tonumber(ARGV[2 + 2 * i])
  local limit = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    out[#out + 1] = 0
    out[#out + 1] = oldest[2] or ARGV[1]
  else
    redis.call('ZADD', key, now, ARGV[2])
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    out[#out + 1] = 1
    out[#out + 1] = tostring(count + 1)
  end
end
for i = throttled + 1, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i])
end
return out
"""


def _redis_script():
    """The script on the default cache's Redis client, or None off Redis: registered once per
    client (registering hashes the text; Redis keeps the script itself after its first run,
    by that hash)."""
    if not type(caches["default"]).__module__.startswith("django_redis"):
        return None
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    script = getattr(client, "_sliding_log_script", None)
    if script is None:
        script = client._sliding_log_script = client.register_script(_SLIDING_LOG)
    return script


class SlidingWindowThrottle(SimpleRateThrottle):
    """DRF's rate rule in one atomic Redis call (see the module's docstring)."""

    def allow_request(self, request, view):
        script = _redis_script()
        if script is None:
            return super().allow_request(request, view)
        return allow_together([self], request, view, script)[0]

    def window_key(self, request, view) -> str | None:
        """This request's key, or None when the throttle does not apply to it."""
        if self.rate is None:
            return None
        return self.get_cache_key(request, view)

    def wait(self):
        oldest = getattr(self, "_oldest", None)
        if oldest is None:
            return super().wait()
        # As DRF: the time until the oldest request leaves the window (with one slot free).
        return max(0.0, self.duration - (self.now - oldest))


def allow_together(throttles, request, view, script, reads=None) -> list[bool]:
    """`allow_request` of several sliding-window throttles in ONE Redis round trip (each key
    decided on its own, exactly as separate calls would). `reads`: (cache keys, callback): the
    keys' values are read in the same round trip and given to the callback as {key: value or
    None}, decoded as the cache decodes them."""
    now = throttles[0].timer()
    default = caches["default"]  # once: every attribute read on `cache` looks it up again
    results = [True] * len(throttles)
    keys, args, asked = [], [repr(now), uuid.uuid4().hex, 0], []
    for index, throttle in enumerate(throttles):
        throttle.key = throttle.window_key(request, view)
        if throttle.key is None:
            continue
        throttle.now = now
        keys.append(default.make_key(f"sw:{throttle.key}"))
        args += [throttle.duration, throttle.num_requests]
        asked.append(index)
    read_keys, taken = reads if reads else ((), None)
    if not keys and not read_keys:
        return results
    args[2] = len(keys)
    answer = script(keys=keys + [default.make_key(key) for key in read_keys], args=args)
    if taken is not None:
        values = answer[2 * len(keys) :]
        decode = default.client.decode
        taken(
            {
                key: None if value is None else decode(value)
                for key, value in zip(read_keys, values, strict=True)
            }
        )
    for position, index in enumerate(asked):
        allowed, value = answer[2 * position], answer[2 * position + 1]
        if not int(allowed):
            throttles[index]._oldest = float(value)
            results[index] = throttles[index].throttle_failure()
    return results


class OneRoundTripThrottlesMixin:
    """A DRF view whose sliding-window throttles are checked in one Redis round trip (the
    submission endpoint has three: per address, per consumer, per consumer's submissions).
    The answer is DRF's `check_throttles`: 429 with the longest wait if any refuses."""

    def read_with_throttles(self, request):
        """(cache keys, callback) to read in the throttles' round trip, or None (see
        `allow_together`)."""
        return None

    def check_throttles(self, request):
        throttles = self.get_throttles()
        script = _redis_script()
        windows = [t for t in throttles if isinstance(t, SlidingWindowThrottle)]
        if script is None or len(windows) < 2:
            return super().check_throttles(request)
        durations = []
        reads = self.read_with_throttles(request)
        for throttle, allowed in zip(
            windows, allow_together(windows, request, self, script, reads), strict=True
        ):
            if not allowed:
                durations.append(throttle.wait())
        for throttle in throttles:
            if not isinstance(throttle, SlidingWindowThrottle) and not throttle.allow_request(
                request, self
            ):
                durations.append(throttle.wait())
        if durations:
            durations = [d for d in durations if d is not None]
            self.throttled(request, max(durations, default=None))


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

    def window_key(self, request, view) -> str | None:
        return super().window_key(request, view) if request.method == "POST" else None


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
