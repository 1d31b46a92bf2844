"""Incremental compaction of the event log into binary numpy arrays kept in Redis.

Reading 20 million stream entries into Python every night is slow, so each run reads only the
entries after the last compacted stream id of each partition, parses them in bulk into arrays
(user code, item code, kind, timestamp) and appends them as a new *segment*. The string ids live
in a vocabulary (two sorted-by-first-use bytes arrays) shared by all segments.

Storage (all through :func:`recommender.modelstore.write_arrays`):

- ``Keys.compact_manifest()``: one JSON string naming the live segments, the vocabulary blob and
  the last compacted entry id per partition. It is replaced by one ``SET`` under ``WATCH``, so a
  compaction killed midway leaves the previous manifest, which names only complete blobs.
- ``Keys.compact_blob(id)``: a hash per segment or vocabulary. New blobs are written aside (and
  listed in ``Keys.compact_pending()``) before the manifest names them; the next run deletes any
  pending blob that no manifest names (the leftovers of a killed run).

Retention: segments holding events older than the retention window are rewritten without them.
Erasure: :func:`forget_user` adds the user to ``Keys.compact_tombstones()``; the next run drops
their events and their id (the vocabulary is rebuilt from the ids still used), then removes the
tombstones it applied. Many segments are merged into one to keep reads cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis as redis_lib
from numpy.typing import NDArray
from redis.cluster import RedisCluster

from recommender.keys import Keys
from recommender.modelstore import binary, read_arrays, write_arrays
from recommender.redisconn import bytes_client

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("open", "click", "dismiss")
"""Event kinds; an event's ``kind`` code is its index here."""

PAGE_SIZE = 50_000
MAX_SEGMENTS = 8
LOCK_TTL_S = 900
_FIELDS = (b"u", b"p", b"k", b"ts")  # the order _columns takes them in
_SEGMENT_ARRAYS = ("user", "item", "kind", "ts")

Progress = Callable[[str, float], None]


class CompactionBusy(RuntimeError):
    """Another compaction holds the compaction lock."""


@dataclass(frozen=True)
class Events:
    """The compacted event log.

    users : bytes array (n_users,) -- the user id of each user code
    items : bytes array (n_items,) -- the paper id of each item code
    user : int32 array (n,) ; item : int32 array (n,) ; kind : int8 array (n,), index in KINDS
    ts : int64 array (n,) -- client Unix seconds
    """

    users: NDArray[np.bytes_]
    items: NDArray[np.bytes_]
    user: NDArray[np.int32]
    item: NDArray[np.int32]
    kind: NDArray[np.int8]
    ts: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def empty(cls) -> Events:
        return cls(
            users=np.array([], dtype="S1"),
            items=np.array([], dtype="S1"),
            user=np.array([], dtype=np.int32),
            item=np.array([], dtype=np.int32),
            kind=np.array([], dtype=np.int8),
            ts=np.array([], dtype=np.int64),
        )

    def select(self, mask: NDArray[np.bool_]) -> Events:
        """The events where ``mask`` holds (same vocabularies)."""
        return Events(
            self.users, self.items, self.user[mask], self.item[mask], self.kind[mask], self.ts[mask]
        )


@dataclass(frozen=True)
class CompactionStats:
    new_events: int
    total_events: int
    dropped_old: int
    dropped_erased: int
    segments: int
    duration_s: float


# -- public API ---------------------------------------------------------------------------------


def forget_user(redis: redis_lib.Redis, keys: Keys, user_id: str) -> None:
    """Erasure hook: the next compaction drops every compacted event of ``user_id``.

    The tombstone is a digest of the id, not the id: after an erasure no key names the user.
    """
    redis.sadd(keys.compact_tombstones(), tombstone(user_id.encode()))


def tombstone(user_id: bytes) -> str:
    """The digest :func:`forget_user` records for a user id."""
    return hashlib.sha256(b"paperfeed-erased:" + user_id).hexdigest()[:32]


def load(redis: redis_lib.Redis, keys: Keys) -> Events:
    """The compacted events as of the last compaction (empty before the first)."""
    manifest = _read_manifest(redis, keys)
    if manifest is None:
        return Events.empty()
    return _load_manifest(redis, keys, manifest)


