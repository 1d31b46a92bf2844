"""The Flask app factory: ``create_app(settings, redis=None)``.

It wires the settings, the Redis client and the event store into ``app.extensions``, mounts the
blueprints under flask-smorest (which serves the OpenAPI document at ``/openapi.json`` and its
docs page at ``/docs``), and installs problem+json errors, CORS for the extension's origins only,
security headers, request logging and Prometheus metrics. Nothing happens at import time.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Response, request
from flask_cors import CORS

from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings, SettingsError
from recommender.store import EventStore
from server import api as api_package
from server import errors, lane, logs, metrics, ratelimit, web
from server.errors import Problem
from server.headers import API_CSP, JSON_MIME, SECURITY_HEADERS
from server.openapi import make_api
from server.state import AppState

API_DOC = """Paperfeed: trending papers, for you.

Errors are RFC 9457 `application/problem+json` documents. User endpoints take
`Authorization: Bearer <token>` from `POST /v1/users`; admin endpoints take the admin token.
"""

_SECURITY_HEADER_ITEMS = tuple((k, k.lower(), v) for k, v in SECURITY_HEADERS.items())
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


def create_app(settings: Settings | None = None, redis: Any = None) -> Flask:
    """Build the WSGI app. ``redis`` defaults to a client for ``settings.redis_url``."""
    settings = settings or Settings.from_env()
    if redis is None:
        if not settings.redis_url:
            raise SettingsError(
                "REDIS_URL is not set: run `paperfeed up` (it starts an embedded Redis) "
                "or point REDIS_URL at a Redis server"
            )
        redis = connect(settings.redis_url, settings.redis_timeout_s)

    app = Flask(__name__)
    app.config.update(
        API_TITLE="Paperfeed",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/",
        API_SPEC_OPTIONS={"info": {"description": API_DOC}},
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    app.extensions["paperfeed"] = AppState(
        settings=settings, redis=redis, keys=keys, store=EventStore(redis, settings, keys)
    )

    smorest = make_api(app)
    api_package.register(smorest)
    errors.init_app(app)  # after flask-smorest, so its HTTP error handler is replaced
    logs.init_app(app)  # its request id and clock first: the hooks below may answer

    @app.before_request
    def _lane_error() -> None:
        """An error the events lane met while storing (server.lane): answered here, by the
        error handlers, as if the view had raised it."""
        exc = request.environ.pop(lane.LANE_ERROR, None)
        if exc is not None:
            raise exc

    app.extensions["paperfeed"].extras["limiter"] = ratelimit.init_app(
        app, settings, keys.ns("ratelimit")
    )
    metrics.init_app(app)
    web.init_app(app)
    cors = {
        "origins": [re.compile(o) for o in settings.cors_origins],
        "allow_headers": ["Authorization", "Content-Type", "X-Request-ID"],
        "expose_headers": ["Retry-After", "X-Request-ID"],
        "max_age": 600,
    }
    CORS(app, resources={r"/v1/*": cors})
    app.wsgi_app = lane.EventsLane(app, app.wsgi_app, cors)  # type: ignore[method-assign]

    @app.before_request
    def _json_bodies_only() -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]
        if req.method not in _BODY_METHODS or not req.content_length:
            return
        mimetype = req.mimetype or ""
        if JSON_MIME.match(mimetype):
            return
        # RFC 8058 one-click unsubscribe posts a form, as mail clients send it
        if req.endpoint in web.FORM_ENDPOINTS and mimetype in web.FORM_MIMES:
            return
        raise Problem(415, "send the body as application/json")

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        present = {name.lower() for name, _ in headers}
        for name, lower, value in _SECURITY_HEADER_ITEMS:
            if lower not in present:
                headers.add(name, value)
        path = request.path
        api = path.startswith("/v1/") or path == "/openapi.json"
        if api and "content-security-policy" not in present:
            headers.add("Content-Security-Policy", API_CSP)
        if path.startswith("/v1/me") or path == "/v1/users":
            headers["Cache-Control"] = "no-store"
        return response

    return app
