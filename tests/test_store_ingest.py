"""EventStore.ingest's two ways of writing a batch leave the same data.

On a single Redis a batch is one script call; on a Redis Cluster it is the log's call and then a
pipeline with one call per hash slot of the derived keys. Both are driven here through the same
random workload (repeated papers, re-sent and repeated events, the three kinds, metadata votes,
timestamps ahead of the clock, an erasure halfway) on two key prefixes, and every key compared.
On a Cluster both stores take the per-slot way, and the test still checks the workload runs.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import pytest

from recommender import store as store_module
from recommender import users
from recommender.settings import Settings
from recommender.store import Event, EventStore, TokenRefused
from tests.conftest import delete_prefix
from tests.helpers import keys_under, mentions

pytestmark = pytest.mark.integration


def dump(redis: Any, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix``, minus what depends on the arrival clock (entry ids)."""
    out: dict[str, Any] = {}
    for key in sorted(redis.scan_iter(match=f"{prefix}:*", count=1000)):
        name, kind = key[len(prefix) :], redis.type(key)
        if kind == "stream":
            out[name] = [fields for _, fields in redis.xrange(key)]
        elif kind == "zset":
            pairs = redis.zrange(key, 0, -1, withscores=True)
            if name.endswith(":entries"):  # members name stream entries
                out[name] = sorted(score for _, score in pairs)
            elif name.endswith(":dedupe"):  # scores are arrival times
                out[name] = sorted(member for member, _ in pairs)
            else:
                out[name] = sorted(pairs)
        elif kind == "hash":
            out[name] = redis.hgetall(key)
        else:
            out[name] = redis.get(key)
    return out


def workload(seed: int) -> list[tuple[str, list[Event] | None]]:
    """(user, batch) steps; a batch of None erases the user."""
    rnd = random.Random(seed)
    now = int(time.time())
    users = [f"user{i}" for i in range(4)]
    papers = [f"arxiv:2401.{i:05d}" for i in range(1, 9)]
    sent: list[Event] = []
    steps: list[tuple[str, list[Event] | None]] = []
    for step in range(30):
        if step == 15:
            steps.append((users[0], None))
            continue
        batch = []
        for _ in range(rnd.randint(1, 10)):
            if sent and rnd.random() < 0.2:
                batch.append(rnd.choice(sent))  # a retried event
                continue
            event = Event(
                id=str(uuid.UUID(int=rnd.getrandbits(128))),
                kind=rnd.choice(["open", "click", "dismiss"]),
                paper_id=rnd.choice(papers),
                ts=now - rnd.randint(-600, 3 * 86400),
                site="arxiv.org",
                title=rnd.choice([None, "One title", "Another title"]),
                abstract=rnd.choice([None, "An abstract."]),
                authors=tuple(rnd.sample(["Ada", "Grace", "Alan"], rnd.randint(0, 2))),
            )
            sent.append(event)
            batch.append(event)
        if rnd.random() < 0.3:
            batch.append(batch[0])  # the same event twice in one batch
        steps.append((rnd.choice(users), batch))
    return steps


@pytest.mark.parametrize("seed", range(3))
def test_one_call_and_per_slot_calls_store_the_same(redis_client, prefix, seed):
    other = f"{prefix}-slots"
    one_call = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    per_slot = EventStore(redis_client, Settings.from_env({}, key_prefix=other))
    per_slot._cluster = True  # the Cluster's way, which a single Redis serves as well
    now = time.time()
    try:
        for step, (user, batch) in enumerate(workload(seed)):
            if batch is None:
                assert one_call.erase(user, now=now + step) == per_slot.erase(user, now=now + step)
                continue
            a = one_call.ingest(user, batch, now=now + step)
            b = per_slot.ingest(user, batch, now=now + step)
            assert a == b
            assert a.accepted + a.duplicates == len(batch)
        ours, theirs = dump(redis_client, prefix), dump(redis_client, other)
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == theirs[key], key
        assert any(":trending}" in key or "{trending}" in key for key in ours)
    finally:
        delete_prefix(redis_client, other)


