"""The admin API (``/v1/admin``): retrain, follow a training job, list and activate models.

Every route takes ``Authorization: Bearer <PAPERFEED_ADMIN_TOKEN>``, checked in constant time
by :func:`server.auth.require_admin` before the view runs: no token is 401, any other token (a
user's included) is 403.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from recommender import compaction, coreadstore, jobs, modelstore, training
from server.auth import require_admin
from server.errors import Problem
from server.schemas import ProblemOut
from server.state import state

blp = Blueprint("admin", __name__, url_prefix="/v1/admin", description="Training and models")


@blp.record_once
def _install_erase_hook(setup: Any) -> None:
    # an erased user's compacted events are dropped by the next compaction, their factor row is
    # zeroed in every stored model version now, and the co-reading table is rebuilt without them
    extras = setup.app.extensions["paperfeed"].extras
    hooks = extras.setdefault("erase_hooks", [])
    for hook in (compaction.forget_user, modelstore.forget_user, coreadstore.forget_user):
        if hook not in hooks:
            hooks.append(hook)


@blp.before_request
def _admin_only() -> None:
    require_admin()


class RetrainOut(Schema):
    job_id = fields.String(required=True)
    created = fields.Boolean(
        required=True, metadata={"description": "False: a training was already queued/running."}
    )


class ProgressOut(Schema):
    stage = fields.String(required=True)
    fraction = fields.Float(required=True)


class JobOut(Schema):
    id = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": "queued, running, finished or failed"}
    )
    progress = fields.Nested(ProgressOut, allow_none=True)
    enqueued_at = fields.String(allow_none=True)
    started_at = fields.String(allow_none=True)
    ended_at = fields.String(allow_none=True)
    result = fields.Dict(
        allow_none=True, metadata={"description": "version, activated, gate, metrics, duration_s"}
    )
    error = fields.String(allow_none=True)


class ModelOut(Schema):
    version = fields.String(required=True)
    active = fields.Boolean(required=True)
    trained_at = fields.Float()
    stored_at = fields.Float()
    duration_s = fields.Float()
    users = fields.Integer()
    papers = fields.Integer()
    events = fields.Integer()
    gate = fields.String()
    metrics = fields.Dict()
    params = fields.Dict()


class ModelsOut(Schema):
    active = fields.String(allow_none=True, required=True)
    versions = fields.List(fields.Nested(ModelOut), required=True)


class ActivateOut(Schema):
    active = fields.String(required=True)


def _queue() -> Any:
    st = state()
    conn = st.extras.get("queue_redis")
    if conn is None:
        conn = st.extras["queue_redis"] = jobs.connect_queue(st.settings)
    return conn


_AUTH_ERRORS = {401: "No admin token", 403: "Not the admin token"}


def _auth_responses(view: Any) -> Any:
    for status, description in _AUTH_ERRORS.items():
        view = blp.alt_response(status, schema=ProblemOut, description=description)(view)
    return view


@blp.route("/retrain", methods=["POST"])
@blp.response(202, RetrainOut())
@_auth_responses
def retrain() -> dict:
    """Enqueue a training; if one is queued or running, its id is returned instead."""
    try:
        job_id, created = jobs.trigger(_queue(), state().settings, redis=state().redis)
    except training.TrainingBusy as busy:
        if busy.job_id is None:
            raise Problem(409, "a training is starting; try again in a moment") from None
        job_id, created = busy.job_id, False
    return {"job_id": job_id, "created": created}


@blp.route("/jobs/<string:job_id>", methods=["GET"])
@blp.response(200, JobOut())
@blp.alt_response(404, schema=ProblemOut, description="Unknown job")
@_auth_responses
def get_job(job_id: str) -> dict:
    """A training job: queued, running (with progress), finished (metrics) or failed (error)."""
    prefix = f"{state().settings.key_prefix}-"
    status = jobs.job_status(_queue(), job_id) if job_id.startswith(prefix) else None
    if status is None:
        raise Problem(404, f"no job {job_id[:100]!r}")
    return status


@blp.route("/models", methods=["GET"])
@blp.response(200, ModelsOut())
@_auth_responses
def list_models() -> dict:
    """Stored model versions, newest first, with metrics; ``active`` names the serving one."""
    st = state()
    versions = modelstore.list_versions(st.redis, st.keys)
    return {"active": modelstore.active_version(st.redis, st.keys), "versions": versions}


@blp.route("/models/<string:version>/activate", methods=["POST"])
@blp.response(200, ActivateOut())
@blp.alt_response(404, schema=ProblemOut, description="Unknown version")
@_auth_responses
def activate(version: str) -> dict:
    """Serve ``version`` from now on (rollback or roll forward); web workers swap within ~1 s."""
    st = state()
    try:
        modelstore.activate(st.redis, st.keys, version)
    except modelstore.ModelNotFound:
        raise Problem(404, f"no model version {version[:100]!r}") from None
    return {"active": version}
