"""The cached session store: the database stays the record, the cached copy ends exactly when
the database row does, and deleting removes both."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.session_store import KEY_PREFIX, SessionStore

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_cache(redis_cache):
    """The cached session store is used with Redis only."""


def _new_session(**data) -> str:
    store = SessionStore()
    for key, value in data.items():
        store[key] = value
    store.create()
    return store.session_key


def test_redis_deployments_use_the_cached_store():
    assert settings.SESSION_ENGINE == "apps.accounts.session_store"


def test_a_read_costs_no_query_and_the_database_keeps_the_record():
    key = _new_session(colour="blue")
    assert Session.objects.filter(session_key=key).exists()
    with CaptureQueriesContext(connection) as ctx:
        assert SessionStore(session_key=key)["colour"] == "blue"
    assert ctx.captured_queries == []
    # A lost cache entry is read back from the database (and cached again).
    cache.delete(KEY_PREFIX + key)
    with CaptureQueriesContext(connection) as ctx:
        assert SessionStore(session_key=key)["colour"] == "blue"
    assert len(ctx.captured_queries) == 1
    assert cache.get(KEY_PREFIX + key) is not None


def test_the_cached_copy_ends_when_the_database_row_does():
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        store = SessionStore()
        store["n"] = 1
        store.set_expiry(600)
        store.create()
        key = store.session_key
        row_expiry = Session.objects.get(session_key=key).expire_date
        clock.move_to(row_expiry - timedelta(seconds=1))
        assert SessionStore(session_key=key).get("n") == 1
        clock.move_to(row_expiry + timedelta(seconds=1))
        ended = SessionStore(session_key=key)
        assert ended.get("n") is None
        assert ended.session_key is None  # as the database store: the key is forgotten


def test_saving_writes_both_copies():
    key = _new_session(step=1)
    store = SessionStore(session_key=key)
    store["step"] = 2
    store.save()
    assert SessionStore(session_key=key)["step"] == 2
    assert SessionStore().decode(Session.objects.get(session_key=key).session_data)["step"] == 2


def test_deleting_and_cycling_remove_the_cached_copy():
    key = _new_session(user="7")
    SessionStore(session_key=key).delete()
    assert cache.get(KEY_PREFIX + key) is None
    assert not Session.objects.filter(session_key=key).exists()
    assert SessionStore(session_key=key).get("user") is None

    key = _new_session(user="8")
    store = SessionStore(session_key=key)
    store.cycle_key()
    assert store.session_key != key
    assert SessionStore(session_key=key).get("user") is None
    assert SessionStore(session_key=store.session_key)["user"] == "8"


def test_a_deletion_that_cannot_reach_the_cache_deletes_nothing(monkeypatch):
    key = _new_session(user="9")
    store = SessionStore(session_key=key)

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(store._cache, "delete", down)
    with pytest.raises(ConnectionError):
        store.delete()
    monkeypatch.undo()
    # Both copies are still there: the revocation failed visibly and can be repeated.
    assert Session.objects.filter(session_key=key).exists()
    assert SessionStore(session_key=key)["user"] == "9"
    SessionStore(session_key=key).delete()
    assert not Session.objects.filter(session_key=key).exists()
    assert cache.get(KEY_PREFIX + key) is None
