"""gunicorn settings, read from Paperfeed's settings (``PORT``, ``WEB_CONCURRENCY`` ...).

Used as ``gunicorn -c python:server.gunicorn_conf server.wsgi:app`` by the Procfile and by
``paperfeed up``. Threads per worker come from ``PAPERFEED_WEB_THREADS`` (default 4).
"""

from __future__ import annotations

import os

from prometheus_client import multiprocess

from recommender.settings import Settings
from server import logs

_settings = Settings.from_env()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"
threads = int(os.environ.get("PAPERFEED_WEB_THREADS", "4"))
timeout = 30  # a request stuck longer than this (Redis is bounded at 2 s) gets its worker recycled
graceful_timeout = 20
keepalive = 5
max_requests = 50_000
max_requests_jitter = 5_000
accesslog = None  # the app logs one structured line per request itself
errorlog = "-"
loglevel = _settings.log_level.lower()
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn >= 25 opens a control socket at ~/.gunicorn/gunicorn.ctl, one path for every gunicorn
# of the user (two `paperfeed up`, the benchmark's two servers), in a home that may be read-only
# on a platform. Nothing here uses it. (Older gunicorns ignore the name.)
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    logs.configure(_settings.log_level)


def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