def compact(
    redis: redis_lib.Redis,
    keys: Keys,
    *,
    now: float,
    retention_s: float,
    page_size: int = PAGE_SIZE,
    max_segments: int = MAX_SEGMENTS,
    progress: Progress | None = None,
) -> tuple[Events, CompactionStats]:
    """Fold the stream entries added since the last run into the compacted arrays.

    Returns every compacted event within the retention window and run statistics. Raises
    CompactionBusy when another compaction is running.
    """
    started = time.monotonic()
    raw = binary(redis)
    lock = raw.lock(keys.compact_lock(), timeout=LOCK_TTL_S, blocking=False)
    if not lock.acquire():
        raise CompactionBusy("another compaction is running")
    try:
        _delete_leftovers(raw, keys)
        as_read = _read_manifest(raw, keys)
        manifest = as_read or _empty_manifest(keys)
        old = _load_manifest(raw, keys, manifest) if manifest["segments"] else Events.empty()
        tombstones = raw.smembers(keys.compact_tombstones())

        def renew_and_report(fraction: float) -> None:
            lock.reacquire()
            if progress is not None:
                progress("compact", fraction)

        users, items, new_rows, last_ids = _read_new(
            raw, keys, manifest, old.users, old.items, page_size, renew_and_report
        )
        cutoff = int(now - retention_s)
        erased = tombstoned_codes(users, tombstones)

        erased_old = np.isin(old.user, erased)
        erased_new = np.isin(new_rows["user"], erased)
        keep_old = (old.ts >= cutoff) & ~erased_old
        keep_new = (new_rows["ts"] >= cutoff) & ~erased_new
        dropped_old = int((old.ts < cutoff).sum() + (new_rows["ts"] < cutoff).sum())
        dropped_erased = int(
            ((old.ts >= cutoff) & erased_old).sum()
            + ((new_rows["ts"] >= cutoff) & erased_new).sum()
        )

        segments: list[dict[str, Any]] = list(manifest["segments"])
        written: list[str] = []
        rewrite = (not keep_old.all()) or len(segments) + 1 > max_segments or len(erased) > 0
        if rewrite:
            merged = {
                "user": np.concatenate([old.user[keep_old], new_rows["user"][keep_new]]),
                "item": np.concatenate([old.item[keep_old], new_rows["item"][keep_new]]),
                "kind": np.concatenate([old.kind[keep_old], new_rows["kind"][keep_new]]),
                "ts": np.concatenate([old.ts[keep_old], new_rows["ts"][keep_new]]),
            }
            users, items, merged = _shrink_vocabulary(users, items, merged)
            segments = []
            if len(merged["ts"]):
                segments.append(_write_segment(raw, keys, merged, written))
            rows = merged
        else:
            new_kept = {name: array[keep_new] for name, array in new_rows.items()}
            if len(new_kept["ts"]):
                segments.append(_write_segment(raw, keys, new_kept, written))
            rows = {  # every old row is kept on this path
                "user": np.concatenate([old.user, new_kept["user"]]),
                "item": np.concatenate([old.item, new_kept["item"]]),
                "kind": np.concatenate([old.kind, new_kept["kind"]]),
                "ts": np.concatenate([old.ts, new_kept["ts"]]),
            }
        vocabulary = manifest["vocabulary"]
        if rewrite or len(users) != len(old.users) or len(items) != len(old.items):
            vocabulary = _write_vocabulary(raw, keys, users, items, written)
        new_manifest = {
            "segments": segments,
            "vocabulary": vocabulary,
            "last_ids": last_ids,
            "compacted_at": now,
        }
        _swap_manifest(raw, keys, as_read, new_manifest, written)
        if tombstones:
            raw.srem(keys.compact_tombstones(), *tombstones)
        # what was just written, without reading it back
        result = Events(
            users=_bytes_array(users),
            items=_bytes_array(items),
            user=rows["user"].astype(np.int32, copy=False),
            item=rows["item"].astype(np.int32, copy=False),
            kind=rows["kind"].astype(np.int8, copy=False),
            ts=rows["ts"].astype(np.int64, copy=False),
        )
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.LockError:
            log.warning("compaction lock expired before release")
    stats = CompactionStats(
        new_events=len(new_rows["ts"]),
        total_events=len(result),
        dropped_old=dropped_old,
        dropped_erased=dropped_erased,
        segments=len(segments),
        duration_s=time.monotonic() - started,
    )
    log.info(
        "compacted %d new events (%d total, %d expired, %d erased) in %.1fs",
        stats.new_events,
        stats.total_events,
        stats.dropped_old,
        stats.dropped_erased,
        stats.duration_s,
    )
    return result, stats


