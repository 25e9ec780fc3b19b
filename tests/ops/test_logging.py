"""Structured logs: a request id in and out of every request, on every log line, and carried
through the broker into the Celery task the request queued (a real worker process)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from apps.common.logging import (
    JsonFormatter,
    RedactPersonalDataFilter,
    RequestContextFilter,
    request_id_var,
)
from apps.common.tasks import purge_idempotency_records
from tests.ops.conftest import closed_port, real_broker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """What the project's console handler writes, as parsed JSON lines."""
    root = logging.getLogger()
    console = next(
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler)
        and any(isinstance(f, RedactPersonalDataFilter) for f in h.filters)
    )
    assert any(isinstance(f, RequestContextFilter) for f in console.filters)
    stream = io.StringIO()
    old_stream = console.setStream(stream)
    old_formatter = console.formatter
    console.setFormatter(JsonFormatter())

    def lines():
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    try:
        yield lines
    finally:
        console.setStream(old_stream)
        console.setFormatter(old_formatter)


@pytest.mark.django_db
def test_an_incoming_request_id_is_kept_and_returned(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a9c2e11d04b6e")
    assert response["X-Request-ID"] == "lb-7f3a9c2e11d04b6e"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "incoming", [None, "", "short", "has space 123456", "x" * 200, "id\nforged-log-line"]
)
def test_a_missing_or_malformed_request_id_is_replaced(client, incoming):
    extra = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}
    response = client.get("/healthz", **extra)
    rid = response["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    assert rid != incoming
    # Each request gets its own.
    assert client.get("/healthz")["X-Request-ID"] != rid


@pytest.mark.django_db
def test_every_response_carries_its_id_even_errors(client):
    assert client.get("/no-such-page/")["X-Request-ID"]
    assert client.get("/api/v1/invoices/")["X-Request-ID"]  # 401/403 from the API


@pytest.mark.django_db
def test_log_lines_written_while_serving_carry_the_request_id(client, json_lines):
    with real_broker(f"redis://127.0.0.1:{closed_port()}/0"):
        response = client.get("/readyz", HTTP_X_REQUEST_ID="probe-0001-abcdef")
    assert response.status_code == 503
    warnings = [line for line in json_lines() if "readiness check broker failed" in line["message"]]
    assert warnings, json_lines()
    line = warnings[0]
    assert line["request_id"] == "probe-0001-abcdef"
    assert line["level"] == "WARNING" and line["logger"] == "apps.common.health"
    assert set(line) >= {"ts", "level", "logger", "message", "request_id", "task_id", "process"}
    # Outside a request there is no id.
    logging.getLogger("tests.ops").warning("outside")
    assert json_lines()[-1]["request_id"] is None


def test_json_lines_are_scrubbed_of_personal_data(json_lines):
    logger = logging.getLogger("tests.ops")
    logger.warning("card %s phone %s", "6222020200112233445", "13912345678")
    try:
        raise ValueError("id 110101199003077777 refused")
    except ValueError:
        logger.exception("failed")
    written = json.dumps(json_lines(), ensure_ascii=False)
    for secret in ("6222020200112233445", "13912345678", "110101199003077777"):
        assert secret not in written
    assert "Traceback" in json_lines()[-1]["exc"]


@pytest.mark.django_db
def test_eager_tasks_log_with_the_callers_request_id(json_lines):
    token = request_id_var.set("caller-request-0042")
    try:
        purge_idempotency_records.delay()
    finally:
        request_id_var.reset(token)
    lines = [x for x in json_lines() if x["logger"] == "lotteryinvoice.tasks"]
    assert [x["message"] for x in lines] == ["task started", "task finished: SUCCESS"]
    assert {x["request_id"] for x in lines} == {"caller-request-0042"}
    assert {x["task_name"] for x in lines} == {"apps.common.tasks.purge_idempotency_records"}
    assert request_id_var.get() is None  # restored after the task


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_logs_the_request_id_of_the_request_that_queued_the_task():
    """Publish through Redis while serving "a request"; a real `celery worker` process picks
    the task up and its JSON log lines carry the same request id and the task's id."""
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    queue = f"ops-test-{uuid.uuid4().hex[:12]}"
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}},
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "json",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "lotteryinvoice",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = ""
    try:
        with real_broker(redis_url):
            token = request_id_var.set("web-request-7e1f00aa")
            try:
                result = purge_idempotency_records.apply_async(queue=queue)
            finally:
                request_id_var.reset(token)
        os.set_blocking(worker.stdout.fileno(), False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "task finished" not in output:
            chunk = worker.stdout.read()
            if chunk:
                output += chunk.decode()
            time.sleep(0.2)
    finally:
        worker.terminate()
        rest = worker.communicate(timeout=30)[0]
        output += (rest or b"").decode()
    lines = [json.loads(x) for x in output.splitlines() if x.startswith("{")]
    ours = [x for x in lines if x["logger"] == "lotteryinvoice.tasks"]
    assert [x["message"] for x in ours] == ["task started", "task finished: SUCCESS"], output
    for line in ours:
        assert line["request_id"] == "web-request-7e1f00aa"
        assert line["task_id"] == result.id
        assert line["task_name"] == "apps.common.tasks.purge_idempotency_records"
    # The worker's own lines are JSON too (no Celery-format lines on the root logger).
    assert all(x.startswith("{") for x in output.splitlines() if " INFO " in x or " ERROR " in x)
