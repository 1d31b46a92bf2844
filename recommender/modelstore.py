"""Versioned models in Redis, published atomically, with rollback; and the binary array codec.

A model version is one Redis hash, ``Keys.model(version)``: a ``meta`` field (JSON: parameters,
metrics, trained_at, duration) and its numpy arrays (``user_ids``, ``item_ids``,
``user_factors``, ``item_factors``) in ``.npy`` format, cut into chunks small enough for one
Redis reply each. A version is written in full first; only then does one ``SET`` of
``Keys.model_active()`` make it the one serving reads, so a reader sees the old model or the new
one and never half of either. The newest ``keep`` versions (and always the active one) are kept,
and any kept version can be activated again (rollback).

Erasure reaches the stored versions too: :func:`forget_user` overwrites the user's row of
``user_factors`` with zeros in every kept version (only the chunk that holds the row is read and
written back, under ``WATCH``), so a rollback cannot bring an erased reader's vector back.

The array codec (:func:`write_arrays`, :func:`read_arrays`) is shared with
:mod:`recommender.compaction`; it never unpickles (object arrays are refused).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis as redis_lib
from numpy.typing import NDArray
from redis.cluster import RedisCluster

from recommender.keys import Keys
from recommender.redisconn import bytes_client

log = logging.getLogger(__name__)

CHUNK_BYTES = 32 * 1024 * 1024
_LAYOUT = "_layout"
_META = "meta"
MODEL_ARRAYS = ("user_ids", "item_ids", "user_factors", "item_factors")


class ModelNotFound(LookupError):
    """No stored model has the requested version."""


# -- binary arrays in Redis hashes --------------------------------------------------------------


_BINARY: weakref.WeakKeyDictionary[Any, redis_lib.Redis] = weakref.WeakKeyDictionary()


def binary(redis: redis_lib.Redis) -> redis_lib.Redis:
    """The same server as ``redis``, replying raw bytes (binary fields must not be decoded).

    One such client per client (or connection pool), kept as long as that lives.
    """
    if not redis.get_encoder().decode_responses:
        return redis
    owner = redis if isinstance(redis, RedisCluster) else redis.connection_pool
    found = _BINARY.get(owner)
    if found is None:
        found = _BINARY[owner] = bytes_client(redis)
    return found


def _encode(array: NDArray[Any]) -> bytes:
    if array.dtype.hasobject:
        raise ValueError("object arrays cannot be stored (no pickles)")
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _decode(data: bytes | bytearray) -> NDArray[Any]:
    buffer = io.BytesIO(data)
    major, _minor = np.lib.format.read_magic(buffer)
    if major == 1:
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buffer)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buffer)
    if dtype.hasobject or fortran:
        raise ValueError("stored array has an unsupported layout")
    count = int(np.prod(shape)) if shape else 1
    # frombuffer shares the buffer's memory (writable: implicit's kernels refuse read-only input)
    return np.frombuffer(data, dtype=dtype, count=count, offset=buffer.tell()).reshape(shape)


def write_arrays(
    redis: redis_lib.Redis,
    key: str,
    arrays: Mapping[str, NDArray[Any]],
    extra: Mapping[str, str] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> None:
    """Store ``arrays`` (and plain string fields ``extra``) in the hash ``key``.

    Each array is written as ``.npy`` bytes cut into ``chunk_bytes`` pieces, fields
    ``"<name>.<i>"``; the ``_layout`` field records the number of chunks of each.
    """
    layout: dict[str, int] = {}
    for name, array in arrays.items():
        data = memoryview(_encode(np.asarray(array)))
        chunks = max(1, -(-len(data) // chunk_bytes))
        layout[name] = chunks
        pipe = redis.pipeline(transaction=False)
        for i in range(chunks):
            pipe.hset(key, f"{name}.{i}", bytes(data[i * chunk_bytes : (i + 1) * chunk_bytes]))
        pipe.execute()
    fields = dict(extra or {})
    fields[_LAYOUT] = json.dumps(layout)
    redis.hset(key, mapping=fields)


def read_arrays(
    redis: redis_lib.Redis, key: str, names: tuple[str, ...] | None = None
) -> dict[str, NDArray[Any]]:
    """The arrays stored by :func:`write_arrays` under ``key`` (``names``: only those).

    Raises ``KeyError`` when the hash or one of the arrays is missing.
    """
    raw = binary(redis)
    layout_raw = raw.hget(key, _LAYOUT)
    if layout_raw is None:
        raise KeyError(key)
    layout: dict[str, int] = json.loads(layout_raw)
    wanted = layout if names is None else {n: layout[n] for n in names}
    out: dict[str, NDArray[Any]] = {}
    for name, chunks in wanted.items():
        parts = raw.hmget(key, [f"{name}.{i}" for i in range(chunks)])
        if any(p is None for p in parts):
            raise KeyError(f"{key} {name}")
        out[name] = _decode(bytearray().join(parts))  # one copy, into writable memory
    return out


# -- model versions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredModel:
    """A trained model as stored: ids and factors, plus its metadata.

    user_ids : bytes array (n_users,), sorted; row ``i`` of ``user_factors`` belongs to it
    item_ids : bytes array (n_items,), sorted
    user_factors : float32 array (n_users, factors)
    item_factors : float32 array (n_items, factors)
    meta : JSON-able dict: ``params``, ``metrics``, ``trained_at``, ``duration_s``, ...
    """

    user_ids: NDArray[np.bytes_]
    item_ids: NDArray[np.bytes_]
    user_factors: NDArray[np.float32]
    item_factors: NDArray[np.float32]
    meta: dict[str, Any] = field(default_factory=dict)
    version: str | None = None

    @classmethod
    def from_ids(
        cls,
        user_ids: Any,
        item_ids: Any,
        user_factors: NDArray[Any],
        item_factors: NDArray[Any],
        meta: dict[str, Any] | None = None,
    ) -> StoredModel:
        """Build from ids in any order (str or bytes); rows are sorted by id for lookups."""
        users = _as_bytes(user_ids)
        items = _as_bytes(item_ids)
        if len(users) != len(user_factors) or len(items) != len(item_factors):
            raise ValueError("ids and factor rows differ in number")
        u_order = np.argsort(users, kind="stable")
        i_order = np.argsort(items, kind="stable")
        return cls(
            user_ids=users[u_order],
            item_ids=items[i_order],
            user_factors=np.ascontiguousarray(np.asarray(user_factors, np.float32)[u_order]),
            item_factors=np.ascontiguousarray(np.asarray(item_factors, np.float32)[i_order]),
            meta=dict(meta or {}),
        )

    def user_row(self, user_id: str) -> int | None:
        """Row of ``user_id`` in ``user_factors``, or None (binary search, no Python dict)."""
        return _row(self.user_ids, user_id)

    def item_rows(self, item_ids: Any) -> NDArray[np.int64]:
        """Rows of ``item_ids`` in ``item_factors``; -1 where unknown."""
        return rows_of(self.item_ids, _as_bytes(item_ids))


def _as_bytes(ids: Any) -> NDArray[np.bytes_]:
    array = np.asarray(ids)
    if array.dtype.kind == "S":
        return array
    if len(array) == 0:
        return np.array([], dtype="S1")
    return np.char.encode(array.astype(str), "utf-8")


def _row(sorted_ids: NDArray[np.bytes_], one: str) -> int | None:
    needle = one.encode()
    i = int(np.searchsorted(sorted_ids, needle))
    if i < len(sorted_ids) and sorted_ids[i] == needle:
        return i
    return None


def rows_of(sorted_ids: NDArray[np.bytes_], wanted: NDArray[np.bytes_]) -> NDArray[np.int64]:
    """Index of each of ``wanted`` in the sorted ``sorted_ids``; -1 where absent."""
    if len(sorted_ids) == 0 or len(wanted) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    i = np.searchsorted(sorted_ids, wanted)
    clipped = np.minimum(i, len(sorted_ids) - 1)
    return np.where(sorted_ids[clipped] == wanted, clipped, -1).astype(np.int64)


def new_version(now: float) -> str:
    """A version name that sorts by time: ``20261128T030000Z-1a2b3c``."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def store(
    redis: redis_lib.Redis,
    keys: Keys,
    model: StoredModel,
    *,
    activate: bool,
    keep: int,
    now: float | None = None,
) -> str:
    """Write ``model`` as a new version; if ``activate``, flip the active pointer to it.

    All parts are written before the pointer moves. Then versions beyond the newest ``keep``
    (never the active one) are deleted. Returns the new version.
    """
    now = time.time() if now is None else now
    version = new_version(now)
    meta = {**model.meta, "version": version, "stored_at": now}
    arrays = {name: getattr(model, name) for name in MODEL_ARRAYS}
    write_arrays(
        redis, keys.model(version), arrays, extra={_META: json.dumps(meta)}, chunk_bytes=CHUNK_BYTES
    )
    redis.zadd(keys.model_versions(), {version: now})
    if activate:
        redis.set(keys.model_active(), version)
        log.info("model %s stored and activated", version)
    else:
        log.info("model %s stored, not activated", version)
    prune(redis, keys, keep)
    return version