def delete_all(redis: redis_lib.Redis, keys: Keys) -> None:
    """Remove every compaction key (tests, benchmarks, a full rebuild from the stream)."""
    manifest = _read_manifest(redis, keys)
    doomed = [keys.compact_manifest(), keys.compact_tombstones(), keys.compact_lock()]
    if manifest:
        doomed += [keys.compact_blob(s["id"]) for s in manifest["segments"]]
        if manifest["vocabulary"]:
            doomed.append(keys.compact_blob(manifest["vocabulary"]))
    doomed += [
        m.decode() if isinstance(m, bytes) else m for m in redis.smembers(keys.compact_pending())
    ]
    doomed.append(keys.compact_pending())
    redis.delete(*doomed)


def read_tail(
    redis: redis_lib.Redis, keys: Keys, max_entries: int = 2_000_000, page_size: int = PAGE_SIZE
) -> tuple[NDArray[np.bytes_], NDArray[np.bytes_], NDArray[np.int8], NDArray[np.int64]]:
    """The events not compacted yet (after the manifest's offsets), without compacting them.

    Returns ``(user ids, paper ids, kind codes, timestamps)``; at most ``max_entries`` per
    partition (the oldest ones). Serving folds fresh papers in from these.
    """
    raw = binary(redis)
    manifest = _read_manifest(raw, keys) or _empty_manifest()
    reader = _flat_reader(raw)
    reader.set_response_callback("XRANGE", lambda response, **_: response)
    parts: list[tuple[Any, ...]] = []
    for partition in range(keys.partitions):
        start = manifest["last_ids"].get(str(partition))
        read = 0
        while read < max_entries:
            lower = "-" if start is None else f"({start}"
            count = min(page_size, max_entries - read)
            reply = reader.xrange(keys.stream(partition), min=lower, max="+", count=count)
            if not reply:
                break
            start = reply[-1][0].decode()
            parts.append(_parse_page(reply))
            read += len(reply)
            if len(reply) < count:
                break
    if not parts:
        empty = np.array([], dtype="S1")
        return empty, empty, np.array([], np.int8), np.array([], np.int64)
    users, items, kinds, ts = (np.concatenate([p[i] for p in parts]) for i in range(4))
    valid = kinds >= 0
    return users[valid], items[valid], kinds[valid], ts[valid]


# -- stream reading -----------------------------------------------------------------------------


def _read_new(
    raw: redis_lib.Redis,
    keys: Keys,
    manifest: dict[str, Any],
    users: NDArray[np.bytes_],
    items: NDArray[np.bytes_],
    page_size: int,
    report: Callable[[float], None],
) -> tuple[NDArray[np.bytes_], NDArray[np.bytes_], dict[str, NDArray[Any]], dict[str, str]]:
    """Parse all entries after the manifest's offsets; extend the vocabularies."""
    user_index = {u: i for i, u in enumerate(users.tolist())}
    item_index = {p: i for i, p in enumerate(items.tolist())}
    user_list: list[bytes] = users.tolist()
    item_list: list[bytes] = items.tolist()
    last_ids = dict(manifest["last_ids"])
    pieces: dict[str, list[NDArray[Any]]] = {name: [] for name in _SEGMENT_ARRAYS}
    lengths = [raw.xlen(keys.stream(p)) for p in range(keys.partitions)]
    total = max(sum(lengths), 1)
    done = 0
    # XRANGE replies are kept as flat lists: redis-py's dict-per-entry parsing dominates otherwise
    reader = _flat_reader(raw)
    reader.set_response_callback("XRANGE", lambda response, **_: response)
    for partition in range(keys.partitions):
        stream = keys.stream(partition)
        start = last_ids.get(str(partition))
        while True:
            lower = "-" if start is None else f"({start}"
            reply = reader.xrange(stream, min=lower, max="+", count=page_size)
            if not reply:
                break
            start = reply[-1][0].decode()
            u, p, k, ts = _parse_page(reply)
            pieces["user"].append(_encode_ids(u, user_index, user_list))
            pieces["item"].append(_encode_ids(p, item_index, item_list))
            pieces["kind"].append(k)
            pieces["ts"].append(ts)
            done += len(reply)
            report(min(done / total, 1.0))
            if len(reply) < page_size:
                break
        if start is not None:
            last_ids[str(partition)] = start
    rows = {
        "user": _cat(pieces["user"], np.int32),
        "item": _cat(pieces["item"], np.int32),
        "kind": _cat(pieces["kind"], np.int8),
        "ts": _cat(pieces["ts"], np.int64),
    }
    valid = rows["kind"] >= 0
    if not valid.all():
        rows = {name: array[valid] for name, array in rows.items()}
    return _bytes_array(user_list), _bytes_array(item_list), rows, last_ids


