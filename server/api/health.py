"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``: Redis answers, and
whether it takes writes)."""

from __future__ import annotations

from flask_smorest import Blueprint
from redis.exceptions import RedisError

from recommender.redisconn import refused_write
from server.errors import drop_connections_to_a_replica
from server.schemas import ProblemOut, StatusOut
from server.state import state

blp = Blueprint("health", __name__, description="Health checks")

# The readiness probe's key expires after this long: nothing reads it.
PROBE_TTL_MS = 60_000


@blp.route("/healthz", methods=["GET"])
@blp.response(200, StatusOut())
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, StatusOut())
@blp.alt_response(503, schema=ProblemOut, description="Redis unreachable")
def readyz() -> dict:
    """Redis answers: ``ready``, or ``degraded`` with ``writes`` saying why it refuses them.

    The probe writes one short-lived key, so a Redis that answers but refuses every event (out
    of memory, unable to save, a replica after a failover, too few replicas in sync) is told
    apart from a healthy one. It stays a 200: reads are still served, and every web process
    would fail alike, so taking them out of a load balancer would only stop the reads too.
    """
    app = state()
    try:
        app.redis.set(app.keys.readiness_probe(), "1", px=PROBE_TTL_MS)
    except RedisError as exc:
        reason = refused_write(exc)
        if reason is None:
            raise  # unreachable: the 503 of every endpoint
        drop_connections_to_a_replica(exc)
        return {"status": "degraded", "writes": f"refused: {reason}"}
    return {"status": "ready"}
