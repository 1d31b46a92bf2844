"""``POST /v1/events``: validate a batch of a user's events and store it durably in Redis."""

from __future__ import annotations

from flask_smorest import Blueprint

from server import metrics
from server.auth import require_user
from server.schemas import EventBatchIn, IngestOut, ProblemOut
from server.state import state

blp = Blueprint("events", __name__, url_prefix="/v1", description="Reading events")


@blp.route("/events", methods=["POST"])
@blp.arguments(EventBatchIn())
@blp.response(202, IngestOut())
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
@blp.alt_response(413, schema=ProblemOut, description="Body over the size limit")
@blp.alt_response(415, schema=ProblemOut, description="Body is not JSON")
@blp.alt_response(422, schema=ProblemOut, description="Invalid events; none stored")
@blp.alt_response(429, schema=ProblemOut, description="Rate limited; see Retry-After")
@blp.alt_response(503, schema=ProblemOut, description="Redis unreachable; retry")
def post_events(batch: dict) -> dict:
    """Record a batch of 1 to 500 events (idempotent by event id).

    The answer is sent only after Redis acknowledged the writes. Events whose ids were already
    stored for this user count as ``duplicates`` and are not stored again.
    """
    user_id = require_user()
    result = state().store.ingest(user_id, batch["events"])
    metrics.EVENTS.labels("accepted").inc(result.accepted)
    metrics.EVENTS.labels("duplicate").inc(result.duplicates)
    return {"accepted": result.accepted, "duplicates": result.duplicates}
