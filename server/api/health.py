"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``: Redis answers)."""

from __future__ import annotations

from flask_smorest import Blueprint

from server.schemas import ProblemOut, StatusOut
from server.state import state

blp = Blueprint("health", __name__, description="Health checks")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, StatusOut())
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, StatusOut())
@blp.alt_response(503, schema=ProblemOut, description="Redis unreachable")
def readyz() -> dict:
    """Redis answers a PING."""
    state().redis.ping()
    return {"status": "ready"}
