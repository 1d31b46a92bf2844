"""Incremental compaction on the real Redis: new entries only, retention, erasure, crash safety."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recommender import compaction
from recommender.compaction import KINDS
from recommender.keys import Keys

pytestmark = pytest.mark.integration

NOW = 1_800_000_000
DAY = 86400


def add(redis: Any, keys: Keys, user: str, paper: str, kind: str = "open", ts: int = NOW) -> None:
    redis.xadd(
        keys.stream(keys.partition_of(user)),
        {"u": user, "e": f"{user}-{paper}-{ts}", "k": kind, "p": paper, "ts": ts, "s": "arxiv.org"},
    )


def as_tuples(events: compaction.Events) -> set[tuple[str, str, str, int]]:
    return {
        (events.users[u].decode(), events.items[i].decode(), KINDS[k], int(t))
        for u, i, k, t in zip(events.user, events.item, events.kind, events.ts, strict=True)
    }


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix, partitions=3)


def test_incremental_runs_read_only_new_entries(redis_client: Any, keys: Keys) -> None:
    add(redis_client, keys, "alice", "arxiv:1", ts=NOW - 10)
    add(redis_client, keys, "bob", "arxiv:2", "click", ts=NOW - 5)
    events, stats = compaction.compact(redis_client, keys, now=NOW, retention_s=30 * DAY)
    assert stats.new_events == 2
    assert as_tuples(events) == {
        ("alice", "arxiv:1", "open", NOW - 10),
        ("bob", "arxiv:2", "click", NOW - 5),
    }
    add(redis_client, keys, "carol", "arxiv:1", "dismiss", ts=NOW - 1)
    add(redis_client, keys, "alice", "arxiv:3", ts=NOW)
    events, stats = compaction.compact(redis_client, keys, now=NOW, retention_s=30 * DAY)
    assert stats.new_events == 2
    assert stats.total_events == 4
    assert ("carol", "arxiv:1", "dismiss", NOW - 1) in as_tuples(events)
    _, stats = compaction.compact(redis_client, keys, now=NOW, retention_s=30 * DAY)
    assert stats.new_events == 0
    assert as_tuples(compaction.load(redis_client, keys)) == as_tuples(events)


def test_many_pages_and_segment_merging(redis_client: Any, keys: Keys) -> None:
    expected = set()
    for run in range(5):
        for j in range(37):
            user, paper = f"u{(run * 37 + j) % 11}", f"arxiv:{j % 7}"
            add(redis_client, keys, user, paper, ts=NOW - run * 100 - j)
            expected.add((user, paper, "open", NOW - run * 100 - j))
        events, _ = compaction.compact(
            redis_client, keys, now=NOW, retention_s=DAY, page_size=10, max_segments=3
        )
        assert as_tuples(events) == expected
    manifest = compaction._read_manifest(redis_client, keys)
    assert len(manifest["segments"]) <= 3


def test_retention_drops_old_events(redis_client: Any, keys: Keys) -> None:
    add(redis_client, keys, "alice", "arxiv:old", ts=NOW - 40 * DAY)
    add(redis_client, keys, "alice", "arxiv:new", ts=NOW - DAY)
    compaction.compact(redis_client, keys, now=NOW - 20 * DAY, retention_s=30 * DAY)
    events, stats = compaction.compact(redis_client, keys, now=NOW, retention_s=30 * DAY)
    assert as_tuples(events) == {("alice", "arxiv:new", "open", NOW - DAY)}
    assert stats.dropped_old == 1
    assert b"arxiv:old" not in events.items.tolist()


def test_forgotten_user_is_gone_after_next_compaction(redis_client: Any, keys: Keys) -> None:
    add(redis_client, keys, "alice", "arxiv:1")
    add(redis_client, keys, "bob", "arxiv:1")
    compaction.compact(redis_client, keys, now=NOW, retention_s=DAY)
    compaction.forget_user(redis_client, keys, "alice")
    add(redis_client, keys, "alice", "arxiv:2")  # arrived before the erasure's XDEL ran
    events, stats = compaction.compact(redis_client, keys, now=NOW, retention_s=DAY)
    assert as_tuples(events) == {("bob", "arxiv:1", "open", NOW)}
    assert b"alice" not in events.users.tolist()
    assert stats.dropped_erased == 2
    assert redis_client.scard(keys.compact_tombstones()) == 0


def test_killed_midway_keeps_the_previous_manifest(
    redis_client: Any, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(redis_client, keys, "alice", "arxiv:1")
    before, _ = compaction.compact(redis_client, keys, now=NOW, retention_s=DAY)
    add(redis_client, keys, "bob", "arxiv:2")

    def killed(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(compaction, "_swap_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        compaction.compact(redis_client, keys, now=NOW, retention_s=DAY)
    monkeypatch.undo()
    assert as_tuples(compaction.load(redis_client, keys)) == as_tuples(before)
    leftovers = redis_client.smembers(keys.compact_pending())
    assert leftovers  # the dead run's blobs are listed for clean-up

    after, stats = compaction.compact(redis_client, keys, now=NOW, retention_s=DAY)
    assert stats.new_events == 1
    assert ("bob", "arxiv:2", "open", NOW) in as_tuples(after)
    assert not any(redis_client.exists(blob) for blob in leftovers)


def test_second_compaction_is_refused_while_one_runs(redis_client: Any, keys: Keys) -> None:
    lock = redis_client.lock(keys.compact_lock(), timeout=10)
    assert lock.acquire(blocking=False)
    try:
        with pytest.raises(compaction.CompactionBusy):
            compaction.compact(redis_client, keys, now=NOW, retention_s=DAY)
    finally:
        lock.release()


def test_odd_entries_are_parsed_or_skipped(redis_client: Any, keys: Keys) -> None:
    stream = keys.stream(keys.partition_of("zed"))
    redis_client.xadd(stream, {"p": "arxiv:9", "u": "zed", "ts": "12.0", "k": "click"})
    redis_client.xadd(stream, {"u": "zed", "k": "bogus", "p": "arxiv:8", "ts": "1"})
    events, _ = compaction.compact(redis_client, keys, now=100, retention_s=DAY)
    assert as_tuples(events) == {("zed", "arxiv:9", "click", 12)}
    assert events.user.dtype == np.int32 and events.ts.dtype == np.int64
