"""Operations tests: probes, logging context, backup/restore and the runbook's drills.

Failures are injected for real: a broker or database URL that points at a port nobody listens
on, a sandbox payment gateway that is stopped — never by patching our own code.
"""

from __future__ import annotations

import contextlib
import socket

import pytest

from lotteryinvoice.celery import app as celery_app


def closed_port() -> int:
    """A local TCP port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def real_broker(url: str):
    """Celery not eager, publishing to `url` (the tests' default is eager)."""
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.broker_url)
    conf.task_always_eager = False
    conf.broker_url = url
    # Connections and producers are pooled per app: new pools for the new URL, and back.
    _forget_pools()
    try:
        yield celery_app
    finally:
        _forget_pools()
        conf.task_always_eager, conf.broker_url = saved


def _forget_pools() -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker_down():
    with real_broker(f"redis://127.0.0.1:{closed_port()}/0") as app:
        yield app


# Fixtures of other test packages the drills reuse (consumers, campaigns, the feed admin).
from tests.invoices.conftest import api, campaign, consumer, make_record  # noqa: E402, F401
from tests.invoices.test_feed_import import feed_admin  # noqa: E402, F401