def _flat_reader(raw: Any) -> Any:
    """A second client on ``raw``'s server(s) whose XRANGE replies can be left unparsed."""
    if isinstance(raw, RedisCluster):
        return bytes_client(raw)
    return redis_lib.Redis(connection_pool=raw.connection_pool)


def _parse_page(
    reply: list[Any],
) -> tuple[NDArray[np.bytes_], NDArray[np.bytes_], NDArray[np.int8], NDArray[np.int64]]:
    """(user ids, paper ids, kind codes (-1: unknown), timestamps) of one XRANGE page."""
    if isinstance(reply[0][1], dict):  # a Cluster's nodes parse entries into dicts
        reply = [(eid, [x for kv in fields.items() for x in kv]) for eid, fields in reply]
    width = len(reply[0][1])
    if all(len(entry[1]) == width for entry in reply):
        table = np.array([entry[1] for entry in reply], dtype=object)
        names = table[:, 0::2]
        if (names == names[0]).all():
            order = list(names[0])
            if all(f in order for f in _FIELDS):
                column = {f: table[:, 2 * order.index(f) + 1] for f in _FIELDS}
                return _columns(column[b"u"], column[b"p"], column[b"k"], column[b"ts"])
    # mixed layouts (hand-written entries, future fields): slower, one dict per entry
    parsed = [dict(zip(e[1][0::2], e[1][1::2], strict=True)) for e in reply]
    return _columns(*(np.array([d.get(f, b"") for d in parsed], dtype=object) for f in _FIELDS))


def _columns(
    u: NDArray[Any], p: NDArray[Any], k: NDArray[Any], ts: NDArray[Any]
) -> tuple[NDArray[np.bytes_], NDArray[np.bytes_], NDArray[np.int8], NDArray[np.int64]]:
    kinds = np.asarray(k.astype("S8"))
    codes = np.full(len(kinds), -1, dtype=np.int8)
    for code, name in enumerate(KINDS):
        codes[kinds == name.encode()] = code
    try:
        stamps = ts.astype("S24").astype(np.float64).astype(np.int64)
    except ValueError:
        stamps = np.array([_to_int(v) for v in ts], dtype=np.int64)
        codes[stamps < 0] = -1
    return u.astype("S"), p.astype("S"), codes, stamps


def _to_int(value: bytes) -> int:
    try:
        return int(float(value))
    except ValueError:
        return -1


def _encode_ids(ids: NDArray[np.bytes_], index: dict[bytes, int], table: list[bytes]) -> NDArray:
    """Codes of ``ids``; ids not yet in ``index`` get the next codes (in first-seen order)."""
    if len(ids) == 0:
        return np.array([], dtype=np.int32)
    unique, inverse = np.unique(ids, return_inverse=True)
    codes = np.empty(len(unique), dtype=np.int32)
    for i, value in enumerate(unique.tolist()):  # one dict lookup per distinct id, not per event
        code = index.get(value)
        if code is None:
            code = index[value] = len(table)
            table.append(value)
        codes[i] = code
    return codes[inverse.reshape(-1)]


# -- storage ------------------------------------------------------------------------------------


def _empty_manifest(keys: Keys | None = None) -> dict[str, Any]:
    return {"segments": [], "vocabulary": None, "last_ids": {}, "compacted_at": None}


def _read_manifest(redis: redis_lib.Redis, keys: Keys) -> dict[str, Any] | None:
    raw = redis.get(keys.compact_manifest())
    return None if raw is None else json.loads(raw)


def _load_manifest(redis: redis_lib.Redis, keys: Keys, manifest: dict[str, Any]) -> Events:
    if manifest["vocabulary"] is None:
        return Events.empty()
    vocabulary = read_arrays(redis, keys.compact_blob(manifest["vocabulary"]))
    parts = [read_arrays(redis, keys.compact_blob(s["id"])) for s in manifest["segments"]]
    return Events(
        users=vocabulary["users"],
        items=vocabulary["items"],
        user=_cat([p["user"] for p in parts], np.int32),
        item=_cat([p["item"] for p in parts], np.int32),
        kind=_cat([p["kind"] for p in parts], np.int8),
        ts=_cat([p["ts"] for p in parts], np.int64),
    )


