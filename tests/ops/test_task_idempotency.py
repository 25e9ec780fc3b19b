"""Redelivered and duplicated tasks (acks_late + reject-on-worker-lost) do no harm."""

from __future__ import annotations

import time

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from apps.invoices.models import FeedImport, FeedImportStatus
from apps.invoices.tasks import _FEED_LOCK_BASE, import_tax_feed_task
from tests.factories.core import UserFactory
from tests.invoices.test_feed_import import BAD_FEED, EXPECTED_ERRORS, errors_of

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def upload(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    feed_import = FeedImport(
        file_name="feed.csv", uploaded_by=UserFactory(is_staff=True), status="queued"
    )
    feed_import.file.save("feed.csv", ContentFile(BAD_FEED), save=False)
    feed_import.save()
    return feed_import


def test_a_second_copy_of_a_running_import_stops_without_touching_it(upload):
    """Another worker holds the import's lock (a second database session, as a second worker
    would): this copy returns at once and leaves the import as it is."""
    other_worker = connection.get_new_connection(connection.get_connection_params())
    try:
        other_worker.autocommit = True
        with other_worker.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [_FEED_LOCK_BASE + upload.pk])
            assert cur.fetchone()[0] is True
        assert import_tax_feed_task(upload.pk) == FeedImportStatus.RUNNING
        upload.refresh_from_db()
        assert upload.status == FeedImportStatus.QUEUED and upload.started_at is None
        assert not errors_of(upload)
    finally:
        other_worker.close()  # the other worker dies: its session's lock goes with it
    _wait_until_released(_FEED_LOCK_BASE + upload.pk)

    # The redelivered copy now runs the import, once; a further copy leaves it alone.
    assert import_tax_feed_task(upload.pk) == FeedImportStatus.DONE
    assert errors_of(upload) == EXPECTED_ERRORS
    finished_at = FeedImport.objects.get(pk=upload.pk).finished_at
    assert import_tax_feed_task(upload.pk) == FeedImportStatus.DONE
    assert FeedImport.objects.get(pk=upload.pk).finished_at == finished_at


def test_the_lock_is_released_after_a_run(upload):
    import_tax_feed_task(upload.pk)
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [_FEED_LOCK_BASE + upload.pk])
            assert cur.fetchone()[0] is True
    finally:
        other.close()


def _wait_until_released(key: int, timeout: float = 10.0) -> None:
    """The server ends a closed session's backend (and its locks) a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND ((classid::bigint << 32) | objid::bigint) = %s",
                [key],
            )
            if cur.fetchone()[0] == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the advisory lock was never released")