def test_a_batch_larger_than_lua_can_unpack_at_once(redis_client, prefix):
    # 4,500 events: their sorted-set writes exceed the ~8,000 values Lua's unpack() takes
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    now = int(time.time())
    events = [
        Event(
            id=str(uuid.uuid4()),
            kind="open",
            paper_id=f"arxiv:2401.{i % 3000 + 1:05d}",
            ts=now,
            site="arxiv.org",
            title=f"Paper {i % 3000}",
        )
        for i in range(4500)
    ]
    assert store.ingest("bulk", events).accepted == 4500
    assert store.ingest("bulk", events).duplicates == 4500
    k = store.keys
    assert redis_client.xlen(k.stream(0)) == 4500
    assert redis_client.zcard(k.user_entries("bulk")) == 4500
    assert redis_client.zcard(k.user_seen("bulk")) == 3000
    assert redis_client.zcard(k.trending()) == 3000


@pytest.mark.parametrize("per_slot", [False, True])
def test_the_catalogue_and_the_votes_keep_what_ingestion_relies_on(redis_client, prefix, per_slot):
    # The ingest script adds to the catalogue set only the papers whose entry had no first-seen
    # time, and stores a metadata version's JSON only with its first vote: so a paper's entry
    # has a first-seen time exactly when the set holds the paper (at that time), and a version
    # with a vote count has its JSON, whatever mix of imports, batches and erasures came before.
    from server.commands.import_papers import import_rows

    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    store._cluster = store._cluster or per_slot
    now = time.time()
    import_rows(store, iter([{"id": "arxiv:2401.00001", "title": "Imported"}]), readers=2, now=now)
    steps = workload(7)
    for step, (user, batch) in enumerate(steps):
        if batch is None:
            store.erase(user, now=now + step)
        else:
            store.ingest(user, batch, now=now + step)
    k = store.keys
    catalogue = dict(redis_client.zrange(k.papers(), 0, -1, withscores=True))
    papers = {"arxiv:2401.00001"} | {ev.paper_id for _, batch in steps for ev in batch or []}
    for pid in papers:
        first_seen = redis_client.hget(k.paper(pid), "first_seen")
        assert (first_seen is not None) == (pid in catalogue), pid
        if first_seen is not None:
            assert float(first_seen) == catalogue[pid]
        claims = redis_client.hgetall(k.paper_claims(pid))
        assert all(f"m:{name}" in claims for name in claims if not name.startswith("m:")), pid
    assert set(catalogue) == papers


def opens(*papers: str) -> list[Event]:
    ts = int(time.time())
    return [
        Event(id=str(uuid.uuid4()), kind="open", paper_id=p, ts=ts, site="arxiv.org", title=p)
        for p in papers
    ]


def traces(redis: Any, prefix: str, user_id: str) -> list[str]:
    """The keys under ``prefix`` that name or hold ``user_id``."""
    return [key for key in keys_under(redis, prefix) if mentions(redis, key, user_id)]


@pytest.mark.parametrize("per_slot", [False, True])
def test_a_batch_sent_with_a_token_is_stored_only_for_its_account(redis_client, prefix, per_slot):
    # ingest(token_hash=...) authenticates where it writes: a wrong token, an unknown user and
    # an erased account store nothing at all; the right token stores the batch
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    store._cluster = store._cluster or per_slot
    user_id, token = users.create_user(redis_client, store.keys)
    right = users.hash_token(token)
    for who, token_hash in [
        (user_id, users.hash_token(token[:-1] + ("A" if token[-1] != "A" else "B"))),
        (user_id, ""),
        ("0" * 32, right),  # another (unknown) user with this token's hash
    ]:
        with pytest.raises(TokenRefused):
            store.ingest(who, opens("arxiv:2401.00001"), token_hash=token_hash)
    assert redis_client.xlen(store.keys.stream(0)) == 0
    account = {store.keys.user(user_id), store.keys.users()}
    assert set(traces(redis_client, prefix, user_id)) == account
    assert store.ingest(user_id, opens("arxiv:2401.00001"), token_hash=right).accepted == 1
    assert store.erase(user_id) == 1
    with pytest.raises(TokenRefused):  # the token died with the account
        store.ingest(user_id, opens("arxiv:2401.00002"), token_hash=right)
    with pytest.raises(TokenRefused):  # an empty batch is checked too
        store.ingest(user_id, [], token_hash=right)
    assert traces(redis_client, prefix, user_id) == []
    assert redis_client.xlen(store.keys.stream(0)) == 0


