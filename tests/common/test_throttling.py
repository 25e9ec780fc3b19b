"""Rate limits on Redis: DRF's sliding-window rule in one atomic call per throttle."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from apps.common import throttling
from apps.common.throttling import ConsumerRateThrottle, SlidingWindowThrottle
from apps.invoices import caching


class _Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Request:
    def __init__(self, user_id: int):
        self.user = type("U", (), {"pk": user_id, "is_authenticated": True})()
        self.META = {"REMOTE_ADDR": "10.1.2.3"}


def _throttle(rate: str, clock: _Clock) -> ConsumerRateThrottle:
    class Throttle(ConsumerRateThrottle):
        def get_rate(self):
            return rate

    throttle = Throttle()
    throttle.timer = clock
    return throttle


def test_limit_window_and_wait_follow_drf(redis_cache):
    clock = _Clock()
    request = _Request(7)
    answers = []
    for _ in range(4):
        throttle = _throttle("3/min", clock)
        answers.append(throttle.allow_request(request, None))
        clock.now += 10
    assert answers == [True, True, True, False]
    # The oldest request (at t0) leaves the window at t0 + 60; refused at t0 + 30.
    assert throttle.wait() == pytest.approx(30.0)
    # A refused request is not counted: at t0 + 60 one slot is free again, then none.
    clock.now += 20.001
    assert _throttle("3/min", clock).allow_request(request, None) is True
    assert _throttle("3/min", clock).allow_request(request, None) is False
    # Another consumer has its own window.
    assert _throttle("3/min", clock).allow_request(_Request(8), None) is True


def test_the_history_is_a_bounded_sorted_set_that_expires(redis_cache):
    clock = _Clock()
    request = _Request(9)
    for _ in range(12):
        _throttle("5/min", clock).allow_request(request, None)
        clock.now += 1
    key = cache.make_key("sw:throttle_consumer_9")
    assert redis_cache.type(key) == b"zset"
    assert redis_cache.zcard(key) == 5  # refused requests are not recorded
    assert 0 < redis_cache.pttl(key) <= 60_000
    clock.now += 61
    _throttle("5/min", clock).allow_request(request, None)
    assert redis_cache.zcard(key) == 1  # requests older than the window are dropped


def test_concurrent_requests_never_pass_the_limit(redis_cache):
    """DRF's read-modify-write of a pickled list loses updates under concurrency; the script
    cannot: 40 simultaneous requests of one consumer against 10/min let exactly 10 through."""
    barrier = threading.Barrier(40)
    results = []
    lock = threading.Lock()

    def one():
        throttle = _throttle("10/min", _Clock())
        barrier.wait()
        allowed = throttle.allow_request(_Request(11), None)
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 10 and results.count(False) == 30


def test_other_caches_use_drfs_implementation(monkeypatch):
    monkeypatch.setattr(throttling, "_redis_script", lambda: None)
    called = []
    original = SimpleRateThrottle.allow_request

    def spy(self, request, view):
        called.append(self.scope)
        return original(self, request, view)

    monkeypatch.setattr(SimpleRateThrottle, "allow_request", spy)
    clock = _Clock()
    answers = [_throttle("2/min", clock).allow_request(_Request(5), None) for _ in range(3)]
    assert answers == [True, True, False] and called == ["consumer"] * 3


def test_project_throttles_use_the_sliding_window():
    from apps.content.throttling import MerchantLookupThrottle
    from apps.reporting.api.authentication import PartnerKeyThrottle

    for cls in (ConsumerRateThrottle, MerchantLookupThrottle, PartnerKeyThrottle):
        assert issubclass(cls, SlidingWindowThrottle)


def _scoped(scope: str, rate: str, clock: _Clock) -> ConsumerRateThrottle:
    throttle = _throttle(rate, clock)
    throttle.scope = scope
    return throttle


def test_several_throttles_in_one_round_trip_decide_as_separate_calls(redis_cache, monkeypatch):
    """`allow_together` = DRF checking each throttle in turn: each key decided on its own, a
    refused key not recorded, the others recorded — in one script call."""
    clock = _Clock()
    request = _Request(21)
    script = throttling._redis_script()
    calls = []

    def counting(keys, args):
        calls.append(keys)
        return script(keys=keys, args=args)

    answers = []
    for _ in range(3):
        tight, loose = _scoped("tight", "2/min", clock), _scoped("loose", "10/min", clock)
        answers.append(throttling.allow_together([tight, loose], request, None, counting))
        clock.now += 5
    assert answers == [[True, True], [True, True], [False, True]]
    assert [len(keys) for keys in calls] == [2, 2, 2]  # one round trip per request
    assert tight.wait() == pytest.approx(50.0)  # refused at t0 + 10; oldest leaves at t0 + 60
    assert redis_cache.zcard(cache.make_key("sw:throttle_tight_21")) == 2
    assert redis_cache.zcard(cache.make_key("sw:throttle_loose_21")) == 3


def test_the_submission_view_checks_its_three_throttles_in_one_call(redis_cache, monkeypatch):
    from apps.invoices.api.views import InvoiceViewSet

    clock = _Clock()
    monkeypatch.setattr(SimpleRateThrottle, "timer", staticmethod(clock))
    request = _Request(22)
    request.method, request.headers = "POST", {}
    view = InvoiceViewSet()
    view.request, view.format_kwarg, view.kwargs = request, None, {}
    real = throttling._redis_script
    calls, reads = [], []

    def script_spy():
        script = real()

        def call(keys, args):
            calls.append(args[2])  # the throttle keys (the others are only read)
            reads.append(keys[args[2] :])
            return script(keys=keys, args=args)

        return call

    monkeypatch.setattr(throttling, "_redis_script", script_spy)
    monkeypatch.setattr(
        throttling, "DEFAULT_RATES", {**throttling.DEFAULT_RATES, "invoice_submit": "1/min"}
    )
    monkeypatch.setattr("django.conf.settings.API_THROTTLE_RATES", {}, raising=False)
    view.check_throttles(request)  # the first submission passes
    with pytest.raises(Throttled) as refused:  # the second: 429 from the submission throttle
        view.check_throttles(request)
    assert refused.value.status_code == 429 and refused.value.wait == 60
    assert calls == [3, 3]  # address, consumer, submissions: one call per request
    # The configuration's generation tokens travel in the same call.
    generations = [cache.make_key(key) for key in caching.generation_keys()]
    assert reads == [generations, generations] and generations
    request.method = "GET"  # the submission throttle does not apply to reads
    view.check_throttles(request)
    assert calls == [3, 3, 2] and reads[2] == []


def test_keys_read_with_the_throttles_come_back_decoded(redis_cache):
    """`allow_together(…, reads=…)`: other keys' values in the same script call, decoded as the
    cache decodes them (None for a missing key); the throttles decide as without them."""
    clock = _Clock()
    request = _Request(23)
    cache.set("read-along-1", {"token": "abc"}, 60)
    cache.set("read-along-2", 7, 60)
    got = []
    throttle = _scoped("reads", "1/min", clock)
    answers = [
        throttling.allow_together(
            [throttle],
            request,
            None,
            throttling._redis_script(),
            (["read-along-1", "read-along-2", "read-along-none"], got.append),
        )
        for _ in range(2)
    ]
    assert answers == [[True], [False]]
    expected = {"read-along-1": {"token": "abc"}, "read-along-2": 7, "read-along-none": None}
    assert got == [expected, expected]
