"""Sessions in the database with a copy in the shared cache (`SESSION_ENGINE` when Redis is
configured): the consumer app's token and the back office's cookie are looked up on every
request, and a cache read costs far less than a query.

Django's `cached_db` store trusts a cached session until the cache entry's time to live runs
out, which is set once, from the clock at writing. This store keeps the expiry with the data and
checks it against `timezone.now()` on every read, exactly as the database store's query does
(`expire_date > now`), so a session ends at the same moment whichever copy is read.

Every write goes to the database first and then to the cache; deleting (sign-out, revocation,
an ended session) removes both, the cached copy first. The database stays the record: a lost
cache entry is read back from it. Only with a shared cache (Redis) — per-process memory would
keep a revoked session alive in the other workers — so settings use this store only when
`REDIS_URL` is set.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.utils import timezone

logger = logging.getLogger("django.contrib.sessions")

KEY_PREFIX = "lotteryinvoice.session.v1:"


class SessionStore(cached_db.SessionStore):
    cache_key_prefix = KEY_PREFIX

    def _cache_put(self, expires, data) -> None:
        seconds = int((expires - timezone.now()).total_seconds()) + 1
        try:
            self._cache.set(self.cache_key, (expires, data), max(seconds, 1))
        except Exception:  # the database holds it; the next read reloads the cache
            logger.exception("Error saving a session to the cache")

    def load(self):
        try:
            item = self._cache.get(self.cache_key)
        except Exception:
            item = None
        if isinstance(item, tuple) and len(item) == 2:
            expires, data = item
            if expires > timezone.now():
                return data
            self._session_key = None  # ended: as the database store, forget the key
            return {}
        row = self._get_session_from_db()
        if row is None:
            return {}
        data = self.decode(row.session_data)
        self._cache_put(row.expire_date, data)
        return data

    def create_model_instance(self, data):
        row = super().create_model_instance(data)
        self._saved_expiry = row.expire_date  # the expiry the database row gets
        return row

    def save(self, must_create=False):
        DBStore.save(self, must_create)
        expires = getattr(self, "_saved_expiry", None)
        if expires is not None and self.session_key:
            self._cache_put(expires, self._session)

    def delete(self, session_key=None):
        """The cached copy goes first: if the cache cannot be reached, nothing is deleted and the
        caller sees the error (a revocation is never reported done while a copy lives on). It
        goes again after the row, for a reader that copied the row in between."""
        key = session_key or self.session_key
        if key is None:
            return
        self._cache.delete(self.cache_key_prefix + key)
        DBStore.delete(self, session_key)
        self._cache.delete(self.cache_key_prefix + key)

    async def aload(self):
        return await sync_to_async(self.load)()

    async def asave(self, must_create=False):
        return await sync_to_async(self.save)(must_create)