@pytest.mark.parametrize("per_slot", [False, True])
def test_a_batch_that_reaches_redis_during_an_erasure_does_not_outlive_it(
    redis_client, prefix, per_slot, monkeypatch
):
    # A request authenticated just before DELETE /v1/me, whose batch reaches Redis while the
    # erasure runs (after it marked the account, before it read the user's events): the batch
    # is refused, and nothing of the user is left once the erasure ends.
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    store._cluster = store._cluster or per_slot
    user_id, token = users.create_user(redis_client, store.keys)
    token_hash = users.hash_token(token)
    store.ingest(user_id, opens("arxiv:2401.00001"), token_hash=token_hash)
    read_events = store.user_events
    refused = []

    def a_batch_arrives_first(who: str) -> list[dict[str, Any]]:
        try:
            store.ingest(who, opens("arxiv:2401.00002"), token_hash=token_hash)
        except TokenRefused:
            refused.append(who)
        return read_events(who)

    monkeypatch.setattr(store, "user_events", a_batch_arrives_first)
    assert store.erase(user_id) == 1
    assert refused == [user_id]
    assert traces(redis_client, prefix, user_id) == []
    assert redis_client.xlen(store.keys.stream(0)) == 0


def test_on_a_cluster_a_batch_refused_after_the_log_call_is_taken_out_of_the_log(
    redis_client, prefix, monkeypatch
):
    # On a Cluster the log's call cannot see the account: an erasure that begins between it and
    # the user's call (which checks again) must not leave the batch in the log, and the same
    # events sent again later are not taken for duplicates
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    store._cluster = True
    user_id, token = users.create_user(redis_client, store.keys)
    token_hash = users.hash_token(token)
    derive = store._derive_by_slot

    def erasure_begins(*args: Any, **kwargs: Any) -> None:
        assert redis_client.xlen(store.keys.stream(0)) == 2  # the log's call wrote the batch
        redis_client.hset(store.keys.user(user_id), "erasing", int(time.time()))
        derive(*args, **kwargs)

    monkeypatch.setattr(store, "_derive_by_slot", erasure_begins)
    batch = opens("arxiv:2401.00001", "arxiv:2401.00002")
    with pytest.raises(TokenRefused):
        store.ingest(user_id, batch, token_hash=token_hash)
    assert redis_client.xlen(store.keys.stream(0)) == 0
    assert redis_client.zcard(store.keys.dedupe(0)) == 0
    account = {store.keys.user(user_id), store.keys.users()}
    assert set(traces(redis_client, prefix, user_id)) == account
    redis_client.hdel(store.keys.user(user_id), "erasing")  # (an erasure that never happened)
    monkeypatch.undo()
    assert store.ingest(user_id, batch, token_hash=token_hash).accepted == 2


def test_a_metadata_versions_digest_and_json_are_stable():
    # A reader's vote is stored under its version's digest, so the digest of the same text must
    # not change from one release to the next: these values are what earlier releases computed
    # (json.dumps(..., sort_keys=True, ensure_ascii=False), SHA-256, 32 hex digits).
    assert store_module._claim(
        "arxiv:2401.00001", "Ünïcode “title”", "An abstract.", ("Ada Lovelace", "Émile Borel")
    ) == (
        "348032fa6dec1c950abf89702df966be",
        '{"abstract": "An abstract.", "authors": "[\\"Ada Lovelace\\", \\"Émile Borel\\"]", '
        '"title": "Ünïcode “title”", "url": "https://arxiv.org/abs/2401.00001"}',
    )
    assert store_module._claim("doi:10.1145/3368089", "Title only", None, ()) == (
        "e93a59fa093a0e365811cdd97a7b16e2",
        '{"title": "Title only", "url": "https://doi.org/10.1145/3368089"}',
    )