def activate(redis: redis_lib.Redis, keys: Keys, version: str) -> None:
    """Make ``version`` the active model (rollback or roll forward); ModelNotFound if absent."""
    with redis.pipeline(transaction=True) as pipe:
        # WATCH: a concurrent prune deleting this version makes the transaction fail, not half-work
        pipe.watch(keys.model(version))
        if not pipe.hexists(keys.model(version), _META):
            pipe.reset()
            raise ModelNotFound(version)
        pipe.multi()
        pipe.set(keys.model_active(), version)
        pipe.execute()
    log.info("model %s activated", version)


def active_version(redis: redis_lib.Redis, keys: Keys) -> str | None:
    """The active version, or None before the first model."""
    value = redis.get(keys.model_active())
    return value.decode() if isinstance(value, bytes) else value


def meta(redis: redis_lib.Redis, keys: Keys, version: str) -> dict[str, Any]:
    """The metadata of ``version`` (ModelNotFound if absent)."""
    raw = redis.hget(keys.model(version), _META)
    if raw is None:
        raise ModelNotFound(version)
    return json.loads(raw)


def load(redis: redis_lib.Redis, keys: Keys, version: str) -> StoredModel:
    """Read ``version`` in full (ModelNotFound if absent or deleted while reading)."""
    try:
        arrays = read_arrays(redis, keys.model(version), MODEL_ARRAYS)
        info = meta(redis, keys, version)
    except KeyError:
        raise ModelNotFound(version) from None
    return StoredModel(**arrays, meta=info, version=version)


