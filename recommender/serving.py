"""Live "trending for you": the active model in memory, hot-swapped, with fold-in at request time.

One :class:`Recommender` per web process holds a :class:`Snapshot` of the active model: item
factors (float32, model papers plus papers folded in since), user factors with their sorted ids
(a user's row is found by binary search, no Python dict of a million ids), and ``Y^T Y`` for
folding users in. Requests read ``self._snapshot`` once and use only that object, so a swap
(one reference assignment) can never hand a request half of two models.

- **Hot swap**: at most every ``model_poll_s`` a request reads the active pointer (one ``GET``);
  when it moved, a background thread loads the new version in full and then swaps the
  reference. Requests meanwhile keep using the old snapshot; no restart, no failed request.
  Only a process's very first load runs inside the request that finds no snapshot.
- **Fresh papers**: papers first read after the training (stream entries after the last
  compaction) are folded in with :func:`recommender.training.fold_in_new_papers` once per model
  version and every ``fresh_items_refresh_s``, in the background, never per request.
- **Users**: a user the model knows, with no event after ``trained_at``, uses their stored
  vector; anyone else with a history is folded in from their seen/dismissed papers (the reads
  the request needs anyway for exclusions), one small ``f x f`` solve with the snapshot's
  precomputed ``Y^T Y``: ~0.1 ms, cheaper than a cache round trip, so nothing is cached.
- **Personal candidates**: the user's ALS top ``personal_k``, cached per user and history
  state. In models of :data:`recommender.ivf.MIN_ITEMS` papers or more, an inverted-file index
  (built per process in the background after a load; exact scans until it is ready) scores only
  ``personal_scan_fraction`` of the papers instead of all of them.
- **Co-reading**: the newest table of :mod:`recommender.coreadstore` ("readers of what you read
  are reading this now"), polled like the model and loaded in the background; the user's lift
  towards each of the hottest papers comes from the rows of their own papers
  (:func:`recommender.coreading.one_user`), with no model needed, so it personalises a user
  (and a new deployment) before the first training.
- **Blend**: :func:`recommender.ranking.trending_for_you` over the snapshot's papers, with the
  decayed trending scores of the ``TRENDING_FETCH`` hottest papers and the co-reading lift. The
  list of those papers is read from Redis at most every ``trending_reuse_s`` per process (1 s by
  default; 500 scores read, sent and parsed for every request were a large share of the work
  of Redis and of the web process), and each request decays the scores to its own time.
  Trending papers the model has no row for enter with their trending score plus their lift
  (what the blend gives a paper without factors) and are merged in.

A user with no history gets global trending ("cold start").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import redis as redis_lib
from numpy.typing import NDArray

from recommender import als, coreading, coreadstore, ivf, modelstore, ranking, trending
from recommender.coreadstore import LiveTable
from recommender.keys import Keys
from recommender.matrix import build_confidence
from recommender.modelstore import StoredModel, rows_of
from recommender.settings import Settings
from recommender.store import EventStore

log = logging.getLogger(__name__)

TRENDING_FETCH = 500
MAX_TAIL_ENTRIES = 2_000_000
LOAD_RETRY_S = 30.0
PERSONAL_CACHE_USERS = 200_000


@dataclass(frozen=True)
class Snapshot:
    """Everything one request needs from a model version; immutable once built.

    item_ids : bytes (n_items,) -- model papers then fresh papers
    item_factors : float32 (n_items, f)
    has_factor : bool (n_items,)
    item_order : int64 (n_items,) -- ``item_ids[item_order]`` is ``sorted_ids`` (lookups)
    gram : float64 (f, f) -- ``Y^T Y + regularization * I`` over the model's papers
    mu, cov : float64 (f,), (f, f) -- mean and covariance of the factors of papers with any
    index : the model papers' inverted-file index (:mod:`recommender.ivf`), or None (exact scans)
    """

    version: str
    model: StoredModel
    params: als.TrainParams
    trained_at: float
    item_ids: NDArray[np.bytes_]
    item_factors: NDArray[np.float32]
    has_factor: NDArray[np.bool_]
    item_order: NDArray[np.int64]
    sorted_ids: NDArray[np.bytes_]
    gram: NDArray[np.float64]
    mu: NDArray[np.float64]
    cov: NDArray[np.float64]
    fresh: int = 0
    built_at: float = field(default_factory=time.monotonic)
    index: ivf.Index | None = None

    @classmethod
    def build(
        cls,
        model: StoredModel,
        fresh_ids: NDArray[np.bytes_] | None = None,
        fresh_factors: NDArray[np.float32] | None = None,
        index: ivf.Index | None = None,
    ) -> Snapshot:
        params = als.TrainParams(**model.meta["params"])
        y = model.item_factors.astype(np.float64)
        gram = y.T @ y + params.regularization * np.eye(y.shape[1])
        item_ids, item_factors = model.item_ids, model.item_factors
        fresh = 0
        if fresh_ids is not None and len(fresh_ids):
            fresh = len(fresh_ids)
            item_ids = np.concatenate([model.item_ids, fresh_ids.astype(model.item_ids.dtype)])
            item_factors = np.vstack([model.item_factors, fresh_factors.astype(np.float32)])
        has_factor = np.any(item_factors != 0, axis=1)
        order = np.argsort(item_ids, kind="stable")
        with_factors = item_factors[has_factor].astype(np.float64)
        mu = with_factors.mean(axis=0) if len(with_factors) else np.zeros(y.shape[1])
        centred = with_factors - mu
        cov = centred.T @ centred / max(len(with_factors), 1)
        return cls(
            version=model.version or "",
            model=model,
            params=params,
            trained_at=float(model.meta["trained_at"]),
            item_ids=item_ids,
            item_factors=item_factors,
            has_factor=has_factor,
            item_order=order,
            sorted_ids=item_ids[order],
            gram=gram,
            mu=mu,
            cov=cov,
            fresh=fresh,
            index=index,
        )

    @property
    def token(self) -> tuple[str, float]:
        """Identifies this snapshot (version and build time) without keeping it alive."""
        return (self.version, self.built_at)

    def codes(self, paper_ids: list[str]) -> NDArray[np.int64]:
        """Rows of ``paper_ids`` in ``item_factors``; -1 where unknown."""
        if not paper_ids:
            return np.zeros(0, dtype=np.int64)
        wanted = np.array([p.encode() for p in paper_ids], dtype="S")
        rows = rows_of(self.sorted_ids, wanted)
        return np.where(rows >= 0, self.item_order[rows.clip(0)], -1)

    def user_vector(
        self, user_id: str, seen: dict[str, float], dismissed: dict[str, float], now: float
    ) -> NDArray[np.float32] | None:
        """The stored vector if still current, else one folded in from the history."""
        if not seen:
            return None
        row = self.model.user_row(user_id)
        latest = max([*seen.values(), *dismissed.values()])
        if row is not None and latest <= self.trained_at:
            return self.model.user_factors[row]
        return self.fold_in_user(seen, dismissed, now)

    def fold_in_user(
        self, seen: dict[str, float], dismissed: dict[str, float], now: float
    ) -> NDArray[np.float32] | None:
        """One ALS half-step for one user (implicit's ``recalculate_user``, ``Y^T Y`` cached).

        ``A = Y^T Y + reg I + sum_i (c_i - 1) y_i y_i^T``, ``b = sum_i c_i y_i`` with
        ``c = alpha * confidence`` over the user's papers, then ``x = A^-1 b``.
        """
        papers = list(seen) + list(dismissed)
        codes = self.codes(papers)
        kinds = np.array([0] * len(seen) + [2] * len(dismissed), dtype=np.int8)
        ts = np.array(list(seen.values()) + list(dismissed.values()), dtype=np.float64)
        known = codes >= 0
        if not known.any():
            return None
        local, cols = np.unique(codes[known], return_inverse=True)
        row = build_confidence(
            np.zeros(int(known.sum()), np.int64),
            cols,
            kinds[known],
            ts[known],
            1,
            len(local),
            now,
            self.params,
        )
        if row.nnz == 0:
            return None
        y = self.item_factors[local[row.indices]].astype(np.float64)
        c = self.params.alpha * row.data.astype(np.float64)
        a = self.gram + (y.T * (c - 1.0)) @ y
        b = y.T @ c
        return np.linalg.solve(a, b).astype(np.float32)


class PersonalCache:
    """Per-process LRU of users' ALS top-k, valid for one snapshot and one history state.

    A hit skips the request's only full-width step (:func:`personal_top`); 200,000 users of
    100 codes each take ~160 MB at most.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        # keyed by the snapshot's (version, built_at), not the object: no old model kept alive
        self._entries: OrderedDict[str, tuple[Any, tuple[Any, ...], NDArray[np.int64]]]
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, user_id: str, snap: Snapshot, signature: tuple[Any, ...]
    ) -> NDArray[np.int64] | None:
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is None or entry[0] != snap.token or entry[1] != signature:
                return None
            self._entries.move_to_end(user_id)
            return entry[2]

    def put(
        self, user_id: str, snap: Snapshot, signature: tuple[Any, ...], top: NDArray[np.int64]
    ) -> None:
        with self._lock:
            self._entries[user_id] = (snap.token, signature, top)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class CoreadTerms(NamedTuple):
    """One user's co-reading terms, aligned with the trending list of their request."""

    lift: NDArray[np.float32]
    """The lift towards each trending paper (0 off the table's live papers)."""
    because: NDArray[np.int64]
    """The table's row of the user's paper with the largest term for each (-1: none)."""
    row_ids: NDArray[np.bytes_]
    """The table's paper ids, by row."""

    def paper(self, i: int) -> str | None:
        """The id of the user's paper behind the lift towards trending paper ``i``."""
        row = int(self.because[i])
        return self.row_ids[row].decode() if row >= 0 else None


