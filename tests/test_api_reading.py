"""Trending, papers, history, export and erasure through the real app on a real Redis."""

from __future__ import annotations

import time

import pytest

from tests.helpers import event, keys_under, mentions, post

pytestmark = pytest.mark.integration


def register(client) -> dict:
    body = client.post("/v1/users").get_json()
    return {**body, "auth": {"Authorization": f"Bearer {body['token']}"}}


def test_trending_counts_distinct_readers_and_decays(client, app):
    now = time.time()
    readers = [register(client) for _ in range(3)]
    for r in readers:
        post(client, r, event("arxiv:2401.00001", ts=now, title="Three readers"))
    # one enthusiastic reader opening a paper many times counts once
    fan = register(client)
    for _ in range(5):
        post(client, fan, event("arxiv:2401.00002", ts=now, title="One fan"))
    old = register(client)
    post(client, old, event("arxiv:2401.00003", ts=now - 96 * 3600, title="Old news"))
    body = client.get("/v1/trending?limit=10").get_json()
    ids = [item["paper"]["id"] for item in body["items"]]
    assert ids == ["arxiv:2401.00001", "arxiv:2401.00002", "arxiv:2401.00003"]
    scores = [item["score"] for item in body["items"]]
    assert abs(scores[0] - 3) < 0.01 and abs(scores[1] - 1) < 0.01
    # two half-lives ago: a quarter of a reader left
    assert abs(scores[2] - 0.25) < 0.01
    assert body["items"][0]["paper"]["title"] == "Three readers"
    assert body["items"][0]["paper"]["readers"] == 3
    assert body["total"] == 3


def test_trending_pagination(client, user):
    now = time.time()
    for i in range(5):
        post(client, user, event(f"arxiv:2401.0001{i}", ts=now - i * 3600))
    first = client.get("/v1/trending?limit=2").get_json()
    second = client.get("/v1/trending?limit=2&offset=2").get_json()
    assert [i["paper"]["id"] for i in first["items"]] == ["arxiv:2401.00010", "arxiv:2401.00011"]
    assert [i["paper"]["id"] for i in second["items"]] == ["arxiv:2401.00012", "arxiv:2401.00013"]
    assert first["total"] == 5
    bad = client.get("/v1/trending?limit=0")
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["parameter"] == "limit"
    assert client.get("/v1/trending?colour=red").status_code == 422


def test_paper_by_any_form_of_its_id(client, user):
    post(
        client,
        user,
        event("https://arxiv.org/abs/2401.12345v3", title="A paper", authors=["A. B."]),
    )
    for form in ("arxiv:2401.12345", "2401.12345v2", "https://arxiv.org/pdf/2401.12345"):
        response = client.get(f"/v1/papers/{form}")
        assert response.status_code == 200, form
        body = response.get_json()
        assert body["id"] == "arxiv:2401.12345"
        assert body["title"] == "A paper"
        assert body["authors"] == ["A. B."]
        assert body["url"] == "https://arxiv.org/abs/2401.12345"
    assert client.get("/v1/papers/arxiv:2401.99999").status_code == 404
    assert client.get("/v1/papers/not-a-paper").status_code == 404


def test_catalogue_keeps_no_page_url(client, user, redis_client, prefix):
    url = "https://arxiv.org/pdf/2401.12345v2.pdf?utm_source=secret-campaign"
    post(client, user, event(url, title="T"))
    for key in keys_under(redis_client, prefix):
        assert not mentions(redis_client, key, "secret-campaign"), key


def test_first_reader_title_wins_until_a_quorum_agrees(client):
    pid = "arxiv:2401.55555"
    post(client, register(client), event(pid, title="The real title"))
    vandal = register(client)
    post(client, vandal, event(pid, title="BUY CHEAP PILLS"))
    post(client, vandal, event(pid, title="BUY CHEAP PILLS", kind="click"))
    assert client.get(f"/v1/papers/{pid}").get_json()["title"] == "The real title"
    # A corrected title that several distinct readers agree on replaces the first one.
    for _ in range(3):
        post(client, register(client), event(pid, title="The corrected title"))
    assert client.get(f"/v1/papers/{pid}").get_json()["title"] == "The corrected title"


def test_history_newest_first_with_titles(client, user):
    now = time.time()
    post(client, user, event("arxiv:2401.00001", ts=now - 60, title="First"))
    post(client, user, event("arxiv:2401.00002", "click", ts=now, title="Second"))
    body = client.get("/v1/me/history", headers=user["auth"]).get_json()
    assert [e["paper"]["id"] for e in body["events"]] == ["arxiv:2401.00002", "arxiv:2401.00001"]
    assert body["events"][0]["paper"]["title"] == "Second"
    assert body["events"][0]["type"] == "click"
    assert set(body["events"][0]) >= {"id", "type", "paper", "ts"}
    limited = client.get("/v1/me/history?limit=1", headers=user["auth"]).get_json()
    assert len(limited["events"]) == 1


