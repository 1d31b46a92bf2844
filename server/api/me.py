"""The caller's own data: history, export and erasure (``/v1/me``)."""

from __future__ import annotations

import time

from flask import Response
from flask_smorest import Blueprint
from marshmallow import RAISE

from server.api import recommendations
from server.auth import require_user
from server.schemas import ExportOut, HistoryArgs, HistoryOut, ProblemOut
from server.state import state

blp = Blueprint("me", __name__, url_prefix="/v1/me", description="The caller's own data")


@blp.route("/history", methods=["GET"])
@blp.arguments(HistoryArgs(), location="query", unknown=RAISE)
@blp.response(200, HistoryOut())
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
@blp.alt_response(429, schema=ProblemOut, description="Rate limited")
def history(args: dict) -> dict:
    """The caller's latest events, newest first, with each paper's title."""
    return {"events": state().store.history(require_user(), args["limit"])}


@blp.route("/export", methods=["GET"])
@blp.response(200, ExportOut())
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
@blp.alt_response(429, schema=ProblemOut, description="Rate limited")
def export() -> dict:
    """Everything Paperfeed holds about the caller, as one JSON document."""
    return state().store.export(require_user())


@blp.route("", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
@blp.alt_response(429, schema=ProblemOut, description="Rate limited")
def erase() -> Response:
    """Erase the caller: their events leave the log and every derived key; the token dies."""
    user_id = require_user()
    st = state()
    # first, so that a failed erasure the user retries announces again
    recommendations.forget_erased(user_id, time.time())
    st.store.erase(user_id)
    for hook in st.extras.get("erase_hooks", ()):
        hook(st.redis, st.keys, user_id)
    return Response(status=204)
