"""The co-reading table in Redis: built from the event log, published atomically, read by serving.

:func:`refresh` (the worker's job, every ``PAPERFEED_COREAD_REFRESH_S``) builds the table of
:mod:`recommender.coreading` from what training reads too, without writing to it: the compacted
log (:func:`recommender.compaction.load`) and the entries not compacted yet
(:func:`recommender.compaction.read_tail`), minus the readers erased since the last compaction
(its tombstones). The live papers are the :data:`LIVE` hottest of the ``main`` trending window
at that moment, the list every request reads; a reader's first read of a live paper within
``WINDOW_HALF_LIVES`` half-lives (``PAPERFEED_COREAD_HALF_LIFE_H``) is a recent read.

Storage: a table version is one hash, ``Keys.coread(version)``, of numpy arrays (the codec of
:mod:`recommender.modelstore`) and a ``meta`` JSON field; it is written in full before one
``SET`` of ``Keys.coread_active()`` names it, so a web process reads the old table or the new
one, never half. The newest :data:`KEEP` versions stay (a process may be reading the previous
one). Rebuilds are single-flight behind ``Keys.coread_lock()``.

The table holds paper ids and summed weights, never a user id. An erased reader's reads leave
it at the next rebuild: the erasure hook :func:`forget_user` marks the table stale, and the clock
enqueues a rebuild at its next tick (within a minute) instead of at the next interval.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis as redis_lib
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

from recommender import compaction, coreading
from recommender.keys import Keys
from recommender.matrix import DISMISS
from recommender.modelstore import binary, new_version, read_arrays, rows_of, write_arrays
from recommender.settings import Settings

log = logging.getLogger(__name__)

LIVE = 500
"""Live papers (columns): the hottest of the main trending window, as many as a request reads."""
KEEP = 2
LOCK_TTL_S = 600
_META = "meta"
_ARRAYS = ("row_ids", "live_ids", "indptr", "indices", "data", "share")


class CoreadBusy(RuntimeError):
    """Another process is rebuilding the co-reading table."""


@dataclass(frozen=True)
class LiveTable:
    """A co-reading table with the paper ids of its rows and columns.

    row_ids : bytes (n_rows,) -- sorted; the papers some recent reader has read
    live_ids : bytes (m,) -- the live papers, in column order
    table : coreading.Table -- ``counts`` is ``(n_rows, m)``
    meta : dict -- ``version``, ``built_at``, ``half_life_h``, sizes, ``duration_s``
    """

    row_ids: NDArray[np.bytes_]
    live_ids: NDArray[np.bytes_]
    table: coreading.Table
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    def rows(self, paper_ids: list[str]) -> NDArray[np.int64]:
        """The row of each paper id; -1 where the table has none."""
        if not paper_ids:
            return np.zeros(0, np.int64)
        wanted = np.array([p.encode() for p in paper_ids], dtype="S")
        return rows_of(self.row_ids, wanted.astype(self.row_ids.dtype.kind))

    def columns(self, paper_ids: list[str]) -> NDArray[np.int64]:
        """The column of each paper id; -1 where it is not a live paper of this table."""
        if not paper_ids or len(self.live_ids) == 0:
            return np.full(len(paper_ids), -1, np.int64)
        order = np.argsort(self.live_ids, kind="stable")
        wanted = np.array([p.encode() for p in paper_ids], dtype="S")
        found = rows_of(self.live_ids[order], wanted.astype(self.live_ids.dtype.kind))
        return np.where(found >= 0, order[found.clip(0)], -1)


# -- building -----------------------------------------------------------------------------------


def build(
    redis: redis_lib.Redis, keys: Keys, settings: Settings, now: float | None = None
) -> LiveTable:
    """The table as of ``now`` (default: the clock), from the log; nothing is written."""
    started = time.monotonic()
    now = time.time() if now is None else float(now)
    raw = binary(redis)
    items, user, item, kind, ts = _all_events(raw, keys)
    live = _live_codes(raw, keys, items)
    half_life_s = settings.coread_half_life_h * 3600.0

    read = kind != DISMISS
    on_live = read & np.isin(item, live)
    first_user, first_item, first_ts = _first_reads(user[on_live], item[on_live], ts[on_live])
    readers, recent = coreading.recent_matrix(
        first_user, first_item, first_ts, live, now, half_life_s
    )
    theirs = read & np.isin(user, readers)
    history = coreading.history_matrix(
        np.searchsorted(readers, user[theirs]), item[theirs], ts[theirs], len(readers), len(items)
    )
    table = coreading.build(history, recent)
    counts = table.counts
    rows = np.flatnonzero(np.diff(counts.indptr) > 0)
    row_ids = items[rows]
    order = np.argsort(row_ids, kind="stable")
    meta = {
        "built_at": now,
        "half_life_h": settings.coread_half_life_h,
        "readers": len(readers),
        "recent_reads": int(recent.nnz),
        "rows": len(rows),
        "live": len(live),
        "nnz": int(counts.nnz),
        "events": len(user),
        "duration_s": round(time.monotonic() - started, 3),
    }
    return LiveTable(
        row_ids=row_ids[order],
        live_ids=items[live],
        table=coreading.Table(counts=counts[rows[order]], share=table.share),
        meta=meta,
    )


def _all_events(
    raw: redis_lib.Redis, keys: Keys
) -> tuple[NDArray[np.bytes_], NDArray[np.int64], NDArray[np.int64], NDArray, NDArray]:
    """Compacted events (minus tombstoned readers) and the tail, in one code space.

    Returns ``(paper ids, user codes, paper codes, kinds, timestamps)``.
    """
    events = compaction.load(raw, keys)
    tombstones = raw.smembers(keys.compact_tombstones())
    if tombstones and len(events):
        erased = compaction.tombstoned_codes(events.users, tombstones)
        events = events.select(~np.isin(events.user, erased))
    t_users, t_items, t_kinds, t_ts = compaction.read_tail(raw, keys)
    _, t_user = _extend(events.users, t_users)
    items, t_item = _extend(events.items, t_items)
    return (
        items,
        np.concatenate([events.user.astype(np.int64), t_user]),
        np.concatenate([events.item.astype(np.int64), t_item]),
        np.concatenate([events.kind, t_kinds.astype(np.int8)]),
        np.concatenate([events.ts.astype(np.float64), t_ts.astype(np.float64)]),
    )


def _extend(
    vocabulary: NDArray[np.bytes_], ids: NDArray[np.bytes_]
) -> tuple[NDArray[np.bytes_], NDArray[np.int64]]:
    """``vocabulary`` with the ids it lacks appended, and the code of each of ``ids``."""
    if len(ids) == 0:
        return vocabulary, np.zeros(0, np.int64)
    order = np.argsort(vocabulary, kind="stable")
    found = rows_of(vocabulary[order], ids)
    codes = np.where(found >= 0, order[found.clip(0)] if len(order) else -1, -1)
    new_ids, inverse = np.unique(ids[found < 0], return_inverse=True)
    codes[found < 0] = len(vocabulary) + inverse.reshape(-1)
    width = max(vocabulary.dtype.itemsize, ids.dtype.itemsize, 1)
    grown = np.concatenate([vocabulary.astype(f"S{width}"), new_ids.astype(f"S{width}")])
    return grown, codes.astype(np.int64)


def _live_codes(raw: redis_lib.Redis, keys: Keys, items: NDArray[np.bytes_]) -> NDArray[np.int64]:
    """Codes of the hottest papers of the main trending window, hottest first."""
    hot = raw.zrevrange(keys.trending(), 0, LIVE - 1)
    if not hot or len(items) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(items, kind="stable")
    found = rows_of(items[order], np.array(hot, dtype="S").astype(items.dtype.kind))
    return order[found[found >= 0]].astype(np.int64)


def _first_reads(
    user: NDArray[np.int64], item: NDArray[np.int64], ts: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """The earliest read of each (user, paper) pair: a reader counts once, at their first
    read, as in trending."""
    order = np.lexsort((ts, item, user))
    user, item, ts = user[order], item[order], ts[order]
    first = np.ones(len(user), bool)
    first[1:] = (user[1:] != user[:-1]) | (item[1:] != item[:-1])
    return user[first], item[first], ts[first]


# -- storage ------------------------------------------------------------------------------------


def publish(redis: redis_lib.Redis, keys: Keys, live: LiveTable, now: float | None = None) -> str:
    """Store ``live`` as a new version and make it the one serving reads; returns the version."""
    now = time.time() if now is None else now
    version = new_version(now)
    counts = live.table.counts
    arrays = {
        "row_ids": live.row_ids,
        "live_ids": live.live_ids,
        "indptr": counts.indptr.astype(np.int64),
        "indices": counts.indices.astype(np.int32),
        "data": counts.data.astype(np.float32),
        "share": live.table.share.astype(np.float64),
    }
    meta = {**live.meta, "version": version}
    raw = binary(redis)
    write_arrays(raw, keys.coread(version), arrays, extra={_META: json.dumps(meta)})
    raw.zadd(keys.coread_versions(), {version: now})
    raw.set(keys.coread_active(), version)
    # the newest KEEP by build time stay; ties (one ``now`` for two builds) never drop this one
    others = [v for v in raw.zrevrange(keys.coread_versions(), 0, -1) if v.decode() != version]
    for old in others[KEEP - 1 :]:
        raw.delete(keys.coread(old.decode()))
        raw.zrem(keys.coread_versions(), old)
    return version


def active_version(redis: redis_lib.Redis, keys: Keys) -> str | None:
    """The version serving should use, or None before the first build."""
    value = redis.get(keys.coread_active())
    return value.decode() if isinstance(value, bytes) else value


def load(redis: redis_lib.Redis, keys: Keys, version: str) -> LiveTable:
    """Read ``version`` in full (KeyError if it is gone)."""
    raw = binary(redis)
    arrays = read_arrays(raw, keys.coread(version), _ARRAYS)
    meta_raw = raw.hget(keys.coread(version), _META)
    if meta_raw is None:
        raise KeyError(version)
    row_ids, live_ids = arrays["row_ids"], arrays["live_ids"]
    counts = csr_matrix(
        (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(len(row_ids), len(live_ids))
    )
    return LiveTable(
        row_ids=row_ids,
        live_ids=live_ids,
        table=coreading.Table(counts=counts, share=arrays["share"]),
        meta=json.loads(meta_raw),
    )


def forget_user(redis: redis_lib.Redis, keys: Keys, user_id: str) -> None:
    """Erasure hook: the table is rebuilt without the user's reads as soon as the clock ticks
    (the rebuild drops tombstoned readers; no key names the user)."""
    redis.set(keys.coread_stale(), "1")


def due(redis: redis_lib.Redis, keys: Keys, settings: Settings, now: float) -> bool:
    """Whether a rebuild is due: none yet, the newest is ``coread_refresh_s`` old, or stale."""
    raw = binary(redis)
    newest = raw.zrevrange(keys.coread_versions(), 0, 0, withscores=True)
    if not newest or raw.exists(keys.coread_stale()):
        return True
    return now - float(newest[0][1]) >= settings.coread_refresh_s


def refresh(
    redis: redis_lib.Redis, keys: Keys, settings: Settings, now: float | None = None
) -> dict[str, Any]:
    """Build and publish a table under the lock; its metadata. CoreadBusy if another runs."""
    lock = redis.lock(keys.coread_lock(), timeout=LOCK_TTL_S, blocking=False, thread_local=False)
    if not lock.acquire():
        raise CoreadBusy("a co-reading rebuild is running")
    try:
        # cleared before reading: an erasure during the build marks it stale again
        redis.delete(keys.coread_stale())
        live = build(redis, keys, settings, now)
        version = publish(redis, keys, live, now)
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.LockError:
            log.warning("co-reading lock had expired before release")
    log.info(
        "co-reading table %s: %d rows x %d live papers, %d entries, %d readers, %.1fs",
        version,
        live.meta["rows"],
        live.meta["live"],
        live.meta["nnz"],
        live.meta["readers"],
        live.meta["duration_s"],
    )
    return {**live.meta, "version": version}


def delete_all(redis: redis_lib.Redis, keys: Keys) -> None:
    """Remove every co-reading key (tests, a full rebuild)."""
    raw = binary(redis)
    versions = [v.decode() for v in raw.zrange(keys.coread_versions(), 0, -1)]
    raw.delete(
        *[keys.coread(v) for v in versions],
        keys.coread_versions(),
        keys.coread_active(),
        keys.coread_lock(),
        keys.coread_stale(),
    )
