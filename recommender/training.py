"""The nightly training job: compact, fit, evaluate against the active model, gate, publish.

One run (:func:`run_training`, always under the single-flight lock of :func:`training_lock`):

1. **compact** the event log (:mod:`recommender.compaction`): only entries added since the last
   run are read from the streams;
2. **fit** ALS (:func:`recommender.als.train`, the same entry point as the replay evaluation) on
   every event before ``split = now - holdout``; the events after ``split`` are held out;
3. **evaluate** recall@20 and NDCG@20 on the held-out slice for the new model, the active model
   and global trending (as it stood at ``split``); a user's relevant papers are those they
   opened or clicked after ``split`` and had not read before;
4. **gate**: a model whose recall@20 is more than ``quality_margin`` (a fraction) below the
   active model's is stored but not activated;
5. **publish** (:func:`recommender.modelstore.store`), then record the success time.

The model that ships is the one trained before ``split`` and evaluated: the number in the
metrics is the number of the model that serves, and one fit instead of two keeps a retrain
within 1.5x of a bare fit. The held-out day is not lost: serving folds users with events after
``trained_at`` (= ``split``) and papers first read since then into the model at request time.
When there is nothing before ``split`` (a young deployment), the model is fitted on everything
and published without a comparison.

A run that crashes or is killed publishes nothing: the active pointer only moves at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import redis as redis_lib
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

from recommender import als, compaction, modelstore, quality, ranking, trending
from recommender.compaction import Events
from recommender.keys import Keys
from recommender.matrix import DISMISS, build_confidence
from recommender.settings import Settings

log = logging.getLogger(__name__)

K = 20
EVAL_USERS = 5_000
EVAL_CHUNK = 512
TREND_WINDOW_HALF_LIVES = 10

Progress = Callable[[str, float], None]

# Overall fraction at which each stage starts; the fit takes most of the time.
_STAGES = {
    "compact": (0.0, 0.15),
    "fit": (0.15, 0.85),
    "evaluate": (0.85, 0.95),
    "publish": (0.95, 1.0),
}


class TrainingBusy(RuntimeError):
    """Another training holds the lock; ``job_id`` names it (None if unknown)."""

    def __init__(self, job_id: str | None) -> None:
        super().__init__(f"a training is already running (job {job_id})")
        self.job_id = job_id


def train_params(settings: Settings) -> als.TrainParams:
    """The ALS hyper-parameters the settings ask for."""
    return als.TrainParams(
        factors=settings.als_factors,
        iterations=settings.als_iterations,
        regularization=settings.als_regularization,
    )


@contextmanager
def training_lock(redis: redis_lib.Redis, keys: Keys, ttl_s: float, job_id: str) -> Iterator[None]:
    """Hold the single-flight training lock; TrainingBusy if another process holds it.

    The lock expires ``ttl_s`` after its holder dies; while the holder lives a thread renews it
    every ``ttl_s / 3`` (the fit runs in compiled code that releases the GIL).
    """
    lock = redis.lock(keys.train_lock(), timeout=ttl_s, blocking=False, thread_local=False)
    if not lock.acquire():
        running = redis.get(keys.train_job())
        raise TrainingBusy(running.decode() if isinstance(running, bytes) else running)
    redis.set(keys.train_job(), job_id, ex=int(ttl_s) + 60)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                lock.reacquire()
                redis.expire(keys.train_job(), int(ttl_s) + 60)
            except redis_lib.exceptions.LockError:
                log.error("training lock lost")
                return
            except redis_lib.exceptions.RedisError as exc:
                log.warning("could not renew the training lock: %s", exc)

    renewer = threading.Thread(target=renew, name="train-lock-renewer", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        # compare-and-delete: only our own job id, in case the key was taken over
        with redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.train_job())
                current = pipe.get(keys.train_job())
                if (current.decode() if isinstance(current, bytes) else current) == job_id:
                    pipe.multi()
                    pipe.delete(keys.train_job())
                    pipe.execute()
            except redis_lib.exceptions.WatchError:
                pass
        try:
            lock.release()
        except redis_lib.exceptions.LockError:
            log.warning("training lock had expired before release")


def run_training(
    redis: redis_lib.Redis,
    settings: Settings,
    *,
    now: float | None = None,
    progress: Progress | None = None,
    keys: Keys | None = None,
    params: als.TrainParams | None = None,
) -> dict[str, Any]:
    """One training run (the caller holds :func:`training_lock`). Returns its report.

    The report: ``version``, ``activated``, ``gate`` (why), ``metrics`` (``model``, ``active``,
    ``trending``: each ``{"recall@20", "ndcg@20", "users"}`` or None), ``duration_s``,
    ``events``, ``users``, ``papers``, ``trained_at``.
    """
    started = time.monotonic()
    now = time.time() if now is None else float(now)
    keys = keys or Keys(settings.key_prefix, settings.stream_partitions)
    params = params or train_params(settings)

    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            lo, hi = _STAGES[stage]
            progress(stage, lo + (hi - lo) * min(max(fraction, 0.0), 1.0))

    report("compact", 0.0)
    # Erasure backstop: readers erased since the last run leave every stored version here even if
    # the request-time scrub (an erase hook) failed half-way; the compaction then drops the
    # tombstones with the events.
    scrub_erased(redis, keys)
    events, stats = compaction.compact(
        redis, keys, now=now, retention_s=settings.retention_s, progress=report
    )
    if len(events) == 0:
        raise ValueError("no events to train on")

    split = now - settings.holdout_days * 86400.0
    holdout = bool((events.ts < split).any())
    fit_until = split if holdout else now
    report("fit", 0.0)
    model = als.train(
        events.user,
        events.item,
        events.kind,
        events.ts,
        fit_until,
        params,
        progress=lambda done, total: report("fit", done / total),
    )
    stored = to_stored(model, events)

    metrics: dict[str, Any] = {"model": None, "active": None, "trending": None}
    active = modelstore.load_active(redis, keys)
    if holdout:
        report("evaluate", 0.0)
        metrics = evaluate(events, split, stored, active, half_life_s=settings.trending_half_life_s)
    activated, gate = quality_gate(metrics, active, settings.quality_margin)
    fresh = 0
    if holdout:  # papers first read in the held-out slice get vectors now, not at serving
        stored, fresh = _with_new_papers(stored, events, events.ts >= split, now)

    report("publish", 0.0)
    duration = time.monotonic() - started
    meta = {
        "params": model.params,
        "metrics": metrics,
        "trained_at": model.trained_at,
        "duration_s": duration,
        "events": len(events),
        "new_events": stats.new_events,
        "users": len(stored.user_ids),
        "papers": len(stored.item_ids),
        "fresh_papers": fresh,
        "gate": gate,
    }
    stored = modelstore.StoredModel(
        stored.user_ids, stored.item_ids, stored.user_factors, stored.item_factors, meta
    )
    version = modelstore.store(
        redis, keys, stored, activate=activated, keep=settings.model_keep_versions, now=now
    )
    # A reader erased after this run's compaction is in the model: zero their row in it.
    scrub_erased(redis, keys, [version])
    redis.set(keys.train_last_success(), repr(now))
    report("publish", 1.0)
    log.info("training done: version %s, %s, %.1fs", version, gate, duration)
    return {**meta, "version": version, "activated": activated}


def scrub_erased(redis: redis_lib.Redis, keys: Keys, versions: list[str] | None = None) -> int:
    """Zero the rows of every tombstoned (erased) reader in ``versions`` (default: all stored).

    Returns the number of rows zeroed. Costs nothing when there is no tombstone.
    """
    tombstones = modelstore.binary(redis).smembers(keys.compact_tombstones())
    if not tombstones:
        return 0
    return modelstore.zero_users(
        redis, keys, lambda ids: compaction.tombstoned_codes(ids, tombstones), versions
    )


def _with_new_papers(
    stored: modelstore.StoredModel, events: Events, mask: NDArray[np.bool_], now: float
) -> tuple[modelstore.StoredModel, int]:
    ids, vectors = fold_in_new_papers(
        stored,
        events.users[events.user[mask]],
        events.items[events.item[mask]],
        events.kind[mask],
        events.ts[mask],
        now,
    )
    if len(ids) == 0:
        return stored, 0
    grown = modelstore.StoredModel.from_ids(
        stored.user_ids,
        np.concatenate([stored.item_ids, ids.astype(stored.item_ids.dtype.kind)]),
        stored.user_factors,
        np.vstack([stored.item_factors, vectors]),
        meta=stored.meta,
    )
    return grown, len(ids)


def fold_in_new_papers(
    model: modelstore.StoredModel,
    users: NDArray[np.bytes_],
    items: NDArray[np.bytes_],
    kinds: NDArray[np.int8],
    ts: NDArray[np.int64],
    now: float,
) -> tuple[NDArray[np.bytes_], NDArray[np.float32]]:
    """Vectors for papers ``model`` has no row for, from their readers among its users.

    Parameters
    ----------
    model : StoredModel
    users, items : bytes arrays (n,) -- user and paper id of each event
    kinds : int8 (n,) ; ts : int64 (n,)
    now : float -- the decay reference

    Returns
    -------
    ids : bytes (k,) -- the new papers with at least one weighted reader the model knows
    vectors : float32 (k, factors)
    """
    factors = model.item_factors.shape[1]
    nothing = np.array([], dtype="S1"), np.zeros((0, factors), np.float32)
    if len(items) == 0 or len(model.user_ids) == 0:
        return nothing
    user_rows = modelstore.rows_of(model.user_ids, users.astype(model.user_ids.dtype.kind))
    item_rows = modelstore.rows_of(model.item_ids, items.astype(model.item_ids.dtype.kind))
    new = (item_rows < 0) & (user_rows >= 0)
    if not new.any():
        return nothing
    params = als.TrainParams(**model.meta["params"])
    ids, local = np.unique(items[new], return_inverse=True)
    # papers as rows, the model's users as columns: the transpose of the training matrix
    readers = build_confidence(
        local.reshape(-1),
        user_rows[new],
        kinds[new],
        ts[new],
        len(ids),
        len(model.user_ids),
        now,
        params,
    )
    has_readers = np.diff(readers.indptr) > 0
    if not has_readers.any():
        return nothing
    solver_model = als.Model(
        user_ids=model.user_ids,
        item_ids=model.item_ids,
        user_factors=model.user_factors,
        item_factors=model.item_factors,
        params=model.meta["params"],
        trained_at=float(model.meta["trained_at"]),
    )
    vectors = als.fold_in_items(solver_model, readers[has_readers])
    return ids[has_readers], vectors


def to_stored(model: als.Model, events: Events) -> modelstore.StoredModel:
    """The model with the compaction's integer codes turned back into string ids."""
    return modelstore.StoredModel.from_ids(
        events.users[np.asarray(model.user_ids, dtype=np.int64)],
        events.items[np.asarray(model.item_ids, dtype=np.int64)],
        model.user_factors,
        model.item_factors,
        meta={"params": model.params, "trained_at": model.trained_at},
    )


