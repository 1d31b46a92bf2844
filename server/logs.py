"""One structured log line per request, stamped with a request id; never a token or URL.

The line names the endpoint (the route's rule, e.g. ``/v1/papers/<path:paper_id>``), not the
path or query string the client sent, so no page address, paper URL or token reaches a log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

from server import metrics

log = logging.getLogger("paperfeed.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):  # the events lane passes its own (server.lane)
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def request_id(given: str) -> str:
    """The client's ``X-Request-ID`` if it is a sane token, else a fresh one."""
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def record(method: str, endpoint: str, status: int, elapsed: float, rid: str | None = None) -> None:
    """Count and log one answered request: the metrics and the one access line.

    ``rid`` is given where no Flask request context holds the request id (the events lane).
    """
    metrics.child(metrics.REQUESTS, method, endpoint, status).inc()
    metrics.child(metrics.LATENCY, endpoint).observe(elapsed)
    if log.isEnabledFor(logging.INFO):
        extra = None if rid is None else {"request_id": rid}
        log.info(
            "method=%s endpoint=%s status=%d ms=%.2f",
            method,
            endpoint,
            status,
            elapsed * 1000,
            extra=extra,
        )


def init_app(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        ctx = g._get_current_object()  # one context-local look-up instead of one per use
        ctx.request_id = request_id(request.headers.get("X-Request-ID", ""))
        ctx.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        req, ctx = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
        started = getattr(ctx, "started", None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        endpoint = req.url_rule.rule if req.url_rule else "<unmatched>"
        status = response.status_code
        record(req.method, endpoint, status, elapsed)
        if status == 422 and req.endpoint == "events.post_events":
            body = req.get_json(silent=True)
            events = body.get("events") if isinstance(body, dict) else None
            rejected = len(events) if isinstance(events, list) else 1
            metrics.child(metrics.EVENTS, "rejected").inc(rejected)
        response.headers["X-Request-ID"] = getattr(ctx, "request_id", "-")
        return response


def configure(level: str = "INFO") -> None:
    """Log configuration for an entry point (the CLI, gunicorn workers): one line per record."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