def test_users_never_see_each_other(client, user):
    post(client, user, event("arxiv:2401.00001"))
    other = register(client)
    assert client.get("/v1/me/history", headers=other["auth"]).get_json() == {"events": []}
    assert client.get("/v1/me/export", headers=other["auth"]).get_json()["events"] == []
    assert client.delete("/v1/me", headers=other["auth"]).status_code == 204
    assert len(client.get("/v1/me/history", headers=user["auth"]).get_json()["events"]) == 1


def test_export_holds_everything(client, user):
    post(client, user, event("arxiv:2401.00001"), event("arxiv:2401.00002", "dismiss"))
    body = client.get("/v1/me/export", headers=user["auth"]).get_json()
    assert body["user_id"] == user["user_id"]
    assert {e["paper"]["id"] for e in body["events"]} == {"arxiv:2401.00001", "arxiv:2401.00002"}
    assert [s["paper_id"] for s in body["seen"]] == ["arxiv:2401.00001"]
    assert [d["paper_id"] for d in body["dismissed"]] == ["arxiv:2401.00002"]
    assert "token_hash" not in body["profile"]


def test_delete_leaves_nothing_of_the_user(client, user, redis_client, prefix):
    now = time.time()
    post(client, user, event("arxiv:2401.00001", ts=now, title="Mine"), event("arxiv:2401.00002"))
    post(client, user, event("arxiv:2401.00003", "dismiss"))
    bystander = register(client)
    post(client, bystander, event("arxiv:2401.00001", ts=now))
    assert client.delete("/v1/me", headers=user["auth"]).status_code == 204
    leftovers = [
        key
        for key in keys_under(redis_client, prefix)
        if mentions(redis_client, key, user["user_id"])
    ]
    assert leftovers == []
    # their reading no longer counts in public aggregates; the bystander's does
    trending = client.get("/v1/trending").get_json()
    assert [i["paper"]["id"] for i in trending["items"]] == ["arxiv:2401.00001"]
    assert abs(trending["items"][0]["score"] - 1) < 0.01
    assert trending["items"][0]["paper"]["readers"] == 1
    # the token is dead
    assert client.get("/v1/me/history", headers=user["auth"]).status_code == 401
    assert len(client.get("/v1/me/history", headers=bystander["auth"]).get_json()["events"]) == 1


def test_delete_takes_back_a_readers_weight_as_it_was_added(client, user):
    # A reader's trending weight is added at their first read; re-reading later moves their
    # seen time but adds nothing, so erasure must take back the first read's weight.
    now = time.time()
    post(client, user, event("arxiv:2401.00001", ts=now - 2 * 86400))
    post(client, user, event("arxiv:2401.00001", ts=now))
    post(client, register(client), event("arxiv:2401.00001", ts=now))
    before = client.get("/v1/trending").get_json()["items"][0]["score"]
    assert abs(before - 1.5) < 0.01  # half a reader two days (one half-life) ago, and one now
    assert client.delete("/v1/me", headers=user["auth"]).status_code == 204
    for window in ("main", "day", "week"):
        items = client.get(f"/v1/trending?window={window}").get_json()["items"]
        assert abs(items[0]["score"] - 1) < 0.01, window


def test_today_and_this_week_views_and_rising(client):
    now = time.time()
    for _ in range(6):
        post(client, register(client), event("arxiv:2401.00001", ts=now - 5 * 86400))
    for _ in range(3):
        post(client, register(client), event("arxiv:2401.00002", ts=now - 60))
    day = client.get("/v1/trending?window=day").get_json()
    week = client.get("/v1/trending?window=week").get_json()
    assert [i["paper"]["id"] for i in day["items"]] == ["arxiv:2401.00002", "arxiv:2401.00001"]
    assert [i["paper"]["id"] for i in week["items"]] == ["arxiv:2401.00001", "arxiv:2401.00002"]
    assert day["half_life_hours"] == 12 and week["half_life_hours"] == 168
    rising = {i["paper"]["id"]: i["rising"] for i in day["items"]}
    assert rising == {"arxiv:2401.00002": True, "arxiv:2401.00001": False}
    assert abs(week["items"][0]["score"] - 6 * 2 ** (-120 / 168)) < 0.01
    assert client.get("/v1/trending?window=month").status_code == 422


HOSTILE_TITLES = [
    "<script>window.pwned = 1</script>Attention",
    '"><img src=x onerror="window.pwned=2">',
    "\u202eevil right-to-left override\u202c and \u05e9\u05dc\u05d5\u05dd",
    "W" * 1000,
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_titles_are_stored_verbatim_and_served_as_json(client, user, title):
    post(client, user, event("arxiv:2401.06666", title=title))
    response = client.get("/v1/papers/arxiv:2401.06666")
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.get_json()["title"] == " ".join(title.split())
    trending = client.get("/v1/trending").get_json()
    assert trending["items"][0]["paper"]["title"] == " ".join(title.split())