def quality_gate(
    metrics: dict[str, Any], active: modelstore.StoredModel | None, margin: float
) -> tuple[bool, str]:
    """Whether to activate the new model, and why."""
    if active is None:
        return True, "first model"
    new, old = metrics.get("model"), metrics.get("active")
    if not new or not old or old["recall@20"] is None or new["recall@20"] is None:
        return True, "no held-out comparison"
    floor = old["recall@20"] * (1.0 - margin)
    if new["recall@20"] < floor:
        return False, (
            f"held back: recall@20 {new['recall@20']:.4f} < {floor:.4f} "
            f"(active {old['recall@20']:.4f}, margin {margin:.0%})"
        )
    return True, f"recall@20 {new['recall@20']:.4f} vs active {old['recall@20']:.4f}"


# -- evaluation on the held-out slice -----------------------------------------------------------


def evaluate(
    events: Events,
    split: float,
    model: modelstore.StoredModel,
    active: modelstore.StoredModel | None,
    k: int = K,
    max_users: int = EVAL_USERS,
    seed: int = 0,
    half_life_s: float = 48 * 3600.0,
) -> dict[str, Any]:
    """recall@k and NDCG@k of ``model``, ``active`` and trending on events after ``split``.

    At most ``max_users`` users are scored: they are drawn first (from the readers of the
    held-out slice), so only their events are sorted, not the whole log. Trending is summed
    over the first reads of the last ``TREND_WINDOW_HALF_LIVES`` half-lives before ``split``
    (older reads weigh less than 2**-10 each).
    """
    n_items = max(len(events.items), 1)
    rng = np.random.default_rng(seed)
    read = events.kind != DISMISS
    before = events.ts < split
    candidates = np.unique(events.user[~before & read])
    if len(candidates) > 2 * max_users:  # some have no new paper: draw a margin
        candidates = np.sort(rng.choice(candidates, 2 * max_users, replace=False))
    mine = np.isin(events.user, candidates, kind="table") if len(candidates) else before & False
    user, item = events.user[mine], events.item[mine]
    was_before, was_read = before[mine], read[mine]
    past = _pairs(user[was_before], item[was_before], n_items)
    read_past = _pairs(user[was_before & was_read], item[was_before & was_read], n_items)
    future = _pairs(user[~was_before & was_read], item[~was_before & was_read], n_items)
    fresh = np.setdiff1d(future, read_past, assume_unique=True)
    users = np.unique(fresh // n_items)
    if len(users) > max_users:
        users = np.sort(rng.choice(users, max_users, replace=False))
    if len(users) == 0:
        return {"model": None, "active": None, "trending": None}
    relevant = _rows_csr(fresh, users, n_items)
    exclude = _rows_csr(past, users, n_items)

    window = before & read & (events.ts >= split - TREND_WINDOW_HALF_LIVES * half_life_s)
    first_read = _first_read_ts(events, window)
    trend = np.bincount(
        first_read[0],
        weights=trending.increment(first_read[1], split, half_life_s),
        minlength=n_items,
    )
    out = {"trending": _score(ranking.rank_trending(trend, exclude, k)[0], relevant, k)}
    for name, candidate in (("model", model), ("active", active)):
        out[name] = (
            None
            if candidate is None
            else _score(_als_lists(candidate, events, users, exclude, k), relevant, k)
        )
    return out


def _pairs(user: NDArray[Any], item: NDArray[Any], n_items: int) -> NDArray[np.int64]:
    return np.unique(user.astype(np.int64) * n_items + item)


def _rows_csr(pairs: NDArray[np.int64], users: NDArray[Any], n_items: int) -> csr_matrix:
    """One row per entry of ``users`` (sorted), the ``pairs`` of that user as columns."""
    pair_users = pairs // n_items
    keep = np.isin(pair_users, users)
    row = np.searchsorted(users, pair_users[keep])
    return csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (row, pairs[keep] % n_items)),
        shape=(len(users), n_items),
    )