@pytest.mark.parametrize("per_slot", [False, True])
def test_a_reader_counts_once_while_their_read_is_within_retention(redis_client, prefix, per_slot):
    # A distinct reader is a user whose seen set (papers opened or clicked, by event time,
    # within the retention window) lacks the paper: re-reading does not count again, a dismiss
    # is no read, and a read that left the window makes the next one count again.
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix, retention_days=1))
    store._cluster = store._cluster or per_slot
    paper, t0 = "arxiv:2401.00001", int(time.time())

    def read(user: str, ts: int, kind: str = "open") -> None:
        ev = Event(id=str(uuid.uuid4()), kind=kind, paper_id=paper, ts=ts, site="arxiv.org")
        store.ingest(user, [ev, ev], now=ts)  # the same event twice: one read

    def readers() -> int:
        return int(redis_client.hget(store.keys.paper(paper), "readers") or 0)

    read("bob", t0, "dismiss")
    assert readers() == 0
    read("alice", t0)
    read("bob", t0 + 10, "click")
    assert readers() == 2
    read("alice", t0 + 20_000)  # within the day: still one reader
    assert readers() == 2
    read("alice", t0 + 20_000 + 86_401)  # her last read left the window: a reader again
    assert readers() == 3
    scores = redis_client.zrange(store.keys.trending(), 0, -1, withscores=True)
    assert [p for p, _ in scores] == [paper]


@pytest.mark.parametrize("per_slot", [False, True])
def test_the_page_views_count_each_reader_decayed_from_their_first_read(
    redis_client, prefix, per_slot
):
    # The "today" and "this week" views live in each paper's entry (a score decayed to the
    # entry's time) and are ranked when read: a reader adds 2 ** (-age / half-life) whether
    # they arrive after the entry's time or before it, erasure takes them back, and a ranking
    # is reused for trending_view_ttl_s, then served while one process ranks it again in the
    # background; the scores shown stay exact.
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    store._cluster = store._cluster or per_slot
    day, week = 12 * 3600, 168 * 3600
    t0 = int(time.time())

    def read(user: str, paper: str, ts: int) -> None:
        ev = Event(id=str(uuid.uuid4()), kind="open", paper_id=paper, ts=ts, site="arxiv.org")
        store.ingest(user, [ev], now=t0)

    def view(window: str, now: float) -> dict[str, float]:
        items, total = store.trending(0, 10, now=now, window=window)
        assert total == len(items)
        return {i["paper"]["id"]: i["score"] for i in items}

    def expected(ages: list[int], half: int) -> float:
        return sum(2.0 ** (-age / half) for age in ages)

    p, q = "arxiv:2401.00001", "arxiv:2401.00002"
    read("alice", p, t0 - 3600)
    read("bob", p, t0)  # later than the entry's time: the score decays to t0 first
    read("carol", p, t0 - 7200)  # earlier: counted as decayed since
    read("carol", p, t0 - 60)  # a re-read adds nothing
    read("dave", q, t0 - 86400)
    for window, half in (("day", day), ("week", week)):
        scores = view(window, t0)
        assert list(scores) == [p, q]
        assert scores[p] == pytest.approx(expected([3600, 0, 7200], half), rel=1e-9)
        assert scores[q] == pytest.approx(expected([86400], half), rel=1e-9)

    store.erase("carol", now=t0)
    scores = view("day", t0 + 1)  # scores are the entries' own: at once without her
    assert scores[p] == pytest.approx(expected([3601, 1], day), rel=1e-9)
    store.last_rerank.join(30)  # the erasure made the ranking stale: ranked again meanwhile
    store.last_rerank = None

    read("eve", "arxiv:2401.00003", t0)
    assert "arxiv:2401.00003" not in view("day", t0 + 30)  # the ranking is 29 s old: reused
    assert store.last_rerank is None
    redis_client.set(store.keys.trending_view_lock("day"), "1")  # someone else is re-ranking
    assert "arxiv:2401.00003" not in view("day", t0 + 70)  # stale, but served meanwhile
    assert store.last_rerank is None
    redis_client.delete(store.keys.trending_view_lock("day"))
    # stale and nobody at it: served at once, and this process ranks it again in the background
    assert "arxiv:2401.00003" not in view("day", t0 + 70)
    store.last_rerank.join(30)
    scores = view("day", t0 + 70)
    assert scores["arxiv:2401.00003"] == pytest.approx(expected([70], day), rel=1e-9)

    store.last_rerank = None
    store.erase("dave", now=t0)  # q's only reader: q leaves the view at once, ranked or not
    items, _ = store.trending(0, 10, now=t0 + 71, window="day")
    assert q not in [i["paper"]["id"] for i in items]
    store.last_rerank.join(30)
    assert q not in view("day", t0 + 72)
    assert not redis_client.exists(store.keys.trending_view_lock("day"))


