"""The admin API: the auth matrix, retrain (single flight), jobs, models and activation."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from rq import SimpleWorker

from recommender import jobs, modelstore
from recommender.keys import Keys
from recommender.settings import Settings
from tests.test_training_job import drop_queue, fill_two_communities

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer admin-secret-for-tests"}
ROUTES = [
    ("post", "/v1/admin/retrain"),
    ("get", "/v1/admin/jobs/whatever"),
    ("get", "/v1/admin/models"),
    ("post", "/v1/admin/models/some-version/activate"),
]


@pytest.fixture
def queue(settings: Settings) -> Any:
    conn = jobs.connect_queue(settings)
    q = jobs.train_queue(conn, settings)
    yield q
    drop_queue(conn, q)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_auth_matrix(client: Any, user: dict, queue: Any, method: str, path: str) -> None:
    call = getattr(client, method)
    missing = call(path)
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"
    assert call(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert call(path, headers=user["auth"]).status_code == 403
    assert call(path, headers=ADMIN).status_code in (200, 202, 404)


def test_admin_api_is_off_without_an_admin_token(settings: Settings, redis_client: Any) -> None:
    import dataclasses

    from server.app import create_app

    app = create_app(dataclasses.replace(settings, admin_token=None), redis=redis_client)
    response = app.test_client().get("/v1/admin/models", headers=ADMIN)
    assert response.status_code == 403


def test_retrain_returns_the_running_job(client: Any, queue: Any) -> None:
    first = client.post("/v1/admin/retrain", headers=ADMIN)
    assert first.status_code == 202
    body = first.get_json()
    assert body["created"]
    second = client.post("/v1/admin/retrain", headers=ADMIN).get_json()
    assert second == {"job_id": body["job_id"], "created": False}
    job = client.get(f"/v1/admin/jobs/{body['job_id']}", headers=ADMIN)
    assert job.status_code == 200
    assert job.get_json()["status"] == "queued"


def test_job_lifecycle_and_models(
    client: Any, queue: Any, settings: Settings, redis_client: Any
) -> None:
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    fill_two_communities(redis_client, keys, now=time.time())
    job_id = client.post("/v1/admin/retrain", headers=ADMIN).get_json()["job_id"]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job = client.get(f"/v1/admin/jobs/{job_id}", headers=ADMIN).get_json()
    assert job["status"] == "finished", job
    assert job["result"]["metrics"]["model"]["recall@20"] is not None
    assert job["result"]["duration_s"] > 0

    models = client.get("/v1/admin/models", headers=ADMIN).get_json()
    assert models["active"] == job["result"]["version"]
    assert models["versions"][0]["active"] is True
    assert "recall@20" in models["versions"][0]["metrics"]["model"]

    # a second version, then roll back to the first
    other = modelstore.StoredModel.from_ids(
        ["u"], ["p"], np.ones((1, 4), np.float32), np.ones((1, 4), np.float32)
    )
    second = modelstore.store(redis_client, keys, other, activate=True, keep=5)
    assert client.get("/v1/admin/models", headers=ADMIN).get_json()["active"] == second
    back = client.post(f"/v1/admin/models/{models['active']}/activate", headers=ADMIN)
    assert back.status_code == 200 and back.get_json() == {"active": models["active"]}
    assert modelstore.active_version(redis_client, keys) == models["active"]
    missing = client.post("/v1/admin/models/nope/activate", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def test_failed_job_shows_its_error(client: Any, queue: Any) -> None:
    job_id = client.post("/v1/admin/retrain", headers=ADMIN).get_json()["job_id"]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job = client.get(f"/v1/admin/jobs/{job_id}", headers=ADMIN).get_json()
    assert job["status"] == "failed"
    assert "no events" in job["error"]


def test_unknown_job_is_404(client: Any) -> None:
    assert client.get("/v1/admin/jobs/nope", headers=ADMIN).status_code == 404


def test_erasure_tombstones_the_user_for_compaction(
    client: Any, user: dict, redis_client: Any, settings: Settings
) -> None:
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    assert client.delete("/v1/me", headers=user["auth"]).status_code == 204
    from recommender.compaction import tombstone

    assert redis_client.sismember(keys.compact_tombstones(), tombstone(user["user_id"].encode()))


def test_erasure_zeroes_the_users_vector_in_stored_models(
    client: Any, user: dict, redis_client: Any, settings: Settings
) -> None:
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    ids = [user["user_id"], "someone-else"]
    stored = modelstore.StoredModel.from_ids(
        ids,
        ["arxiv:1"],
        np.ones((2, 4), np.float32),
        np.ones((1, 4), np.float32),
        meta={"params": {"factors": 4}},
    )
    version = modelstore.store(redis_client, keys, stored, activate=True, keep=5)
    assert client.delete("/v1/me", headers=user["auth"]).status_code == 204
    back = modelstore.load(redis_client, keys, version)
    assert not back.user_factors[back.user_row(user["user_id"])].any()
    assert back.user_factors[back.user_row("someone-else")].all()
