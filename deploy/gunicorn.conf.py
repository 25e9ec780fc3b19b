"""gunicorn settings for lotteryinvoice (used by deploy/systemd/lotteryinvoice-web.service).

Every value can be overridden by an environment variable of the same purpose, so one file
serves a small and a large machine. Access lines are JSON with the request id nginx passes.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: the application is database-bound and short requests dominate.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# A request longer than this is killed (exports and imports stream or run in Celery).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (bounded memory growth), staggered so they never all restart.
# Not too often: a new worker starts Django (about a second of CPU) and its caches and
# database connections cold, answers nothing meanwhile and closes its clients' keep-alive
# connections — at a few hundred requests a second, 2,000 requests meant a restart somewhere
# every few seconds, and 20,000 one every two minutes, each a latency spike of about a
# second for the requests queued behind it (issue 11's bench saw one in a 30-second window).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# nginx on the same machine is the only client; trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket (gunicornc) would be created in $HOME, which the systemd unit keeps
# read-only; signals (systemctl reload = HUP) do the same job.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
# One JSON object per request, like the application's own log lines (no query strings: they
# can carry personal data).
access_log_format = (
    '{"ts": "%(t)s", "logger": "gunicorn.access", "request_id": "%({x-request-id}o)s", '
    '"method": "%(m)s", "path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", '
    '"duration_ms": %(M)s, "remote": "%({x-forwarded-for}i)s"}'
)


def post_worker_init(worker):
    """Once the worker has loaded Django: move every object alive now (modules, settings,
    URL patterns, model metadata — never garbage) out of the garbage collector's view, so its
    collections scan only what requests create (a full collection used to walk them all)."""
    import gc

    gc.freeze()