class TrendingList(NamedTuple):
    """The ``TRENDING_FETCH`` hottest papers as read from Redis, reused until ``until``."""

    ids: list[str]
    raw: list[float]
    """Scores relative to ``epoch`` (:mod:`recommender.trending`), decayed per request."""
    epoch: float
    until: float

    @classmethod
    def parse(cls, rows: list[tuple[str, float]], epoch: str | None, until: float) -> TrendingList:
        ids, raw = map(list, zip(*rows, strict=True)) if rows else ([], [])
        return cls(ids, raw, trending.stored_epoch(epoch), until)


class Recommender:
    """Per-process serving state (thread-safe; requests never block on a model load).

    Parameters
    ----------
    redis : a client with ``decode_responses=True`` (the app's)
    settings : Settings
    store : EventStore, optional -- for catalogue look-ups
    blend : ranking.BlendParams
    background : bool -- load new versions in a thread (False: in the calling request; tests)
    clock : monotonic seconds (injectable)
    """

    def __init__(
        self,
        redis: Any,
        settings: Settings,
        *,
        keys: Keys | None = None,
        store: EventStore | None = None,
        blend: ranking.BlendParams | None = None,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = keys or Keys(settings.key_prefix, settings.stream_partitions)
        self.store = store or EventStore(redis, settings, self.keys)
        self.blend = blend or ranking.BlendParams()
        self.background = background
        self.clock = clock
        self._snapshot: Snapshot | None = None
        self._hot_cache: tuple[Any, list[str], NDArray[np.int64]] | None = None
        self._personal_cache = PersonalCache(PERSONAL_CACHE_USERS)
        self._checked = float("-inf")
        self._retry_at = float("-inf")
        self._loading = threading.Lock()
        self._swap = threading.Lock()  # serialises replacing ``_snapshot``
        self._coread: LiveTable | None = None
        self._coread_checked = float("-inf")
        self._coread_retry_at = float("-inf")
        self._coread_loading = threading.Lock()
        self._columns_cache: tuple[str, list[str], NDArray[np.int64]] | None = None
        self._trending_list: TrendingList | None = None

    # -- the model ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot | None:
        """The current snapshot; polls the active pointer at most every ``model_poll_s``."""
        now = self.clock()
        current = self._snapshot
        if now - self._checked >= self.settings.model_poll_s:
            self._checked = now
            try:
                active = modelstore.active_version(self.redis, self.keys)
            except redis_lib.exceptions.RedisError as exc:
                log.warning("could not read the active model version: %s", exc)
                return current
            stale_fresh = current is not None and (
                time.monotonic() - current.built_at >= self.settings.fresh_items_refresh_s
            )
            changed = current is None or current.version != active or stale_fresh
            if active is not None and changed and now >= self._retry_at:
                self._start_load(active)
        return self._snapshot

    def _start_load(self, version: str) -> None:
        if not self._loading.acquire(blocking=False):
            return  # a load is already under way
        if not self.background or self._snapshot is None:
            # the first load of a process happens in its first request: better one slow
            # answer than a new worker serving unpersonalised lists until it is ready
            try:
                self._load(version)
            finally:
                self._loading.release()
            return

        def work() -> None:
            try:
                self._load(version)
            finally:
                self._loading.release()

        threading.Thread(target=work, name=f"model-load-{version}", daemon=True).start()

    def _load(self, version: str) -> None:
        try:
            current = self._snapshot
            if current is not None and current.version == version:
                model = current.model  # only the fresh papers need refreshing
            else:
                model = modelstore.load(self.redis, self.keys, version)
            try:
                fresh_ids, fresh_factors = self._fresh_papers(model)
            except (ValueError, redis_lib.exceptions.RedisError):
                log.exception("fresh papers not folded in; serving the model without them")
                fresh_ids, fresh_factors = None, None
            snapshot = Snapshot.build(model, fresh_ids, fresh_factors)
        except Exception:  # a thread must not die silently, nor retry every second
            log.exception("could not load model %s; next try in %.0fs", version, LOAD_RETRY_S)
            self._retry_at = self.clock() + LOAD_RETRY_S
            return
        with self._swap:
            current = self._snapshot
            if current is not None and current.version == version and current.index is not None:
                snapshot = replace(snapshot, index=current.index)  # same papers: same index
            self._snapshot = snapshot  # the swap: one reference assignment
        log.info("serving model %s (%d fresh papers)", version, snapshot.fresh)
        if snapshot.index is None and self.wants_index(model):
            threading.Thread(
                target=self._build_index, args=(model,), name=f"ivf-{version}", daemon=True
            ).start()

    # -- the co-reading table -------------------------------------------------------------------
    def coread_table(self) -> LiveTable | None:
        """The current co-reading table; polls its pointer at most every ``model_poll_s``."""
        now = self.clock()
        if self.blend.coread_weight <= 0 or now - self._coread_checked < self.settings.model_poll_s:
            return self._coread
        self._coread_checked = now
        try:
            active = coreadstore.active_version(self.redis, self.keys)
        except redis_lib.exceptions.RedisError as exc:
            log.warning("could not read the active co-reading table: %s", exc)
            return self._coread
        current = self._coread
        if active is None:
            self._coread = None  # deleted (a full rebuild): serve without it
        elif (current is None or current.version != active) and now >= self._coread_retry_at:
            self._start_coread_load(active)
        return self._coread

    def _start_coread_load(self, version: str) -> None:
        if not self._coread_loading.acquire(blocking=False):
            return

        def work() -> None:
            try:
                self._coread = coreadstore.load(self.redis, self.keys, version)
                log.info("serving co-reading table %s", version)
            except (KeyError, ValueError, redis_lib.exceptions.RedisError) as exc:
                log.warning("could not load co-reading table %s: %s", version, exc)
                self._coread_retry_at = self.clock() + LOAD_RETRY_S
            finally:
                self._coread_loading.release()

        if self.background and self._coread is not None:
            threading.Thread(target=work, name=f"coread-load-{version}", daemon=True).start()
        else:  # as with the model, a process's first table loads in the request that needs it
            work()

    def _coread_for(
        self, live: LiveTable | None, seen: dict[str, float], hot_ids: list[str]
    ) -> CoreadTerms | None:
        """The user's co-reading lift towards each trending paper, and the paper of theirs
        behind it; None without a table, or when no paper of theirs has a row in it."""
        if live is None or not seen or not hot_ids:
            return None
        latest = sorted(seen, key=seen.__getitem__, reverse=True)[: coreading.MAX_HISTORY]
        rows = live.rows(latest)
        rows = rows[rows >= 0]
        if len(rows) == 0:
            return None  # nobody who read what the user read reads a live paper now
        params = self.blend
        lift, because = coreading.one_user(
            live.table, rows, len(latest), params.coread_kappa, params.coread_norm
        )
        cols = self._live_columns(live, hot_ids)
        found = cols >= 0
        return CoreadTerms(
            lift=np.where(found, lift[cols.clip(0)], 0.0).astype(np.float32),
            because=np.where(found, because[cols.clip(0)], -1),
            row_ids=live.row_ids,
        )

    def _live_columns(self, live: LiveTable, hot_ids: list[str]) -> NDArray[np.int64]:
        """Columns of the trending list in the table, cached while both stay the same."""
        return self._per_list("_columns_cache", live.version, hot_ids, live.columns)

    def _per_list(
        self,
        slot: str,
        token: Any,
        hot_ids: list[str],
        compute: Callable[[list[str]], NDArray[np.int64]],
    ) -> NDArray[np.int64]:
        """``compute(hot_ids)``, cached in attribute ``slot`` while ``token`` (the snapshot or
        table it indexes) and the trending list stay the same."""
        cached = getattr(self, slot)
        if cached is not None and cached[0] == token and cached[1] == hot_ids:
            return cached[2]
        value = compute(hot_ids)
        setattr(self, slot, (token, hot_ids, value))
        return value

    def wants_index(self, model: StoredModel) -> bool:
        """Whether this process indexes ``model`` (large enough, and not set to scan exactly)."""
        return self.settings.personal_scan_fraction < 1.0 and len(model.item_ids) >= ivf.MIN_ITEMS

    def _build_index(self, model: StoredModel) -> None:
        """Index the model's papers, then serve with the index (same snapshot otherwise)."""
        try:
            started = time.monotonic()
            factors = model.item_factors
            index = ivf.build(factors, np.any(factors != 0, axis=1))
        except Exception:
            log.exception("could not index model %s; personal candidates stay exact", model.version)
            return
        with self._swap:
            current = self._snapshot
            if current is not None and current.version == model.version and current.index is None:
                self._snapshot = replace(current, index=index)  # same token: caches stay valid
        log.info(
            "indexed model %s: %d clusters in %.1fs",
            model.version,
            len(index.centroids),
            time.monotonic() - started,
        )

    def _fresh_papers(
        self, model: StoredModel
    ) -> tuple[NDArray[np.bytes_] | None, NDArray[np.float32] | None]:
        from recommender import compaction, training

        tail = compaction.read_tail(self.redis, self.keys, max_entries=MAX_TAIL_ENTRIES)
        if len(tail[0]) == 0:
            return None, None
        return training.fold_in_new_papers(model, *tail, now=time.time())

    # -- requests -----------------------------------------------------------------------------
    def recommend(self, user_id: str, limit: int, now: float | None = None) -> dict[str, Any]:
        """``{"items": [{"paper", "score", "reason"}], "personalised", "model_version"}``."""
        now = time.time() if now is None else now
        snap = self.snapshot()
        live = self.coread_table()
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(k.user_seen(user_id), 0, -1, withscores=True)
        pipe.zrange(k.user_dismissed(user_id), 0, -1, withscores=True)
        listed = self._trending_list
        reuse = listed is not None and self.clock() < listed.until
        if not reuse:
            pipe.zrevrange(k.trending(), 0, TRENDING_FETCH - 1, withscores=True)
            pipe.get(k.trending_epoch())
        replies = pipe.execute()
        seen, dismissed = dict(replies[0]), dict(replies[1])
        if not reuse:
            listed = TrendingList.parse(
                replies[2], replies[3], self.clock() + self.settings.trending_reuse_s
            )
            self._trending_list = listed
        hot_ids = listed.ids
        hot = trending.to_now(listed.raw, now, listed.epoch, self.settings.trending_half_life_s)

        picked: list[tuple[str, float, str | None]]  # (paper, score, because paper)
        vector = None if snap is None else snap.user_vector(user_id, seen, dismissed, now)
        coread = self._coread_for(live, seen, hot_ids)
        if snap is None:
            picked = self._trending_only(hot_ids, hot, seen, dismissed, limit, coread)
        else:
            picked = self._blend(
                user_id, snap, vector, len(seen), hot_ids, hot, seen, dismissed, limit, coread
            )
        # a reason names a paper of the user's (never one of the list): its title is enough
        named = list(dict.fromkeys(b for _, _, b in picked if b is not None))
        papers, titles = self.store.papers_and_titles([p for p, _, _ in picked], named)
        items = []
        for (paper_id, score, because), paper in zip(picked, papers, strict=True):
            reason = (
                f"because you read {titles.get(because, because)}" if because else "trending now"
            )
            items.append({"paper": paper or {"id": paper_id}, "score": score, "reason": reason})
        return {
            "items": items,
            "personalised": vector is not None or coread is not None,
            "model_version": None if snap is None else snap.version,
        }

    def _trending_only(
        self,
        hot_ids: list[str],
        hot: NDArray[np.float64],
        seen: dict[str, float],
        dismissed: dict[str, float],
        limit: int,
        coread: CoreadTerms | None = None,
    ) -> list[tuple[str, float, str | None]]:
        """No model yet: trending, lifted by co-reading where there is a table."""
        out = self._hot_without_rows(hot_ids, hot, np.arange(len(hot_ids)), seen, dismissed, coread)
        out.sort(key=lambda entry: -entry[1])
        return out[:limit]

    def _hot_without_rows(
        self,
        hot_ids: list[str],
        hot: NDArray[np.float64],
        positions: NDArray[np.int64],
        seen: dict[str, float],
        dismissed: dict[str, float],
        coread: CoreadTerms | None,
    ) -> list[tuple[str, float, str | None]]:
        """Trending papers at ``positions`` scored as the blend scores a paper without factors:
        ``log(offset + readers)`` plus the weighted co-reading lift."""
        momentum = ranking.momentum(hot[positions], self.blend)
        lift = np.zeros(len(positions), np.float32)
        if coread is not None:
            lift = np.float32(self.blend.coread_weight) * coread.lift[positions]
        out = []
        for i, m, up in zip(positions.tolist(), momentum.tolist(), lift.tolist(), strict=True):
            pid = hot_ids[i]
            if hot[i] > 0 and pid not in seen and pid not in dismissed:
                because = coread.paper(i) if (coread is not None and up > 0) else None
                out.append((pid, float(np.float32(m) + np.float32(up)), because))
        return out

    def _blend(
        self,
        user_id: str,
        snap: Snapshot,
        vector: NDArray[np.float32] | None,
        history: int,
        hot_ids: list[str],
        hot: NDArray[np.float64],
        seen: dict[str, float],
        dismissed: dict[str, float],
        limit: int,
        coread: CoreadTerms | None = None,
    ) -> list[tuple[str, float, str | None]]:
        hot_codes = self._hot_codes(snap, hot_ids)
        known = hot_codes >= 0
        seen_codes = snap.codes(list(seen))
        excluded = np.concatenate([seen_codes, snap.codes(list(dismissed))])
        excluded = excluded[excluded >= 0]
        # trending papers the model has no row for take candidate places; merged below
        k = self.blend.trending_k
        outside = int((~known[:k]).sum())
        params = replace(self.blend, trending_k=max(k - outside, 0))
        personal = None
        signature: tuple[Any, ...] = ()
        if vector is not None and params.personal_k:
            # the user's ALS top-k changes only with the model or their history: cache it
            signature = (len(seen), len(dismissed), max([0.0, *seen.values(), *dismissed.values()]))
            personal = self._personal_cache.get(user_id, snap, signature)
            if personal is None:
                personal = personal_top(
                    snap,
                    vector,
                    excluded,
                    params.personal_k,
                    scan_fraction=self.settings.personal_scan_fraction,
                )
                self._personal_cache.put(user_id, snap, signature, personal)
        codes, scores, als_term, coread_term = blend_candidates(
            snap,
            vector,
            history,
            hot_codes[known],
            hot[known],
            excluded,
            limit,
            params,
            personal,
            None if coread is None else coread.lift[known],
        )
        explain = _explainer(snap, seen_codes[seen_codes >= 0]) if (als_term > 0).any() else None
        # where in the trending list each paper that co-reading explains is (its lift's place)
        by_coread = (coread_term > 0) & (coread_term >= als_term)
        at, place = np.nonzero(codes[by_coread][:, None] == hot_codes[None, :])
        coread_place = dict(zip(codes[by_coread][at].tolist(), place.tolist(), strict=True))
        out = []
        for code, score, a, c in zip(
            codes.tolist(), scores.tolist(), als_term.tolist(), coread_term.tolist(), strict=True
        ):
            because = None
            if c > 0 and c >= a:
                because = coread.paper(coread_place[code]) if code in coread_place else None
            elif a > 0 and explain is not None:
                found = explain(code)
                because = None if found is None else snap.item_ids[found].decode()
            out.append((snap.item_ids[code].decode(), score, because))
        # trending papers the model has no row for: the first k, and those co-reading lifts most
        outside = np.flatnonzero(~known)
        chosen = outside[outside < k]
        if coread is not None and params.coread_k:
            lift = coread.lift[outside]
            best = outside[np.argsort(-lift, kind="stable")[: params.coread_k]]
            chosen = np.union1d(chosen, best[coread.lift[best] > 0])
        out += self._hot_without_rows(hot_ids, hot, chosen, seen, dismissed, coread)
        out.sort(key=lambda entry: -entry[1])
        return out[:limit]

    def _hot_codes(self, snap: Snapshot, hot_ids: list[str]) -> NDArray[np.int64]:
        """Codes of the trending list, cached while the list and the snapshot stay the same."""
        return self._per_list("_hot_cache", snap.token, hot_ids, snap.codes)


def blend_candidates(
    snap: Snapshot,
    vector: NDArray[np.float32] | None,
    history: int,
    hot_codes: NDArray[np.int64],
    hot: NDArray[np.float64],
    excluded: NDArray[np.int64],
    limit: int,
    params: ranking.BlendParams,
    personal: NDArray[np.int64] | None = None,
    coread: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """:func:`recommender.ranking.blend` for one user, evaluated on its candidates only.

    The blend's score of a paper is ``log(offset + trending) + w * z``, ``z`` the user's
    affinity z-scored against the trending candidates the model knows (or, with fewer than two,
    every paper with factors: then the mean and variance of ``v . y`` are ``v . mu`` and
    ``v^T Cov v``, cached per snapshot). So beyond the one matrix-vector product that finds the
    user's ALS top ``personal_k``, only the few hundred candidates are touched, instead of the
    dozen full-width passes ``ranking.blend_scores`` makes over 200,000 papers. Both use the
    same ``ranking.momentum``, ``ranking.calibration`` and ``ranking.personal_term``; the
    candidate set is built here again, and a test checks both give the same list.

    Parameters
    ----------
    hot_codes, hot : the trending papers the snapshot has rows for, hottest first, and their
        decayed reader counts (the first ``params.trending_k`` with a count > 0 are candidates)
    excluded : codes the user opened or dismissed
    personal : the user's ALS top ``personal_k`` (:func:`personal_top`) if already known
    coread : float32, aligned with ``hot_codes`` -- the user's co-reading lift, or None

    Returns
    -------
    codes : int64 (<= limit,) ; scores : float32
    als_term, coread_term : float32 -- the weighted personal terms in each score
    """
    head = hot[: params.trending_k] > 0
    candidates = [hot_codes[: params.trending_k][head]]
    weight = 0.0
    known = vector is not None and bool(snap.has_factor.any())
    if known:
        weight = float(ranking.personal_weights([history], params)[0])
        if params.personal_k and weight > 0:
            if personal is None:
                personal = personal_top(snap, vector, excluded, params.personal_k)
            candidates.append(personal)
    use_coread = coread is not None and params.coread_weight > 0
    excluded = np.unique(excluded)
    if use_coread and params.coread_k:
        mine = np.where(ranking.member(hot_codes, excluded), 0.0, coread)
        best = np.lexsort((hot_codes, -mine))[: params.coread_k]
        candidates.append(hot_codes[best[mine[best] > 0]])
    codes = np.unique(np.concatenate(candidates).astype(np.int64))
    codes = codes[~ranking.member(codes, excluded)]
    order = np.argsort(hot_codes, kind="stable")
    pos = np.searchsorted(hot_codes, codes, sorter=order).clip(0, max(len(hot_codes) - 1, 0))
    in_hot = (len(hot_codes) > 0) & (hot_codes[order[pos]] == codes)
    trend = np.where(in_hot, hot[order[pos]], 0.0)
    lift = np.zeros(len(codes), dtype=np.float32)
    if use_coread:
        lift = np.where(in_hot, coread[order[pos]], 0.0).astype(np.float32)
        lift *= np.float32(params.coread_weight)
    personal = np.zeros(len(codes), dtype=np.float32)
    if known and weight > 0:
        v = np.asarray(vector, np.float32)
        # z-scored against the live papers: the trending candidates the model knows
        reference = candidates[0][snap.has_factor[candidates[0]]]
        if len(reference) >= 2:
            means, stds = ranking.calibration((snap.item_factors[reference] @ v)[None, :])
            mean, std = float(means[0, 0]), float(stds[0, 0])
        else:  # too few: every paper with factors, from the snapshot's cached moments
            mean = float(vector @ snap.mu)
            std = float(np.sqrt(max(float(vector @ snap.cov @ vector), 0.0))) or 1.0
        z = (snap.item_factors[codes] @ v - mean) / std
        weights = np.array([weight], np.float32)
        personal = ranking.personal_term(z[None, :], snap.has_factor[codes], weights)[0]
    scores = ranking.momentum(trend, params) + (personal + lift)
    best = np.lexsort((codes, -scores))[:limit]
    return codes[best], scores[best], personal[best], lift[best]


def personal_top(
    snap: Snapshot,
    vector: NDArray[np.float32],
    excluded: NDArray[np.int64],
    k: int,
    *,
    scan_fraction: float = 1.0,
) -> NDArray[np.int64]:
    """The user's ``k`` highest ALS scores among papers with factors, minus ``excluded``, best
    first (ties by code).

    Exactly (``scan_fraction`` 1, or no index), the one full-width step of a request: a
    matrix-vector product over every paper (200,000 x 64 float32 is 51 MB of memory traffic)
    and a selection. With the snapshot's index, only the clusters holding ``scan_fraction`` of
    the papers nearest the user's vector are scored (:func:`recommender.ivf.search`).
    """
    if snap.index is not None and scan_fraction < 1.0:
        return ivf.search(
            snap.index, snap.item_factors, snap.has_factor, vector, excluded, k, scan_fraction
        )
    raw = snap.item_factors @ np.asarray(vector, np.float32)
    raw[~snap.has_factor] = ranking.NEG_INF
    raw[excluded] = ranking.NEG_INF
    places = ranking.at_least_top(raw, k)
    places = places[np.isfinite(raw[places])]
    return places[np.lexsort((places, -raw[places]))[:k]]


def _explainer(snap: Snapshot, history: NDArray[np.int64]) -> Callable[[int], int | None] | None:
    """``item -> the history paper most similar to it`` (cosine of item factors), or None.

    A vectorised stand-in for :func:`recommender.als.explain`, which rebuilds a solver per call:
    at a dozen lifted papers per request that costs milliseconds; this costs microseconds.
    """
    history = history[snap.has_factor[history]]
    if len(history) == 0:
        return None
    h = snap.item_factors[history]
    h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)

    def explain(item: int) -> int | None:
        similarity = h @ snap.item_factors[item]
        best = int(np.argmax(similarity))
        return int(history[best]) if similarity[best] > 0 else None

    return explain