def test_a_view_is_ranked_in_slices_and_leaves_faded_papers_out(redis_client, prefix, monkeypatch):
    monkeypatch.setattr(store_module, "VIEW_SLICE", 2)  # 7 papers: four slices
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    t0 = int(time.time())
    for i in range(1, 7):
        paper = f"arxiv:2401.{i:05d}"
        for r in range(i):
            ev = Event(id=str(uuid.uuid4()), kind="open", paper_id=paper, ts=t0, site="arxiv.org")
            store.ingest(f"reader{r}", [ev], now=t0)
    # 15 day half-lives old: 3e-5 of a reader in "today", but still in main (48 h half-life)
    faded = Event(
        id=str(uuid.uuid4()),
        kind="open",
        paper_id="arxiv:2401.09999",
        ts=t0 - 15 * 12 * 3600,
        site="arxiv.org",
    )
    store.ingest("old reader", [faded], now=t0)
    assert redis_client.zscore(store.keys.trending(), "arxiv:2401.09999")
    assert store.rank_view("day", now=t0) == 6
    ranking = redis_client.zrevrange(store.keys.trending_view("day"), 0, -1, withscores=True)
    assert [(p, round(s, 9)) for p, s in ranking] == [
        (f"arxiv:2401.{i:05d}", float(i)) for i in range(6, 0, -1)
    ]
    assert redis_client.ttl(store.keys.trending_view("day")) == -1  # kept until replaced
    assert not list(redis_client.scan_iter(match=f"{prefix}:*:building:*"))


def test_an_upgrade_carries_earlier_versions_view_scores_over_once(redis_client, prefix):
    # Before 2026-11-28 each page view was a sorted set of scores relative to its own epoch.
    # The clock carries them into the papers' entries once, beside readers who came since.
    store = EventStore(redis_client, Settings.from_env({}, key_prefix=prefix))
    k, now = store.keys, float(int(time.time()))
    day, week = 12 * 3600, 168 * 3600
    p, q = "arxiv:2401.00001", "arxiv:2401.00002"
    day_set, day_epoch = k.legacy_trending_view("day")
    week_set, week_epoch = k.legacy_trending_view("week")
    redis_client.zadd(day_set, {p: 3.0})
    redis_client.set(day_epoch, now - 6 * 3600)
    redis_client.zadd(week_set, {p: 5.0, q: 2.0})
    redis_client.set(week_epoch, now - 24 * 3600)
    ev = Event(id=str(uuid.uuid4()), kind="open", paper_id=p, ts=int(now) - 60, site="arxiv.org")
    store.ingest("since the upgrade", [ev], now=now)
    redis_client.zadd(k.trending(), {q: 1e9})  # q's earlier readers, in the main window too

    redis_client.set(k.legacy_trending_views_lock(), "1")  # another process is at it
    assert store.migrate_legacy_views(now=now) == 0
    assert redis_client.exists(day_set, week_set) == 2
    redis_client.delete(k.legacy_trending_views_lock())
    assert store.migrate_legacy_views(now=now) == 3  # p in both views, q in one
    assert store.migrate_legacy_views(now=now) == 0  # once
    assert not [key for key in redis_client.scan_iter(match=f"{prefix}:*") if "epoch:" in key]
    assert not redis_client.exists(day_set, week_set)
    views = {
        window: {i["paper"]["id"]: i["score"] for i in store.trending(0, 10, now, window)[0]}
        for window in ("day", "week")
    }
    assert views["day"] == {p: pytest.approx(3 * 2 ** (-6 / 12) + 2 ** (-60 / day), rel=1e-9)}
    assert views["week"] == {
        p: pytest.approx(5 * 2 ** (-24 / 168) + 2 ** (-60 / week), rel=1e-9),
        q: pytest.approx(2 * 2 ** (-24 / 168), rel=1e-9),
    }
