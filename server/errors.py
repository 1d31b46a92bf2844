"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

Each problem has a stable ``type`` and ``title`` per kind of error, the HTTP ``status``, a
per-occurrence ``detail`` and, for validation errors, an ``errors`` list of
``{"pointer": "/events/3/paper/url", "detail": "..."}`` (RFC 6901 JSON Pointers into the body
or, for query parameters, ``{"parameter": "limit", ...}``). Redis being unreachable is a 503
with ``Retry-After``; nothing ever answers with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, Response, current_app, json, request
from werkzeug.exceptions import HTTPException

from recommender.redisconn import UNAVAILABLE_ERRORS, refused_write

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"
TYPE_BASE = "https://paperfeed.dev/problems/"

TITLES = {
    400: ("bad-request", "The request is malformed"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "No such resource"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "The request failed validation"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service temporarily unavailable"),
}


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.kind = kind


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    kind: str | None = None,
) -> Response:
    slug, title = TITLES.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": TYPE_BASE + (kind or slug),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path if request else None,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_messages(messages: Any, location: str) -> list[dict[str, Any]]:
    """Marshmallow's nested error dict as a flat list of JSON Pointers with their messages."""
    out: list[dict[str, Any]] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, Mapping):
            for key, child in node.items():
                walk(child, [*path, str(key)])
        elif isinstance(node, list) and all(isinstance(m, str) for m in node):
            for message in node:
                out.append(_error_entry(path, message, location))
        elif isinstance(node, list):
            for child in node:
                walk(child, path)
        else:
            out.append(_error_entry(path, str(node), location))

    walk(messages, [])
    return out


def _error_entry(path: list[str], message: str, location: str) -> dict[str, Any]:
    if path and path[-1] == "_schema":
        path = path[:-1]
    if location == "json":
        escaped = [p.replace("~", "~0").replace("/", "~1") for p in path]
        return {"pointer": "/" + "/".join(escaped), "detail": message}
    return {"parameter": ".".join(path), "detail": message}


def _validation_problem(exc: HTTPException) -> Response:
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or {}
    errors: list[dict[str, Any]] = []
    for location, tree in messages.items():
        errors += flatten_messages(tree, location)
    count = len(errors)
    detail = f"{count} invalid field{'s' if count != 1 else ''}; nothing was stored"
    return problem_response(422, detail, errors=errors)


def init_app(app: Flask) -> None:
    """Route every error through problem+json."""

    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(
            exc.status, exc.detail, errors=exc.errors, headers=exc.headers, kind=exc.kind
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 422:
            return _validation_problem(exc)
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        if status == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            detail = f"the body exceeds the limit of {limit} bytes"
        elif status == 400 and getattr(exc, "data", None):
            detail = _first_message(exc.data) or "malformed request"  # type: ignore[attr-defined]
        else:
            detail = exc.description or TITLES.get(status, ("", "Error"))[1]
        extra = exc.get_headers() if status in (429,) else []
        headers.update({k: v for k, v in extra if k.lower() == "retry-after"})
        return problem_response(status, detail, headers=headers)

    def _store_503(detail: str, kind: str) -> Response:
        """The answer while Redis is away or refuses writes: try again after Retry-After."""
        retry = str(current_app.extensions["paperfeed"].settings.retry_after_s)
        return problem_response(503, detail, headers={"Retry-After": retry}, kind=kind)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, UNAVAILABLE_ERRORS):
            log.warning("redis unavailable: %s", type(exc).__name__)
            return _store_503(
                "the data store is unreachable; try again shortly", "store-unavailable"
            )
        reason = refused_write(exc)
        if reason is not None:
            # not the error's text: a pipeline's names its command, keys and values included
            log.warning("redis refuses writes: %s (%s)", reason, type(exc).__name__)
            drop_connections_to_a_replica(exc)
            return _store_503(
                f"the data store refuses writes for now ({reason}); try again shortly",
                "store-refuses-writes",
            )
        log.exception("unhandled error")
        return problem_response(500, "an unexpected error occurred; it has been logged")


def drop_connections_to_a_replica(exc: BaseException) -> None:
    """After a failover, connections made to the old primary stay there (``READONLY``): close
    them, so new ones resolve the address again (a Cluster client follows its nodes itself)."""
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        client = current_app.extensions["paperfeed"].redis
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            pool.disconnect()


def _first_message(data: Any) -> str | None:
    messages = data.get("messages") if isinstance(data, Mapping) else None
    flat = flatten_messages(messages or {}, "json")
    return flat[0]["detail"] if flat else None
