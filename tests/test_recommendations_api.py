"""``GET /v1/recommendations``: auth, cold start, personalised after training, exclusions."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest

from recommender import training
from recommender.settings import Settings
from tests.helpers import event, post

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, als_factors=8, als_iterations=10, model_poll_s=0.0)


def register(client: Any) -> dict:
    body = client.post("/v1/users").get_json()
    return {**body, "auth": {"Authorization": f"Bearer {body['token']}"}}


def paper(p: int) -> str:
    return f"arxiv:2401.{10000 + p}"


def community(client: Any, users: int = 30) -> list[dict]:
    """Users in two groups, each reading six of the ten papers of its own half, days ago."""
    out = []
    now = time.time()
    rng = np.random.default_rng(7)
    for u in range(users):
        reader = register(client)
        group = u % 2
        papers = (group + 2 * rng.choice(10, size=6, replace=False)).tolist()
        events = [
            event(paper(p), ts=now - 3 * 86400 + 60 * j, title=f"Paper {p}")
            for j, p in enumerate(papers)
        ]
        assert post(client, reader, *events).status_code in (200, 202)
        out.append(reader)
    return out


def test_needs_a_user_token(client: Any) -> None:
    assert client.get("/v1/recommendations").status_code == 401
    bad = client.get("/v1/recommendations", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_bad_limit_is_422(client: Any, user: dict) -> None:
    response = client.get("/v1/recommendations?limit=0", headers=user["auth"])
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_cold_start_is_global_trending(client: Any, user: dict) -> None:
    community(client, users=6)
    body = client.get("/v1/recommendations?limit=5", headers=user["auth"]).get_json()
    assert body["personalised"] is False and body["model_version"] is None
    assert len(body["items"]) == 5
    trending = client.get("/v1/trending?limit=5").get_json()["items"]
    assert [i["paper"]["id"] for i in body["items"]] == [i["paper"]["id"] for i in trending]
    assert {i["reason"] for i in body["items"]} == {"trending now"}
    assert body["items"][0]["paper"]["title"].startswith("Paper ")


def test_personalised_after_training_and_exclusions(
    client: Any, redis_client: Any, settings: Settings
) -> None:
    readers = community(client)
    report = training.run_training(redis_client, settings)
    me = readers[0]  # group 0
    body = client.get("/v1/recommendations?limit=10", headers=me["auth"]).get_json()
    assert body["personalised"] is True, (body, report)
    assert body["model_version"] == report["version"]
    ids = [i["paper"]["id"] for i in body["items"]]
    history = client.get("/v1/me/history", headers=me["auth"]).get_json()["events"]
    assert not set(ids) & {e["paper"]["id"] for e in history}
    lifted = [i for i in body["items"] if i["reason"].startswith("because you read Paper ")]
    assert lifted
    read_titles = {f"Paper {int(e['paper']['id'][-5:]) - 10000}" for e in history}
    for item in lifted:  # lifted papers are the user's community's, explained by a read paper
        assert int(item["paper"]["id"][-5:]) % 2 == 0
        assert item["reason"].removeprefix("because you read ") in read_titles
    for item in body["items"]:
        assert set(item) == {"paper", "score", "reason"}
        assert {"id", "title", "url", "authors"} <= set(item["paper"])

    # open the first, dismiss the second: neither comes back
    post(client, me, event(ids[0]), event(ids[1], kind="dismiss"))
    again = client.get("/v1/recommendations?limit=20", headers=me["auth"]).get_json()
    assert not {ids[0], ids[1]} & {i["paper"]["id"] for i in again["items"]}
    assert again["personalised"] is True  # folded in with the new events


def test_new_user_after_training_is_personalised(
    client: Any, redis_client: Any, settings: Settings
) -> None:
    community(client)
    training.run_training(redis_client, settings)
    newcomer = register(client)
    post(client, newcomer, *[event(paper(p)) for p in (1, 3, 5)])
    body = client.get("/v1/recommendations?limit=8", headers=newcomer["auth"]).get_json()
    assert body["personalised"] is True
    lifted = [i for i in body["items"] if i["reason"].startswith("because you read")]
    assert lifted
    odd = sum(int(i["paper"]["id"][-5:]) % 2 == 1 for i in lifted)
    assert odd > len(lifted) / 2  # mostly the community of what they read
