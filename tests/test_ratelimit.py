"""Rate limits per client address (registration) and per token (events, reads): 429 problems
with Retry-After, counters in Redis that never hold a token."""

from __future__ import annotations

import pytest

from recommender.settings import Settings, SettingsError
from server.app import create_app
from tests.conftest import TEST_REDIS_URL
from tests.helpers import event, keys_under, post

pytestmark = pytest.mark.integration


@pytest.fixture
def limited_client(prefix, redis_client):
    settings = Settings.from_env(
        {},
        redis_url=TEST_REDIS_URL,
        key_prefix=prefix,
        rate_limit_enabled=True,
        rate_limit_register="2 per minute",
        rate_limit_events="3 per minute",
        rate_limit_reads="2 per minute",
        rate_limit_per_address="1000 per minute",
    )
    return create_app(settings, redis=redis_client).test_client()


def auth(body):
    return {**body, "auth": {"Authorization": f"Bearer {body['token']}"}}


def test_registration_is_limited_per_address(limited_client):
    assert limited_client.post("/v1/users").status_code == 201
    assert limited_client.post("/v1/users").status_code == 201
    third = limited_client.post("/v1/users")
    assert third.status_code == 429
    assert third.mimetype == "application/problem+json"
    assert int(third.headers["Retry-After"]) > 0
    assert third.get_json()["type"].endswith("/rate-limited")
    other_address = limited_client.post("/v1/users", environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other_address.status_code == 201


def test_events_and_reads_are_limited_per_token(limited_client, redis_client, prefix):
    alice = auth(limited_client.post("/v1/users").get_json())
    bob = auth(limited_client.post("/v1/users").get_json())
    for _ in range(3):
        assert post(limited_client, alice, event()).status_code == 202
    blocked = post(limited_client, alice, event())
    assert blocked.status_code == 429
    assert "Retry-After" in blocked.headers
    assert post(limited_client, bob, event()).status_code == 202
    for _ in range(2):
        assert limited_client.get("/v1/me/history", headers=alice["auth"]).status_code == 200
    assert limited_client.get("/v1/me/history", headers=alice["auth"]).status_code == 429
    for key in keys_under(redis_client, prefix):
        assert alice["token"] not in key and bob["token"] not in key
    assert any(":ratelimit" in key for key in keys_under(redis_client, prefix))


def test_events_count_once_whether_the_lane_or_flask_answers(limited_client):
    """The events lane (server/lane.py) answers valid batches and hands the rest to Flask:
    both count against the same limit, each request once."""
    alice = auth(limited_client.post("/v1/users").get_json())
    lane = limited_client.application.wsgi_app
    assert post(limited_client, alice).status_code == 422  # no event: Flask answers
    assert post(limited_client, alice, event()).status_code == 202
    assert post(limited_client, alice, event()).status_code == 202
    assert lane.answered == 2
    blocked = post(limited_client, alice, event())
    assert blocked.status_code == 429
    assert blocked.mimetype == "application/problem+json"
    assert blocked.get_json()["detail"] == "3 per 1 minute"
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.headers["X-Request-ID"] != "-"
    assert lane.answered == 2


def test_a_refused_token_counts_once_too(limited_client):
    """The lane counts a well-formed token before the store checks it against the account;
    when the store refuses it, Flask answers the 401 without counting the request again."""
    alice = auth(limited_client.post("/v1/users").get_json())
    token = alice["token"]
    wrong = auth({"token": token[:-1] + ("A" if token[-1] != "A" else "B")})
    for _ in range(3):
        assert post(limited_client, wrong, event()).status_code == 401
    assert post(limited_client, wrong, event()).status_code == 429
    assert post(limited_client, alice, event()).status_code == 202  # her own token's count


def test_bad_limit_setting_fails_at_start(prefix, redis_client):
    settings = Settings.from_env(
        {}, redis_url="redis://x", key_prefix=prefix, rate_limit_events="lots please"
    )
    with pytest.raises(SettingsError, match="RATE_LIMIT_EVENTS"):
        create_app(settings, redis=redis_client)


def test_every_limited_endpoint_exists(app):
    from server.ratelimit import LIMITS

    missing = set(LIMITS) - set(app.view_functions)
    assert not missing, f"LIMITS names endpoints the app lacks: {sorted(missing)}"
