"""``POST /v1/events``: validate a batch of a user's events and store it durably in Redis.

The hottest endpoint, so it carries no more wrappers than it needs: the error answers are
documented with :func:`doc_only` (flask-smorest's ``alt_response`` adds a pass-through wrapper
per status code), and the view builds its small JSON answer with :func:`answer` rather than
dumping it through ``IngestOut``, which still documents it. Most requests are answered by the
events lane (:mod:`server.lane`) before they reach this view; it builds the same answer with
the same :func:`answer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from recommender.store import IngestResult, TokenRefused
from recommender.users import hash_token
from server import metrics
from server.auth import bearer_token, invalid_token, require_user
from server.schemas import EventBatchIn, IngestOut, ProblemOut
from server.state import state

blp = Blueprint("events", __name__, url_prefix="/v1", description="Reading events")


def answer(result: IngestResult) -> bytes:
    """Count a stored batch's outcome in the metrics and build the 202 body: what ``IngestOut``
    dumps through Flask's JSON provider (compact, keys sorted, a newline)."""
    metrics.child(metrics.EVENTS, "accepted").inc(result.accepted)
    metrics.child(metrics.EVENTS, "duplicate").inc(result.duplicates)
    return b'{"accepted":%d,"duplicates":%d}\n' % (result.accepted, result.duplicates)


def doc_only(decorator: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply a flask-smorest decorator for its OpenAPI entry only: the view keeps the
    documentation the decorator's wrapper carries, without the wrapper (which only calls it)."""

    def apply(view: Any) -> Any:
        view._apidoc = decorator(view)._apidoc
        return view

    return apply


@blp.route("/events", methods=["POST"])
@blp.arguments(EventBatchIn())
@blp.response(202, IngestOut())
@doc_only(blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token"))
@doc_only(blp.alt_response(413, schema=ProblemOut, description="Body over the size limit"))
@doc_only(blp.alt_response(415, schema=ProblemOut, description="Body is not JSON"))
@doc_only(blp.alt_response(422, schema=ProblemOut, description="Invalid events; none stored"))
@doc_only(blp.alt_response(429, schema=ProblemOut, description="Rate limited; see Retry-After"))
@doc_only(blp.alt_response(503, schema=ProblemOut, description="Redis away or refusing writes"))
def post_events(batch: dict) -> Any:
    """Record a batch of 1 to 500 events (idempotent by event id).

    The answer is sent only after Redis acknowledged the writes. Events whose ids were already
    stored for this user count as ``duplicates`` and are not stored again.
    """
    user_id = require_user()
    token_hash = hash_token(bearer_token() or "")
    try:  # the account is checked again where the batch is written (an erasure may have begun)
        result = state().store.ingest(user_id, batch["events"], token_hash=token_hash)
    except TokenRefused:
        raise invalid_token() from None
    # a Response, which flask-smorest passes through unchanged
    return Response(answer(result), status=202, mimetype="application/json")
