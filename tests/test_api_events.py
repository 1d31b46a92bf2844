"""Registration and event ingestion through the real app on a real Redis."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.helpers import event, keys_under, post

pytestmark = pytest.mark.integration


def test_register_returns_id_and_token_stored_only_as_hash(client, redis_client, settings):
    response = client.post("/v1/users")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"user_id", "token"}
    assert response.headers["Cache-Control"] == "no-store"
    stored = redis_client.hgetall(f"{settings.key_prefix}:{{u:{body['user_id']}}}:user")
    assert body["token"] not in json.dumps(stored)
    for key in keys_under(redis_client, settings.key_prefix):
        assert body["token"] not in key


def test_events_are_accepted_then_counted_as_duplicates(client, user, redis_client, prefix):
    batch = [event("arxiv:2401.12345"), event("https://arxiv.org/pdf/2402.00001v3.pdf", "click")]
    first = post(client, user, *batch)
    assert first.status_code == 202
    assert first.get_json() == {"accepted": 2, "duplicates": 0}
    again = post(client, user, *batch)
    assert again.get_json() == {"accepted": 0, "duplicates": 2}
    stream = redis_client.xrange(f"{prefix}:{{log:0}}:stream")
    assert [fields["p"] for _, fields in stream] == ["arxiv:2401.12345", "arxiv:2402.00001"]
    assert [fields["k"] for _, fields in stream] == ["open", "click"]


def test_same_event_twice_in_one_batch_counts_once(client, user):
    ev = event()
    assert post(client, user, ev, ev).get_json() == {"accepted": 1, "duplicates": 1}


def test_event_ids_are_per_user(client, user, redis_client):
    other = client.post("/v1/users").get_json()
    other_auth = {**other, "auth": {"Authorization": f"Bearer {other['token']}"}}
    ev = event()
    assert post(client, user, ev).get_json()["accepted"] == 1
    # Another user sending the same UUID cannot block or overwrite the first user's event.
    assert post(client, other_auth, ev).get_json()["accepted"] == 1


def test_bad_batch_names_every_bad_field_and_stores_nothing(client, user, redis_client, prefix):
    good = event()
    bad_url = event("https://example.com/blog")
    bad_kind = {**event(), "type": "like"}
    unknown = {**event(), "colour": "red"}
    future = event(ts=time.time() + 3600)
    ancient = event(ts=time.time() - 400 * 86400)
    no_paper = {**event(), "paper": {"title": "only a title"}}
    response = post(client, user, good, bad_url, bad_kind, unknown, future, ancient, no_paper)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422
    assert problem["type"].endswith("/validation-error")
    pointers = {e["pointer"] for e in problem["errors"]}
    assert pointers == {
        "/events/1/paper/url",
        "/events/2/type",
        "/events/3/colour",
        "/events/4/ts",
        "/events/5/ts",
        "/events/6/paper/id",
    }
    details = {e["pointer"]: e["detail"] for e in problem["errors"]}
    assert "ahead of the server clock" in details["/events/4/ts"]
    assert "retention window" in details["/events/5/ts"]
    assert not redis_client.exists(f"{prefix}:{{log:0}}:stream")
    assert client.get("/v1/trending").get_json()["total"] == 0


def test_id_and_url_must_agree(client, user):
    ev = event({"id": "arxiv:2401.12345", "url": "https://arxiv.org/abs/2401.99999"})
    response = post(client, user, ev)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/events/0/paper/url"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "x" * 1001),
        ("abstract", "x" * 10_001),
        ("authors", ["a"] * 101),
        ("url", "https://arxiv.org/abs/2401.12345?" + "q" * 2100),
    ],
)
def test_every_string_is_bounded(client, user, field, value):
    paper: dict[str, Any] = {"id": "arxiv:2401.12345", field: value}
    if field == "url":
        paper = {field: value}
    response = post(client, user, event(paper))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == f"/events/0/paper/{field}"


def test_batch_size_bounds(client, user, settings):
    assert post(client, user).status_code == 422
    many = [event() for _ in range(settings.max_batch + 1)]
    response = client.post("/v1/events", json={"events": many}, headers=user["auth"])
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/events"
    ok = [event() for _ in range(settings.max_batch)]
    response = client.post("/v1/events", json={"events": ok}, headers=user["auth"])
    assert response.status_code == 202
    assert response.get_json()["accepted"] == settings.max_batch


def test_site_must_be_a_host_name(client, user):
    response = post(client, user, {**event(), "site": "https://arxiv.org/list?q=secret"})
    assert response.get_json()["errors"][0]["pointer"] == "/events/0/site"


def test_no_or_bad_token_is_401(client, user):
    body = {"events": [event()]}
    missing = client.post("/v1/events", json=body)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.mimetype == "application/problem+json"
    forged = user["token"][:-4] + "AAAA"
    wrong = client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {forged}"})
    assert wrong.status_code == 401
    basic = client.post("/v1/events", json=body, headers={"Authorization": "Basic dXNlcg=="})
    assert basic.status_code == 401


def test_malformed_json_is_400(client, user):
    response = client.post(
        "/v1/events", data="{not json", content_type="application/json", headers=user["auth"]
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_non_json_body_is_415(client, user):
    response = client.post(
        "/v1/events", data="events=1", content_type="text/plain", headers=user["auth"]
    )
    assert response.status_code == 415
    assert response.get_json()["status"] == 415


def test_body_over_limit_is_413(client, user, settings):
    big = "x" * (settings.max_body_bytes + 10)
    response = client.post(
        "/v1/events", data=big, content_type="application/json", headers=user["auth"]
    )
    assert response.status_code == 413
    assert str(settings.max_body_bytes) in response.get_json()["detail"]


def test_wrong_method_is_405_and_unknown_path_404(client):
    response = client.get("/v1/events")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.mimetype == "application/problem+json"
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def test_event_ids_must_be_uuids(client, user):
    response = post(client, user, {**event(), "id": "not-a-uuid"})
    assert response.get_json()["errors"][0]["pointer"] == "/events/0/id"
    assert post(client, user, {**event(), "id": str(uuid.uuid4()).upper()}).status_code == 202


def test_retention_trim_drops_old_entries(client, user, app, redis_client, prefix):
    store = app.extensions["paperfeed"].store
    post(client, user, event())
    assert store.trim(now=time.time()) == 0
    assert store.trim(now=time.time() + store.settings.retention_s + 10) == 1
    assert redis_client.xlen(f"{prefix}:{{log:0}}:stream") == 0
    assert redis_client.zcard(f"{prefix}:{{log:0}}:dedupe") == 0


def test_retention_is_enforced_on_write(redis_client, prefix):
    from recommender.settings import Settings
    from recommender.store import Event, EventStore

    settings = Settings.from_env({}, key_prefix=prefix, retention_days=1.5 / 86400)
    store = EventStore(redis_client, settings)

    def ev(paper: str) -> Event:
        return Event(
            id=str(uuid.uuid4()), kind="open", paper_id=paper, ts=int(time.time()), site="arxiv.org"
        )

    events = [ev("arxiv:2401.00001"), ev("arxiv:2401.00002")]
    ids = [e.id for e in events]
    store.ingest("alice", events[:1])
    time.sleep(2.6)  # the first event leaves the 1.5-second window (whole seconds)
    assert store.ingest("alice", events[1:]).accepted == 1
    stream = redis_client.xrange(f"{prefix}:{{log:0}}:stream")
    assert [fields["p"] for _, fields in stream] == ["arxiv:2401.00002"]
    assert redis_client.zrange(f"{prefix}:{{log:0}}:dedupe", 0, -1) == [f"e:alice:{ids[1]}"]
    assert redis_client.zrange(f"{prefix}:{{u:alice}}:seen", 0, -1) == ["arxiv:2401.00002"]
    assert redis_client.zcard(f"{prefix}:{{u:alice}}:entries") == 1
