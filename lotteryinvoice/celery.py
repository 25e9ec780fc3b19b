"""The Celery application: Redis broker in production, eager tasks in the embedded default.

Reliability settings (lotteryinvoice.settings, CELERY_*): a task is acknowledged only after it
has run (`acks_late`), a task whose worker died is put back (`task_reject_on_worker_lost`), each
worker process reserves one task at a time (prefetch 1) and every task has a soft and a hard
time limit. Redelivery means a task can run twice, so every task must be idempotent (they take
ids and call a service that finds the current state and carries on from there).

Request ids: a task queued while serving an HTTP request carries that request's id in a message
header (`request_id`); the worker puts it, and the task's own id and name, into the logging
context, so one id links the web and worker log lines of one piece of work.
"""

import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")

app = Celery("lotteryinvoice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "request_id"
logger = logging.getLogger("lotteryinvoice.tasks")


@signals.before_task_publish.connect(weak=False)
def _stamp_request_id(headers=None, **_kwargs):
    """Sender side: copy the current request id into the outgoing message's headers."""
    from apps.common.logging import request_id_var

    request_id = request_id_var.get()
    if headers is not None and request_id and not headers.get(REQUEST_ID_HEADER):
        headers[REQUEST_ID_HEADER] = request_id


def _incoming_request_id(task) -> str | None:
    request = task.request
    value = getattr(request, REQUEST_ID_HEADER, None)
    if not value and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(REQUEST_ID_HEADER)
    return value if isinstance(value, str) else None


_TOKENS = "_lotteryinvoice_log_tokens"


@signals.task_prerun.connect(weak=False)
def _enter_task_context(task_id=None, task=None, **_kwargs):
    """Worker side: the task's request id (or, when run eagerly, the caller's) and its id."""
    from apps.common.logging import clean_request_id, request_id_var, task_id_var, task_name_var

    if task is None:
        return
    incoming = _incoming_request_id(task)
    # No id (a beat-scheduled task): a fresh one, so the tasks it queues can be traced to it.
    request_id = clean_request_id(incoming or request_id_var.get())
    tokens = (
        request_id_var.set(request_id),
        task_id_var.set(task_id),
        task_name_var.set(task.name),
    )
    # Kept on the request context so the matching postrun can restore the caller's values
    # (eager tasks run inside the caller, and nest).
    stack = task.request.__dict__.setdefault(_TOKENS, [])
    stack.append(tokens)
    logger.info("task started")


@signals.task_postrun.connect(weak=False)
def _leave_task_context(task=None, state=None, **_kwargs):
    from apps.common.logging import request_id_var, task_id_var, task_name_var

    if task is None:
        return
    stack = task.request.__dict__.get(_TOKENS) or []
    if not stack:
        return
    logger.info("task finished: %s", state)
    rid, tid, tname = stack.pop()
    for var, token in ((task_name_var, tname), (task_id_var, tid), (request_id_var, rid)):
        try:
            var.reset(token)
        except ValueError:  # set in another context (should not happen); just clear it
            var.set(None)
