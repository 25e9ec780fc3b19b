"""`queue_soon`: a Celery run asked for at most once per window, never failing the caller."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


class _Task:
    def __init__(self, fail: bool = False):
        self.calls: list[dict] = []
        self.fail = fail

    def apply_async(self, **options):
        if self.fail:
            raise ConnectionError("broker down")
        self.calls.append(options)


def test_queue_soon_once_per_key_and_never_raises(caplog):
    from django.core.cache import cache

    from apps.common.queueing import queue_soon

    cache.delete("test:queue-soon")
    task = _Task()
    queue_soon(task, countdown=5, once_key="test:queue-soon", what="a test run")
    queue_soon(task, countdown=5, once_key="test:queue-soon", what="a test run")
    assert task.calls == [{"countdown": 5}]  # the second found the key: already asked for
    queue_soon(task, countdown=2, what="a test run")  # no key: always
    assert task.calls == [{"countdown": 5}, {"countdown": 2}]
    cache.delete("test:queue-soon")
    queue_soon(_Task(fail=True), countdown=1, once_key="test:queue-soon", what="a test run")
    assert "could not queue a test run" in caplog.text
