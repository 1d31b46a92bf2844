"""Shared fixtures: a real Redis (127.0.0.1:6379 or ``PAPERFEED_TEST_REDIS_URL``), each test
isolated by its own key prefix whose keys are deleted afterwards (never FLUSHALL), the app, a
test client and a registered user.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from recommender.redisconn import connect
from recommender.settings import Settings

# the SMTP server (aiosmtpd) and mail-settings fixtures, for every test module
pytest_plugins = ["tests.mailbox"]

TEST_REDIS_URL = os.environ.get("PAPERFEED_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# RQ needs a single Redis: against a Cluster the job queue lives on its own URL
TEST_QUEUE_REDIS_URL = os.environ.get("PAPERFEED_TEST_QUEUE_REDIS_URL") or None
SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def delete_prefix(client: Any, prefix: str) -> None:
    """Delete every key under ``prefix`` (on every node of a cluster)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    # RQ names its own keys (rq:queue:<name>, rq:job:<id>, ...); ours carry the prefix
    keys += list(client.scan_iter(match=f"rq:*{prefix}*", count=1000))
    for key in keys:  # one by one: cluster keys live in different slots
        client.delete(key)
    # and RQ's registry of every queue's key, which is a set shared by all of them
    queues = [q for q in client.smembers("rq:queues") if prefix in str(q)]
    if queues:
        client.srem("rq:queues", *queues)


@pytest.fixture
def prefix() -> str:
    return f"pftest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(prefix: str) -> Iterator[Any]:
    client = connect(TEST_REDIS_URL, timeout_s=5.0)
    try:
        client.ping()
    except Exception as exc:  # pragma: no cover - environment problem, not a test result
        pytest.fail(f"no Redis at {TEST_REDIS_URL}: {exc}")
    yield client
    delete_prefix(client, prefix)
    client.close()
    if TEST_QUEUE_REDIS_URL:  # the job queue's own Redis holds this test's RQ keys
        queue = connect(TEST_QUEUE_REDIS_URL, timeout_s=5.0)
        delete_prefix(queue, prefix)
        queue.close()


@pytest.fixture
def settings(prefix: str) -> Settings:
    return Settings.from_env(
        {},
        redis_url=TEST_REDIS_URL,
        queue_redis_url=TEST_QUEUE_REDIS_URL,
        key_prefix=prefix,
        rate_limit_enabled=False,
        admin_token="admin-secret-for-tests",
    )


@pytest.fixture
def app(settings: Settings, redis_client: Any) -> Any:
    from server.app import create_app

    app = create_app(settings, redis=redis_client)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def user(client: Any) -> dict[str, Any]:
    """A registered user: ``{"user_id", "token", "auth"}`` (``auth`` is the header dict)."""
    body = client.post("/v1/users").get_json()
    return {**body, "auth": {"Authorization": f"Bearer {body['token']}"}}