def _first_read_ts(events: Events, mask: NDArray[np.bool_]) -> tuple[NDArray[Any], NDArray[Any]]:
    """(item, first read time) of each distinct (user, item) read."""
    user, item, ts = events.user[mask], events.item[mask], events.ts[mask]
    order = np.lexsort((ts, item, user))
    pair = user[order].astype(np.int64) * max(len(events.items), 1) + item[order]
    first = np.ones(len(pair), dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    return item[order][first], ts[order][first].astype(np.float64)


def _als_lists(
    model: modelstore.StoredModel,
    events: Events,
    users: NDArray[Any],
    exclude: csr_matrix,
    k: int,
) -> NDArray[np.int64]:
    """Top-k paper codes (the compaction's codes) of ``model`` for ``users``; -1 if unknown."""
    user_rows = modelstore.rows_of(model.user_ids, events.users[users])
    item_codes = _codes_in(events.items, model.item_ids)  # model row -> compaction code
    to_model = np.full(len(events.items), -1, dtype=np.int64)
    to_model[item_codes[item_codes >= 0]] = np.flatnonzero(item_codes >= 0)
    has_factor = item_codes >= 0
    out = np.full((len(users), k), -1, dtype=np.int64)
    known = np.flatnonzero(user_rows >= 0)
    for lo in range(0, len(known), EVAL_CHUNK):
        chunk = known[lo : lo + EVAL_CHUNK]
        rows = exclude[chunk].tocoo()
        cols = to_model[rows.col]
        ok = cols >= 0
        masked = csr_matrix(
            (rows.data[ok], (rows.row[ok], cols[ok])), shape=(len(chunk), len(item_codes))
        )
        ids, _ = ranking.rank_personal(
            model.user_factors[user_rows[chunk]], model.item_factors, has_factor, masked, k
        )
        out[chunk] = np.where(ids >= 0, item_codes[ids.clip(0)], -1)
    return out


def _codes_in(vocabulary: NDArray[np.bytes_], ids: NDArray[np.bytes_]) -> NDArray[np.int64]:
    """Index of each of ``ids`` in the unsorted ``vocabulary``; -1 where absent."""
    order = np.argsort(vocabulary, kind="stable")
    rows = modelstore.rows_of(vocabulary[order], ids)
    return np.where(rows >= 0, order[rows.clip(0)], -1)


def _score(lists: NDArray[np.int64], relevant: csr_matrix, k: int) -> dict[str, Any]:
    recall = quality.recall_at_k(lists, relevant, k)
    ndcg = quality.ndcg_at_k(lists, relevant, k)
    return {
        f"recall@{k}": _mean(recall),
        f"ndcg@{k}": _mean(ndcg),
        "users": int(np.isfinite(recall).sum()),
    }


def _mean(values: NDArray[np.float64]) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None