def load_active(redis: redis_lib.Redis, keys: Keys) -> StoredModel | None:
    """The active model, or None. Retries when the pointer moves while reading."""
    for _ in range(3):
        version = active_version(redis, keys)
        if version is None:
            return None
        try:
            return load(redis, keys, version)
        except ModelNotFound:
            continue
    raise ModelNotFound("active model kept changing while being read")


def list_versions(redis: redis_lib.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every stored version, newest first: its metadata plus ``active`` (bool)."""
    active = active_version(redis, keys)
    out = []
    for raw in redis.zrevrange(keys.model_versions(), 0, -1):
        version = raw.decode() if isinstance(raw, bytes) else raw
        try:
            info = meta(redis, keys, version)
        except ModelNotFound:
            continue
        out.append({**info, "version": version, "active": version == active})
    return out


def zero_user_rows(
    redis: redis_lib.Redis,
    keys: Keys,
    version: str,
    rows: Any,
    n_users: int,
    *,
    attempts: int = 5,
) -> bool:
    """Overwrite rows of ``user_factors`` (``n_users`` rows) with zeros in the stored ``version``.

    Only the chunks holding those rows are read and rewritten, in one ``WATCH``ed transaction
    (retried when another writer touched the version meanwhile). Returns False when the version
    no longer exists (pruned: nothing left to scrub).
    """
    rows = sorted({int(r) for r in rows})
    if not rows:
        return True
    key = keys.model(version)
    raw = binary(redis)
    for _ in range(attempts):
        with raw.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                layout_raw = pipe.hget(key, _LAYOUT)
                info = pipe.hget(key, _META)
                if layout_raw is None or info is None:
                    pipe.reset()
                    return False
                chunks = json.loads(layout_raw)["user_factors"]
                factors = int(json.loads(info)["params"]["factors"])
                names = [f"user_factors.{i}" for i in range(chunks)]
                lengths = [int(pipe.hstrlen(key, name)) for name in names]
                ends = np.cumsum(lengths)
                row_bytes = factors * np.dtype(np.float32).itemsize
                # the .npy header comes first; the data are the last n_users x factors floats
                data_start = int(ends[-1]) - n_users * row_bytes
                patches: dict[int, bytearray] = {}
                for row in rows:
                    lo = data_start + row * row_bytes
                    hi = lo + row_bytes
                    first = int(np.searchsorted(ends, lo, side="right"))
                    last = int(np.searchsorted(ends, hi - 1, side="right"))
                    for c in range(first, last + 1):
                        if c not in patches:
                            patches[c] = bytearray(pipe.hget(key, names[c]))
                        base = int(ends[c]) - lengths[c]
                        a, b = max(lo, base) - base, min(hi, int(ends[c])) - base
                        patches[c][a:b] = bytes(b - a)
                pipe.multi()
                for c, data in patches.items():
                    pipe.hset(key, names[c], bytes(data))
                pipe.execute()
                return True
            except redis_lib.WatchError:
                continue
    raise RuntimeError(f"model {version} kept changing while its rows were being erased")


def zero_users(
    redis: redis_lib.Redis,
    keys: Keys,
    rows_of_ids: Callable[[NDArray[np.bytes_]], Any],
    versions: list[str] | None = None,
) -> int:
    """Zero, in each of ``versions`` (default: every stored one), the user rows that
    ``rows_of_ids(user_ids)`` picks from that version's sorted ids; returns the rows zeroed."""
    if versions is None:
        versions = [
            v.decode() if isinstance(v, bytes) else v
            for v in redis.zrange(keys.model_versions(), 0, -1)
        ]
    zeroed = 0
    for version in versions:
        try:
            ids = read_arrays(redis, keys.model(version), ("user_ids",))["user_ids"]
        except KeyError:
            continue  # pruned meanwhile
        rows = np.asarray(rows_of_ids(ids), dtype=np.int64)
        if len(rows) and zero_user_rows(redis, keys, version, rows, len(ids)):
            zeroed += len(rows)
    return zeroed


def forget_user(redis: redis_lib.Redis, keys: Keys, user_id: str) -> int:
    """Erasure hook: zero ``user_id``'s factor row in every stored version; returns how many."""

    def rows(ids: NDArray[np.bytes_]) -> list[int]:
        row = _row(ids, user_id)
        return [] if row is None else [row]

    scrubbed = zero_users(redis, keys, rows)
    if scrubbed:
        log.info("erased a user's factors from %d model version(s)", scrubbed)
    return scrubbed


def prune(redis: redis_lib.Redis, keys: Keys, keep: int) -> list[str]:
    """Delete versions older than the newest ``keep``, sparing the active one."""
    active = active_version(redis, keys)
    old = redis.zrevrange(keys.model_versions(), max(keep, 1), -1)
    deleted = []
    for raw in old:
        version = raw.decode() if isinstance(raw, bytes) else raw
        if version == active:
            continue
        redis.delete(keys.model(version), keys.model_fresh_items(version))
        redis.zrem(keys.model_versions(), version)
        deleted.append(version)
    if deleted:
        log.info("pruned model versions %s", ", ".join(deleted))
    return deleted