def _write_segment(
    raw: redis_lib.Redis, keys: Keys, rows: dict[str, NDArray[Any]], written: list[str]
) -> dict[str, Any]:
    blob = f"seg-{uuid.uuid4().hex}"
    _write_aside(raw, keys, blob, rows, written)
    return {
        "id": blob,
        "rows": len(rows["ts"]),
        "min_ts": int(rows["ts"].min()),
        "max_ts": int(rows["ts"].max()),
    }


def _write_vocabulary(
    raw: redis_lib.Redis,
    keys: Keys,
    users: NDArray[np.bytes_],
    items: NDArray[np.bytes_],
    written: list[str],
) -> str:
    blob = f"voc-{uuid.uuid4().hex}"
    _write_aside(raw, keys, blob, {"users": users, "items": items}, written)
    return blob


def _write_aside(
    raw: redis_lib.Redis,
    keys: Keys,
    blob: str,
    arrays: dict[str, NDArray[Any]],
    written: list[str],
) -> None:
    raw.sadd(keys.compact_pending(), keys.compact_blob(blob))
    written.append(keys.compact_blob(blob))
    write_arrays(raw, keys.compact_blob(blob), arrays)


def _swap_manifest(
    raw: redis_lib.Redis,
    keys: Keys,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    written: list[str],
) -> None:
    """Replace the manifest in one SET; then delete the blobs only the old one named."""
    with raw.pipeline(transaction=True) as pipe:
        pipe.watch(keys.compact_manifest())
        current = pipe.get(keys.compact_manifest())
        if (json.loads(current) if current else None) != old:
            pipe.reset()
            raise CompactionBusy("the manifest changed during compaction")
        pipe.multi()
        pipe.set(keys.compact_manifest(), json.dumps(new))
        if written:
            pipe.srem(keys.compact_pending(), *written)
        pipe.execute()
    if old is None:
        return
    still_named = {s["id"] for s in new["segments"]} | {new["vocabulary"]}
    stale = [s["id"] for s in old["segments"]] + [old["vocabulary"]]
    doomed = [keys.compact_blob(b) for b in stale if b and b not in still_named]
    if doomed:
        raw.delete(*doomed)


def _delete_leftovers(raw: redis_lib.Redis, keys: Keys) -> None:
    """Delete blobs a killed compaction wrote but never named in a manifest."""
    pending = [p.decode() for p in raw.smembers(keys.compact_pending())]
    if not pending:
        return
    manifest = _read_manifest(raw, keys) or _empty_manifest(keys)
    named = {keys.compact_blob(s["id"]) for s in manifest["segments"]}
    if manifest["vocabulary"]:
        named.add(keys.compact_blob(manifest["vocabulary"]))
    orphans = [p for p in pending if p not in named]
    if orphans:
        raw.delete(*orphans)
        log.warning("deleted %d blobs left by an interrupted compaction", len(orphans))
    raw.srem(keys.compact_pending(), *pending)


# -- array helpers ------------------------------------------------------------------------------


def _shrink_vocabulary(
    users: NDArray[np.bytes_], items: NDArray[np.bytes_], rows: dict[str, NDArray[Any]]
) -> tuple[NDArray[np.bytes_], NDArray[np.bytes_], dict[str, NDArray[Any]]]:
    """Drop ids no event uses any more (erased users, expired papers) and renumber the codes."""
    used_users, user_codes = np.unique(rows["user"], return_inverse=True)
    used_items, item_codes = np.unique(rows["item"], return_inverse=True)
    rows = {
        **rows,
        "user": user_codes.reshape(-1).astype(np.int32),
        "item": item_codes.reshape(-1).astype(np.int32),
    }
    return _bytes_array(users[used_users]), _bytes_array(items[used_items]), rows


def tombstoned_codes(vocabulary: NDArray[np.bytes_], tombstones: set[bytes]) -> NDArray[np.int32]:
    """Positions in ``vocabulary`` of the user ids whose digest is among ``tombstones``.

    Hashing runs only if there is any tombstone.
    """
    if not tombstones or len(vocabulary) == 0:
        return np.array([], dtype=np.int32)
    wanted = {t.decode() for t in tombstones}
    hits = [i for i, user in enumerate(vocabulary.tolist()) if tombstone(user) in wanted]
    return np.array(hits, dtype=np.int32)


def _bytes_array(values: Any) -> NDArray[np.bytes_]:
    array = np.array(values, dtype="S")
    return array if array.dtype.itemsize else np.array(values, dtype="S1")


def _cat(parts: list[NDArray[Any]], dtype: type) -> NDArray[Any]:
    if not parts:
        return np.array([], dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)
