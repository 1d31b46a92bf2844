"""The events lane: ``POST /v1/events`` answered without Flask's request cycle when all is well.

The extension sends most of its events one or a few at a time, and for such a request Flask's
request cycle (request context, routing, hooks, ``Response`` objects) costs more CPU than
validating and storing the event. :class:`EventsLane` is a WSGI middleware in front of the
Flask app. It answers the requests the Flask view would accept, that is an authenticated JSON
batch that the validation fast path loads, within the rate limits. It answers them with the
same status, body and headers, and does the same work through the same code:

- validation: :data:`server.schemas.FAST_PATH`;
- auth: :func:`server.auth.parse_bearer`, and ``EventStore.ingest`` with the token's hash,
  which checks the account in the script that stores the batch (no look-up before it);
- limits: :class:`server.ratelimit.EventLimits`, counted before the account is checked, as
  Flask counts them before its view authenticates;
- storage: ``EventStore.ingest``;
- the answer's body and the events metrics: :func:`server.api.events.answer`;
- request metrics and the access line: :func:`server.logs.record`;
- headers: :mod:`server.headers`, and CORS from flask-cors's own ``get_cors_headers`` with the
  options the app gives flask-cors.

Every other request goes to Flask unchanged (the body re-wound): a missing or wrong token (a
wrong one after the lane counted it against the limits and the store refused it), a
body that is not JSON, one that only marshmallow may judge (accept oddities or build the 422),
an oversized or chunked body, a preflight. Flask then answers it as before. What the lane
already did travels in the environ, so nothing is done twice:

- a request it counted against the limits is not counted again;
- a limit it found exceeded becomes Flask's 429;
- an error raised while storing (Redis unreachable: 503 with ``Retry-After``; anything else:
  500, logged) is raised again inside Flask rather than retried.

``tests/test_lane.py`` holds the lane's answers to Flask's, header by header.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from flask_cors.core import get_cors_headers, get_cors_options
from werkzeug.datastructures import EnvironHeaders

from recommender import users
from recommender.store import IngestResult, TokenRefused
from server import logs
from server.api import events as events_api
from server.auth import parse_bearer
from server.headers import API_CSP, JSON_MIME, SECURITY_HEADERS
from server.ratelimit import EVENTS_COUNTED
from server.schemas import FAST_PATH

PATH = "/v1/events"
# environ key: an exception the lane met while storing, raised again by Flask (server.app)
LANE_ERROR = "paperfeed.lane_error"
_STATIC_HEADERS = [
    *SECURITY_HEADERS.items(),
    ("Content-Security-Policy", API_CSP),
]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class EventsLane:
    """WSGI middleware: answers plain, valid ``POST /v1/events`` requests itself (see module).

    ``answered`` counts the requests it answered (per process), for tests and debugging.
    """

    def __init__(self, flask_app: Flask, app: WSGIApp, cors: dict[str, Any]) -> None:
        self.app = app
        self.state = flask_app.extensions["paperfeed"]  # read per request, as the view does
        self.cors = get_cors_options(flask_app, cors)
        self.answered = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        started = time.perf_counter()
        body = self._body(environ)
        if body is None:
            return self.app(environ, start_response)
        environ["wsgi.input"] = io.BytesIO(body)  # Flask reads it again if the lane passes
        result = self._ingest(environ, body)
        if result is None:
            return self.app(environ, start_response)
        return self._answer(environ, start_response, result, started)

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The request body if it is JSON of a plain length within the limit, else ``None``."""
        if environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if not JSON_MIME.match(mimetype):
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or not 0 < int(length) <= self.state.settings.max_body_bytes:
            return None
        body = environ["wsgi.input"].read(int(length))
        return body if len(body) == int(length) else None

    def _ingest(self, environ: dict[str, Any], body: bytes) -> IngestResult | None:
        """Validate, count, then store with the account's check; what was stored, or ``None``
        to let Flask answer."""
        try:
            data = json.loads(body)  # as Flask's JSON provider parses a body
        except (ValueError, RecursionError):
            return None
        st = self.state
        try:
            batch = FAST_PATH.load(data, st.settings, time.time())
            if batch is None:
                return None
            authorization = environ.get("HTTP_AUTHORIZATION", "")
            token = parse_bearer(authorization)
            if token is None:
                return None
            user_id = users.token_user(token)
            if user_id is None:
                return None
            breach = st.extras["event_limits"].hit(authorization, environ.get("REMOTE_ADDR"))
            environ[EVENTS_COUNTED] = breach
            if breach is not None:
                return None
            return st.store.ingest(user_id, batch["events"], token_hash=users.hash_token(token))
        except TokenRefused:  # Flask answers the 401
            return None
        except Exception as exc:  # Flask raises it again and answers 503 (Redis) or 500
            environ[LANE_ERROR] = exc
            return None

    def _answer(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        result: IngestResult,
        started: float,
    ) -> list[bytes]:
        out = events_api.answer(result)  # the view's body and metrics
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
        headers += _STATIC_HEADERS
        if "HTTP_ORIGIN" in environ:
            headers += get_cors_headers(self.cors, EnvironHeaders(environ), "POST").items()
        rid = logs.request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        headers.append(("X-Request-ID", rid))
        start_response("202 ACCEPTED", headers)
        logs.record("POST", PATH, 202, time.perf_counter() - started, rid)
        self.answered += 1
        return [out]
