"""/healthz and /readyz: fast, unauthenticated, no personal data, never throttled, honest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from apps.common import health
from tests.ops.conftest import closed_port, real_broker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_healthz_is_up_without_sign_in_and_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies


def test_readyz_reports_each_dependency(client):
    health._reset_migration_memo()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    # The tests run Celery eagerly: there is no broker to reach, and the probe says so.
    assert body["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "cache": "ok",
        "broker": "eager",
    }


@pytest.mark.postgres
def test_readyz_with_a_real_broker_up_and_down(client, settings):
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    with real_broker(redis_url):
        up = client.get("/readyz")
    assert up.status_code == 200, up.content
    assert up.json()["checks"]["broker"] == "ok"

    started = time.monotonic()
    with real_broker(f"redis://127.0.0.1:{closed_port()}/0"):
        down = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"] == "fail"
    assert body["checks"]["database"] == "ok"
    assert elapsed < 2 * health.BROKER_TIMEOUT + 1, "a probe must answer quickly"
    assert "127.0.0.1" not in down.content.decode(), "no addresses or error text in the answer"


@pytest.mark.postgres
def test_readyz_reports_unapplied_migrations(client):
    """An unapplied migration (here: the last one of an app, rolled back in the record table
    only) makes the process not ready until `migrate` has run."""
    health._reset_migration_memo()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, app, name FROM django_migrations WHERE app = 'common' ORDER BY id DESC "
            "LIMIT 1"
        )
        row_id, app, name = cur.fetchone()
        cur.execute("DELETE FROM django_migrations WHERE id = %s", [row_id])
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "fail"
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, now())",
            [app, name],
        )
    health._reset_migration_memo()
    assert client.get("/readyz").status_code == 200


@override_settings(ALLOWED_HOSTS=["fapiao.example.gov.cn"], SECURE_SSL_REDIRECT=True, DEBUG=False)
def test_probes_answer_a_load_balancer_by_address_over_http(client):
    """Probes come by private address over plain HTTP: no redirect, no Host refusal."""
    for path in ("/healthz", "/readyz"):
        response = client.get(path, HTTP_HOST="10.0.0.7:8000")
        assert response.status_code == 200, (path, response.status_code)
    # Everything else still gets both protections.
    assert client.get("/api/v1/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_probes_are_never_rate_limited(client):
    # More than the per-address API limit (300/min) in one go.
    statuses = {client.get("/healthz", REMOTE_ADDR="203.0.113.9").status_code for _ in range(320)}
    assert statuses == {200}


def test_probes_accept_only_get_and_head(client):
    assert client.head("/healthz").status_code == 200
    response = client.post("/readyz")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def _free_port() -> int:
    return closed_port()


@pytest.mark.postgres
def test_database_down_drill_probes_of_a_real_server(tmp_path):
    """Runbook "database down": a web process whose database is unreachable stays alive
    (/healthz 200, so the supervisor does not restart it in a loop) and says it is not ready
    (/readyz 503, database "fail"), so the load balancer stops sending it traffic."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}},
        "DJANGO_ENV": "development",
        "LOTTERYINVOICE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/gone",
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_FORMAT": "json",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "30",
            "lotteryinvoice.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        healthz = _get_when_up(f"http://127.0.0.1:{port}/healthz")
        assert healthz == (200, {"status": "ok"})
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503
        assert body["checks"]["database"] == "fail"
        assert body["checks"]["migrations"] == "skipped"
        assert body["checks"]["cache"] == "ok"
        assert body["checks"]["broker"] == "ok"
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    warning = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and "readiness check database failed" in line
    ]
    assert warning, output
    assert warning[0]["level"] == "WARNING" and warning[0]["request_id"]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 - local http
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _get_when_up(url: str, wait: float = 30.0) -> tuple[int, dict]:
    deadline = time.monotonic() + wait
    while True:
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
