"""The co-reading table on the real Redis: built from the log, published, erased, served."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest
from rq import SimpleWorker

from recommender import clock, compaction, coreadstore, jobs
from recommender.keys import Keys
from recommender.settings import Settings
from tests.helpers import event, post
from tests.test_training_job import drop_queue

pytestmark = pytest.mark.integration

NICHE = "arxiv:2301.00001"  # the community's old paper
FRONT = "arxiv:2301.00002"  # an old paper everybody read
OURS = "arxiv:2412.00001"  # what the community reads now
THEIRS = "arxiv:2412.00002"  # what everybody else reads now, a little more


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, model_poll_s=0.0, coread_half_life_h=2.0)


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.key_prefix, settings.stream_partitions)


def register(client: Any) -> dict:
    body = client.post("/v1/users").get_json()
    return {**body, "auth": {"Authorization": f"Bearer {body['token']}"}}


def community(client: Any, now: float) -> tuple[list[dict], list[dict]]:
    """Four readers of NICHE reading OURS now; six others reading THEIRS now; all read FRONT."""
    ours, theirs = [], []
    for i in range(10):
        reader = register(client)
        old = [event(FRONT, ts=now - 3 * 86400, title="Front page")]
        if i < 4:
            old.append(event(NICHE, ts=now - 2 * 86400, title="A niche paper"))
            new = event(OURS, ts=now - 600 - i, title="Ours now")
            ours.append(reader)
        else:
            new = event(THEIRS, ts=now - 600 - i, title="Theirs now")
            theirs.append(reader)
        assert post(client, reader, *old, new).status_code == 202
    return ours, theirs


def ids(body: dict) -> list[str]:
    return [item["paper"]["id"] for item in body["items"]]


def test_the_table_comes_from_the_log_and_personalises_before_any_model(
    client: Any, redis_client: Any, settings: Settings, keys: Keys
) -> None:
    now = time.time()
    community(client, now)
    newcomer = register(client)
    assert post(client, newcomer, event(NICHE, ts=now - 86400)).status_code == 202

    before = client.get("/v1/recommendations?limit=5", headers=newcomer["auth"]).get_json()
    assert ids(before)[:2] == [THEIRS, OURS]  # global trending: six readers beat four
    assert before["personalised"] is False

    report = coreadstore.refresh(redis_client, keys, settings, now=now)
    assert report["readers"] == 10 and report["live"] == 4
    live = coreadstore.load(redis_client, keys, report["version"])
    row = live.rows([NICHE])[0]
    cols = live.columns([OURS, THEIRS])
    counts = live.table.counts.toarray()[row]
    # the four readers of NICHE read OURS about ten minutes ago (half-life two hours)
    assert counts[cols[0]] == pytest.approx(4 * 2 ** (-600 / 7200), rel=0.01)
    assert counts[cols[1]] == 0

    after = client.get("/v1/recommendations?limit=5", headers=newcomer["auth"]).get_json()
    assert after["personalised"] is True and after["model_version"] is None
    assert ids(after)[:2] == [OURS, THEIRS]
    assert after["items"][0]["reason"] == "because you read A niche paper"
    assert after["items"][1]["reason"] == "trending now"


def test_compacted_and_uncompacted_events_build_the_same_table(
    client: Any, redis_client: Any, settings: Settings, keys: Keys
) -> None:
    now = time.time()
    community(client, now)
    from_tail = coreadstore.build(redis_client, keys, settings, now=now)
    compaction.compact(redis_client, keys, now=now, retention_s=settings.retention_s)
    from_segments = coreadstore.build(redis_client, keys, settings, now=now)
    for table in (from_tail, from_segments):
        assert table.meta["events"] == 24
    assert from_tail.row_ids.tolist() == from_segments.row_ids.tolist()
    assert from_tail.live_ids.tolist() == from_segments.live_ids.tolist()
    assert (from_tail.table.counts != from_segments.table.counts).nnz == 0
    np.testing.assert_allclose(from_tail.table.share, from_segments.table.share)


def test_an_erased_reader_leaves_the_next_table_which_comes_at_the_next_tick(
    client: Any, redis_client: Any, settings: Settings, keys: Keys
) -> None:
    now = time.time()
    ours, _ = community(client, now)
    compaction.compact(redis_client, keys, now=now, retention_s=settings.retention_s)
    coreadstore.refresh(redis_client, keys, settings, now=now)
    assert not coreadstore.due(redis_client, keys, settings, time.time())

    assert client.delete("/v1/me", headers=ours[0]["auth"]).status_code == 204
    assert coreadstore.due(redis_client, keys, settings, time.time())  # marked stale
    report = coreadstore.refresh(redis_client, keys, settings, now=now)
    assert report["readers"] == 9
    live = coreadstore.load(redis_client, keys, report["version"])
    counts = live.table.counts.toarray()[live.rows([NICHE])[0]]
    # three readers of NICHE are left (the erased one is still in the compacted segments,
    # behind a tombstone, until the next compaction)
    assert counts[live.columns([OURS])[0]] == pytest.approx(3 * 2 ** (-600 / 7200), rel=0.01)
    assert not coreadstore.due(redis_client, keys, settings, time.time())


def test_versions_are_published_whole_and_two_are_kept(
    client: Any, redis_client: Any, settings: Settings, keys: Keys
) -> None:
    community(client, time.time())
    versions = [coreadstore.refresh(redis_client, keys, settings)["version"] for _ in range(3)]
    assert coreadstore.active_version(redis_client, keys) == versions[-1]
    assert not redis_client.exists(keys.coread(versions[0]))
    assert redis_client.exists(keys.coread(versions[1]))
    with pytest.raises(KeyError):
        coreadstore.load(redis_client, keys, versions[0])
    coreadstore.delete_all(redis_client, keys)
    assert coreadstore.active_version(redis_client, keys) is None


def test_builds_of_one_instant_never_drop_the_active_version(
    client: Any, redis_client: Any, settings: Settings, keys: Keys
) -> None:
    now = time.time()
    community(client, now)
    # ten builds with one score: without the guard, each later one survives its own pruning
    # with odds 2/3 (versions tie-break by their random suffix), all ten with odds under 4 %
    for _ in range(10):
        version = coreadstore.refresh(redis_client, keys, settings, now=now)["version"]
        assert coreadstore.active_version(redis_client, keys) == version
        assert coreadstore.load(redis_client, keys, version).version == version
    assert redis_client.zcard(keys.coread_versions()) == coreadstore.KEEP


def test_rebuilds_are_single_flight(redis_client: Any, settings: Settings, keys: Keys) -> None:
    lock = redis_client.lock(keys.coread_lock(), timeout=30, blocking=False)
    assert lock.acquire()
    try:
        with pytest.raises(coreadstore.CoreadBusy):
            coreadstore.refresh(redis_client, keys, settings)
        assert jobs.run_coread_job(settings) == {"skipped": "another rebuild is running"}
    finally:
        lock.release()


def test_the_clock_enqueues_one_rebuild_when_due_and_the_worker_runs_it(
    client: Any, redis_client: Any, settings: Settings, keys: Keys
) -> None:
    community(client, time.time())
    conn = jobs.connect_queue(settings)
    queue = jobs.coread_queue(conn, settings)
    try:
        clock.tick(conn, settings, time.time(), redis=redis_client)  # no table yet: due
        clock.tick(conn, settings, time.time() + 1, redis=redis_client)  # one waits already
        assert queue.count == 1
        SimpleWorker([queue], connection=conn).work(burst=True)
        first = coreadstore.active_version(redis_client, keys)
        assert first is not None
        clock.tick(conn, settings, time.time(), redis=redis_client)  # fresh: nothing to do
        assert queue.count == 0
        later = time.time() + settings.coread_refresh_s
        clock.tick(conn, settings, later, redis=redis_client)
        assert queue.count == 1
        # a job that finds the table fresh when it starts skips the rebuild
        coreadstore.refresh(redis_client, keys, settings)
        second = coreadstore.active_version(redis_client, keys)
        SimpleWorker([queue], connection=conn).work(burst=True)
        assert coreadstore.active_version(redis_client, keys) == second != first
    finally:
        drop_queue(jobs.connect_queue(settings), queue)
        # the ticks also enqueued the nightly training (none has run in this prefix)
        drop_queue(jobs.connect_queue(settings), jobs.train_queue(conn, settings))
        conn.close()


def test_web_processes_pick_up_a_new_table_without_restarting(
    client: Any, redis_client: Any, settings: Settings, keys: Keys
) -> None:
    from recommender.serving import Recommender

    now = time.time()
    community(client, now)
    rec = Recommender(redis_client, settings, background=True)
    assert rec.coread_table() is None
    first = coreadstore.refresh(redis_client, keys, settings, now=now)["version"]
    assert rec.coread_table().version == first  # the first table loads in the caller
    second = coreadstore.refresh(redis_client, keys, settings, now=now)["version"]
    deadline = time.monotonic() + 30
    while (rec.coread_table() or first).version != second:  # later ones in the background
        assert time.monotonic() < deadline, "the new table was never picked up"
        time.sleep(0.01)
    coreadstore.delete_all(redis_client, keys)
    assert rec.coread_table() is None
