"""Prometheus metrics: requests, latency, and events accepted / duplicate / rejected.

Under gunicorn every worker is a process, so when ``PROMETHEUS_MULTIPROC_DIR`` is set (``paperfeed
up`` and the gunicorn config set it) ``/metrics`` aggregates all workers' files.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "paperfeed_http_requests_total", "HTTP requests answered", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "paperfeed_http_request_seconds",
    "Time to answer a request",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS = Counter("paperfeed_events_total", "Events received, by outcome", ["outcome"])

# metric -> label values -> child; filled in each worker process as requests arrive
_CHILDREN: dict[Any, dict[tuple[Any, ...], Any]] = {}


def child(metric: Any, *values: Any) -> Any:
    """``metric.labels(*values)``, remembered: prometheus_client validates the values and takes
    a lock on every ``labels()`` call, which costs more than the increment itself."""
    children = _CHILDREN.setdefault(metric, {})
    found = children.get(values)
    if found is None:
        found = children[values] = metric.labels(*values)
    return found


def init_app(app: Flask) -> None:
    @app.route("/metrics")
    def prometheus_metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            body = generate_latest(registry)
        else:
            body = generate_latest()
        return Response(body, mimetype=CONTENT_TYPE_LATEST)
