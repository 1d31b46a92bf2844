"""Redis outages answer 503 with Retry-After and recover; the OpenAPI document and docs page;
metrics; logs that never carry a token or a page URL; security and CORS headers."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings
from server.app import create_app
from server.embedded_redis import EmbeddedRedis, free_port
from tests.helpers import event, post, wait_for


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path, port=free_port())
    server.start()
    yield server
    server.stop()


def outage_app(own_redis, prefix, **settings):
    """An app on ``own_redis`` with a short Redis timeout and no rate limits."""
    return create_app(
        Settings.from_env(
            {},
            redis_url=own_redis.url,
            key_prefix=prefix,
            rate_limit_enabled=False,
            redis_timeout_s=0.5,
            **settings,
        )
    )


def test_redis_down_is_503_with_retry_after_then_recovers(own_redis, prefix):
    client = outage_app(own_redis, prefix, retry_after_s=7).test_client()
    user = client.post("/v1/users").get_json()
    auth = {"Authorization": f"Bearer {user['token']}"}
    assert post(client, {"auth": auth}, event()).status_code == 202

    own_redis.stop()
    for path, method in [
        ("/v1/events", "post"),
        ("/v1/trending", "get"),
        ("/readyz", "get"),
        ("/v1/users", "post"),
        ("/v1/me/history", "get"),
    ]:
        started = time.monotonic()
        kwargs = {"json": {"events": [event()]}} if path == "/v1/events" else {}
        response = getattr(client, method)(path, headers=auth, **kwargs)
        assert time.monotonic() - started < 3, path
        assert response.status_code == 503, path
        assert response.headers["Retry-After"] == "7"
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["type"].endswith("/store-unavailable")
    assert client.get("/healthz").status_code == 200

    own_redis.start()  # same port, same data directory: the AOF brings the data back
    assert client.get("/readyz").status_code == 200
    history = client.get("/v1/me/history", headers=auth).get_json()
    assert len(history["events"]) == 1


def assert_refused(response, reason: str, retry_after: str) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == retry_after
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/store-refuses-writes")
    assert f"refuses writes for now ({reason})" in problem["detail"]


def test_a_redis_that_refuses_writes_is_503_with_retry_after_and_keeps_nothing(
    own_redis, prefix, caplog
):
    """Redis answers but refuses every write: out of memory, unable to save (a failed snapshot),
    too few replicas. These were 500s with a traceback in the log; the extension retried them
    anyway (any 5xx), so nothing was lost, but a client was told the server is broken."""
    client = outage_app(own_redis, prefix, retry_after_s=9).test_client()
    user = client.post("/v1/users").get_json()
    reader = {"auth": {"Authorization": f"Bearer {user['token']}"}}
    admin = connect(own_redis.url)
    keys = Keys(prefix)

    def logged() -> int:
        return sum(admin.xlen(stream) for stream in keys.streams())

    snapshot = own_redis.dir / "dump.rdb"

    def saved(status: str) -> bool:
        return admin.info("persistence")["rdb_last_bgsave_status"] == status

    def saves_fail() -> None:  # a directory where the snapshot goes: BGSAVE fails, writes stop
        snapshot.unlink(missing_ok=True)
        snapshot.mkdir()
        admin.bgsave(schedule=True)
        wait_for(lambda: saved("err"), 10, "the snapshot to fail", interval_s=0.05)

    def saves_work() -> None:
        snapshot.rmdir()
        admin.bgsave(schedule=True)
        wait_for(lambda: saved("ok"), 10, "a snapshot to succeed", interval_s=0.05)

    cases = [
        ("it is out of memory", ("maxmemory", 1), ("maxmemory", 0)),
        (
            "too few replicas are in sync",
            ("min-replicas-to-write", 1),
            ("min-replicas-to-write", 0),
        ),
        ("it cannot save to disk", saves_fail, saves_work),
    ]
    caplog.set_level(logging.WARNING, logger="server.errors")
    for reason, refuse, allow in cases:
        before = logged()
        admin.config_set(*refuse) if isinstance(refuse, tuple) else refuse()
        sent = [event(), event("arxiv:2401.00002")]
        assert_refused(post(client, reader, sent[0]), reason, "9")  # one event
        assert_refused(post(client, reader, *sent), reason, "9")  # a batch
        assert_refused(client.post("/v1/users"), reason, "9")
        assert logged() == before, reason
        # readiness says so (a 200: Redis answers, and reads are still served)
        ready = client.get("/readyz")
        assert (ready.status_code, ready.get_json()) == (
            200,
            {"status": "degraded", "writes": f"refused: {reason}"},
        ), reason
        admin.config_set(*allow) if isinstance(allow, tuple) else allow()
        assert client.get("/readyz").get_json() == {"status": "ready"}, reason
        # nothing of the refused batch was stored: sent again, both count as new
        assert post(client, reader, *sent).get_json() == {"accepted": 2, "duplicates": 0}, reason
    admin.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "server.errors"]
    assert "redis refuses writes: it is out of memory (OutOfMemoryError)" in warnings
    assert "redis refuses writes: it cannot save to disk (ResponseError)" in warnings
    # one line each, never a traceback, and never the keys or values of the refused commands
    assert all(not r.exc_info for r in caplog.records if r.name == "server.errors")
    assert not any(user["user_id"] in line or prefix in line for line in warnings)


def test_after_a_failover_writes_are_503_and_the_old_primarys_connections_are_dropped(
    own_redis, prefix, tmp_path
):
    """A managed Redis fails over: the server the app's connections point at becomes a replica
    (READONLY). The app answers 503 and closes those connections, so the next ones are made
    afresh (to the new primary, where the address now leads)."""
    client = outage_app(own_redis, prefix).test_client()
    user = client.post("/v1/users").get_json()
    reader = {"auth": {"Authorization": f"Bearer {user['token']}"}}
    assert post(client, reader, event()).status_code == 202
    other = EmbeddedRedis(tmp_path / "other")
    other.start()
    admin, promoted = connect(own_redis.url), connect(other.url)
    try:

        def synced(replica) -> bool:
            return replica.info("replication").get("master_link_status") == "up"

        promoted.replicaof("127.0.0.1", own_redis.port)
        wait_for(lambda: synced(promoted), 10, "the replica to sync", interval_s=0.05)
        promoted.replicaof("NO", "ONE")  # the failover: it is the primary now ...
        admin.replicaof("127.0.0.1", other.port)  # ... and the old primary its replica
        wait_for(lambda: synced(admin), 10, "the old primary to follow", interval_s=0.05)
        mine = admin.client_id()

        def app_connections() -> set[int]:
            clients = admin.client_list()
            return {int(c["id"]) for c in clients if int(c["id"]) != mine and "M" not in c["flags"]}

        held = app_connections()
        assert held, "the app holds no connection to the old primary"
        assert_refused(post(client, reader, event()), "it is a read-only replica", "5")
        assert not held & app_connections(), "the app kept its connections to a replica"
        before = app_connections()
        assert client.get("/readyz").get_json() == {
            "status": "degraded",
            "writes": "refused: it is a read-only replica",
        }
        assert not app_connections() - before, "the readiness probe kept a connection"
        admin.replicaof("NO", "ONE")  # here the address still leads to it: writable again
        assert client.get("/readyz").get_json() == {"status": "ready"}
        assert post(client, reader, event()).status_code == 202
    finally:
        admin.close()
        promoted.close()
        other.stop()


def test_unreachable_redis_never_hangs(prefix):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings.from_env({}, redis_url=dead, key_prefix=prefix, redis_timeout_s=0.3)
    client = create_app(settings, redis=connect(dead, 0.3)).test_client()
    response = client.post("/v1/users")
    assert response.status_code == 503
    assert "Traceback" not in response.get_data(as_text=True)


def test_openapi_document_covers_every_route(client, app):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "prometheus_metrics") or rule.rule.startswith("/docs"):
            continue
        if rule.endpoint.startswith("web."):  # the HTML page, not part of the API
            continue
        if rule.rule in ("/openapi.json",) or rule.endpoint.startswith("api-docs"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    event_schema = spec["components"]["schemas"]["EventIn"]
    assert set(event_schema["required"]) == {"id", "type", "paper", "ts", "site"}
    assert client.get("/docs").status_code == 200


def test_metrics_count_requests_and_events(client, user):
    post(client, user, event())
    post(client, user, {**event(), "type": "bogus"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'paperfeed_events_total{outcome="accepted"}' in text
    assert 'paperfeed_events_total{outcome="rejected"}' in text
    assert 'paperfeed_http_requests_total{endpoint="/v1/events",method="POST",status="202"}' in text
    assert "paperfeed_http_request_seconds_bucket" in text


def test_logs_carry_request_id_but_no_token_or_url(client, user, caplog):
    caplog.set_level(logging.INFO)
    url = "https://arxiv.org/abs/2401.12345?private-query=1"
    response = client.post(
        "/v1/events",
        json={"events": [event(url)]},
        headers={**user["auth"], "X-Request-ID": "req-123"},
    )
    client.get("/v1/papers/https://arxiv.org/abs/2401.12345?private-query=2")
    assert response.headers["X-Request-ID"] == "req-123"
    lines = [r.getMessage() for r in caplog.records if r.name == "paperfeed.access"]
    assert any("endpoint=/v1/events" in line and "status=202" in line for line in lines)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert user["token"] not in text
    assert "private-query" not in text


def test_security_and_cors_headers(client, user):
    response = client.get("/v1/trending")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    ext = "chrome-extension://" + "a" * 32
    preflight = client.options(
        "/v1/events",
        headers={
            "Origin": ext,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == ext
    evil = client.get("/v1/trending", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    firefox = client.get(
        "/v1/trending", headers={"Origin": "moz-extension://0a1b2c3d-0000-4000-8000-123456789abc"}
    )
    assert "Access-Control-Allow-Origin" in firefox.headers


def test_recommendations_degrade_to_the_last_list_during_an_outage(own_redis, prefix):
    client = outage_app(own_redis, prefix).test_client()
    alice = client.post("/v1/users").get_json()
    bob = client.post("/v1/users").get_json()
    post(client, {"auth": {"Authorization": f"Bearer {bob['token']}"}}, event("arxiv:2401.00042"))
    auth = {"Authorization": f"Bearer {alice['token']}"}
    fresh = client.get("/v1/recommendations?limit=5", headers=auth).get_json()
    assert [i["paper"]["id"] for i in fresh["items"]] == ["arxiv:2401.00042"]
    assert not fresh.get("stale")

    own_redis.stop()
    stale = client.get("/v1/recommendations?limit=5", headers=auth)
    assert stale.status_code == 200
    assert stale.get_json()["stale"] is True
    assert stale.get_json()["items"] == fresh["items"]
    # a caller this process has not served, or another limit, gets the 503 problem
    other = client.get(
        "/v1/recommendations?limit=5", headers={"Authorization": f"Bearer {bob['token']}"}
    )
    assert other.status_code == 503 and "Retry-After" in other.headers
    assert client.get("/v1/recommendations?limit=6", headers=auth).status_code == 503

    own_redis.start()
    again = client.get("/v1/recommendations?limit=5", headers=auth).get_json()
    assert not again.get("stale")


def recommendations(client, who, limit=5):
    return client.get(
        f"/v1/recommendations?limit={limit}", headers={"Authorization": f"Bearer {who['token']}"}
    )


def test_no_process_serves_an_erased_users_last_list_during_an_outage(own_redis, prefix):
    # two apps on one Redis and prefix: two web processes, each with its own outage cache
    app_a, app_b = outage_app(own_redis, prefix), outage_app(own_redis, prefix)
    a, b = app_a.test_client(), app_b.test_client()
    alice, carol, bob = (a.post("/v1/users").get_json() for _ in range(3))
    post(a, {"auth": {"Authorization": f"Bearer {bob['token']}"}}, event("arxiv:2401.00042"))
    for client, who in ((a, alice), (b, alice), (a, carol)):
        assert recommendations(client, who).get_json()["items"], "something to cache"
    cache_a = app_a.extensions["paperfeed"].extras["last_served"]
    cache_a.erasures_every_s = 0  # read the erasures at every request, not once a second

    assert (
        b.delete("/v1/me", headers={"Authorization": f"Bearer {alice['token']}"}).status_code == 204
    )
    assert recommendations(a, carol).status_code == 200  # process A serves: it reads the erasure
    own_redis.stop()
    assert recommendations(b, alice).status_code == 503  # B erased her: dropped at once
    assert recommendations(a, alice).status_code == 503  # A learnt of it from Redis
    stale = recommendations(a, carol)  # everyone else still gets their last list
    assert stale.status_code == 200 and stale.get_json()["stale"] is True


def test_a_process_idle_before_an_outage_serves_no_stale_list(own_redis, prefix):
    app = outage_app(own_redis, prefix)
    client = app.test_client()
    alice = client.post("/v1/users").get_json()
    assert recommendations(client, alice).status_code == 200
    cache = app.extensions["paperfeed"].extras["last_served"]
    cache.erasures_grace_s = 2
    cache.erasures_every_s = 0  # (the grace must exceed the time between reads)
    time.sleep(3)  # idle for longer than the grace: erasures meanwhile would be unknown here
    own_redis.stop()
    assert recommendations(client, alice).status_code == 503
    own_redis.start()
    assert not recommendations(client, alice).get_json().get("stale")
    own_redis.stop()  # at once: this process read the erasures just before
    stale = recommendations(client, alice)
    assert stale.status_code == 200 and stale.get_json()["stale"] is True


def test_the_last_lists_are_bounded_in_number_and_in_size():
    from server.api.recommendations import LastServed

    answer = {"items": [{"paper": {"id": "arxiv:2401.00001", "title": "Ünïcode"}, "score": 0.1}]}
    size = len(json.dumps(answer, separators=(",", ":")).encode())  # what one answer takes
    cache = LastServed(size=3, max_bytes=10 * size)
    for user in "abcd":
        cache.put((user, 20), user, answer)
    assert cache.get(("a", 20)) is None  # the oldest of four, beyond 3 answers
    assert cache.get(("d", 20)) == answer  # the text round-trips to the same answer
    cache.put(("b", 20), "b", {"items": []})  # replaced, not added
    assert cache.get(("b", 20)) == {"items": []}
    cache = LastServed(size=100, max_bytes=2 * size + 10)
    for user in "abc":
        cache.put((user, 20), user, answer)
    assert [cache.get((u, 20)) is None for u in "abc"] == [True, False, False]
    cache.put(
        ("big", 20), "big", {"items": [answer] * 10}
    )  # larger than the budget: kept by nobody
    assert all(cache.get((u, 20)) is None for u in ("b", "c", "big"))
    # forgetting a user drops each of their lists (every limit) and what they took of the budget
    cache = LastServed(size=100, max_bytes=2 * size + 10)
    cache.put(("token-a", 20), "user-a", answer)
    cache.put(("token-a", 5), "user-a", answer)
    assert cache.forget(["user-a", "nobody"]) == 2
    assert cache.get(("token-a", 20)) is None and cache.get(("token-a", 5)) is None
    cache.put(("token-b", 20), "user-b", answer)
    cache.put(("token-c", 20), "user-c", answer)
    assert cache.get(("token-b", 20)) == answer  # the budget was given back: both fit


def test_erasure_announcements_name_a_digest_and_last_as_long_as_stale_lists(redis_client, prefix):
    from recommender.keys import Keys
    from server.api.recommendations import STALE_FOR_S, announce_erasure, erased_digest

    keys = Keys(prefix)
    announce_erasure(redis_client, keys, "user-old", 1_000_000.0)
    announce_erasure(redis_client, keys, "user-new", 1_000_000.0 + STALE_FOR_S + 1)
    held = redis_client.zrange(keys.served_erasures(), 0, -1)
    assert held == [erased_digest("user-new")]  # the first is older than any stale list
    assert "user-new" not in held[0]
