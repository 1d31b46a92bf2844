"""Replay evaluation: how would trending, ALS and the blend have done on a real event log?

The log (CSV, header ``user,item,ts``, optionally ``kind``) is replayed in time order the way the
live product sees it:

- at every midnight UTC the model is retrained from the events before it with
  :func:`recommender.als.train`, the same entry point as the nightly job;
- trending follows every event as the server's does: each distinct reader of a paper adds
  ``2 ** ((t - epoch) / half_life)`` at its first read (:mod:`recommender.trending`);
- fold-in follows every event: users with events since the last training get a vector solved
  from their whole (decayed) history, and papers first seen since training get one solved from
  their readers, so a paper that starts trending today can be recommended today.
- the co-reading table is built at every slot from the reads before it with the functions of
  :mod:`recommender.coreading` the worker uses (:mod:`recommender.coreadstore`): the hottest
  papers at the slot, their recent readers and those readers' histories.

Protocols (``split="time"``):

- ``hourly``: at each hour ``T``, every user who opens, in ``[T, T + 1h)``, papers they had not
  opened before ``T`` and who had opened something before ``T`` asks for ``k`` recommendations
  from the state at ``T``; they are scored against those new opens;
- ``daily``: the same with days, from the state at midnight.

``split="random"`` (data without timestamps) holds out a random ``test_fraction`` of each user's
papers, trains on the rest and scores every user with held-out papers that the model knows.

All three methods exclude what the user already opened or dismissed and are scored on the same
queries. Recommendations are computed in batches (one matrix product per chunk of users).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

from recommender import als, coreading, quality, ranking, trending
from recommender.matrix import DISMISS, KIND_CODES, build_confidence, encode_ids

log = logging.getLogger(__name__)

METHODS = ("trending", "als", "blend")
DAY = 86400.0
HOUR = 3600.0


@dataclass(frozen=True)
class EvalConfig:
    """What to replay and how.

    Attributes
    ----------
    protocol : str
        ``"hourly"`` or ``"daily"`` (time split).
    split : str
        ``"time"`` (replay) or ``"random"`` (per-user hold-out, no timestamps needed).
    k : int
        List length and metric cut-off.
    train : TrainParams
    blend : BlendParams
        The blend that is reported as ``"blend"``.
    blend_variants : tuple of BlendParams
        Extra blends scored on the same queries (``"blend[0]"``, ...), for tuning.
    trending_half_life_h : float
        Half-life of the trending score (the server's ``PAPERFEED_TRENDING_HALF_LIFE_H``).
    coread_half_life_h : float
        Half-life of a recent read in the co-reading table (the server's
        ``PAPERFEED_COREAD_HALF_LIFE_H``).
    coread_live : int
        Live papers of the co-reading table: the most trending ones (the server reads as many).
    max_days : float or None
        Stop the replay this many days after the first event.
    sample_users : float
        Fraction of users whose requests are scored (state always uses every event).
    report_from : str or None
        ISO date: ``"summary"`` covers days from it on, ``"tuning"`` the days before.
    test_fraction : float
        Held-out share of each user's papers (random split).
    seed : int
        Seed of the user sample and the random split.
    chunk : int
        Users per batch.
    """

    protocol: str = "hourly"
    split: str = "time"
    k: int = 20
    train: als.TrainParams = field(default_factory=als.TrainParams)
    blend: ranking.BlendParams = field(default_factory=ranking.BlendParams)
    blend_variants: tuple[ranking.BlendParams, ...] = ()
    trending_half_life_h: float = 48.0
    coread_half_life_h: float = 48.0
    coread_live: int = 500
    max_days: float | None = None
    sample_users: float = 1.0
    report_from: str | None = None
    test_fraction: float = 0.2
    seed: int = 0
    chunk: int = 1024

    def __post_init__(self) -> None:
        if self.protocol not in ("hourly", "daily"):
            raise ValueError("protocol must be 'hourly' or 'daily'")
        if self.split not in ("time", "random"):
            raise ValueError("split must be 'time' or 'random'")
        if self.k < 1 or not 0 < self.sample_users <= 1 or not 0 < self.test_fraction < 1:
            raise ValueError("k >= 1, 0 < sample_users <= 1 and 0 < test_fraction < 1 required")
        if self.coread_half_life_h <= 0 or self.coread_live < 0:
            raise ValueError("coread_half_life_h > 0 and coread_live >= 0 required")

    def uses_coread(self) -> bool:
        """Whether any scored blend weighs the co-reading lift (else no table is built)."""
        return any(b.coread_weight > 0 for b in (self.blend, *self.blend_variants))


@dataclass
class Events:
    """An event log, sorted by time.

    Attributes
    ----------
    user, item : ndarray of str (n,)
    ts : ndarray of float64 (n,)
    kind : ndarray of int8 (n,)
    """

    user: NDArray
    item: NDArray
    ts: NDArray[np.float64]
    kind: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.ts)


def load_events(path: str | Path) -> Events:
    """Read a ``user,item,ts[,kind]`` CSV and sort it by time (stable).

    Raises
    ------
    ValueError
        When a required column is missing.
    """
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        missing = {"user", "item", "ts"} - set(header)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        rows = list(reader)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(header)
    col = dict(zip(header, columns, strict=True))
    ts = np.array(col["ts"], dtype=np.float64)
    if "kind" in col:
        names = np.array(col["kind"])
        kind = np.full(len(names), -1, np.int8)
        for name, code in KIND_CODES.items():
            kind[names == name] = code
        if (kind < 0).any():
            raise ValueError(f"{path}: kind must be one of {sorted(KIND_CODES)}")
    else:
        kind = np.zeros(len(ts), np.int8)
    order = np.argsort(ts, kind="stable")
    return Events(
        user=np.array(col["user"])[order],
        item=np.array(col["item"])[order],
        ts=ts[order],
        kind=kind[order],
    )


@dataclass
class Tally:
    """Metric sums of one method over one period (a day)."""

    users: int = 0
    recall: float = 0.0
    ndcg: float = 0.0

    def add(self, recall: NDArray, ndcg: NDArray) -> None:
        ok = ~np.isnan(recall)
        self.users += int(ok.sum())
        self.recall += float(recall[ok].sum())
        self.ndcg += float(ndcg[ok].sum())


@dataclass
class Result:
    """Per-day tallies per method, timings and the configuration."""

    config: EvalConfig
    days: dict[str, dict[str, Tally]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    trainings: int = 0
    extra: dict = field(default_factory=dict)

    def methods(self) -> list[str]:
        return list(METHODS) + [f"blend[{i}]" for i in range(len(self.config.blend_variants))]

    def tally(self, day: str, method: str) -> Tally:
        return self.days.setdefault(day, {}).setdefault(method, Tally())

    def mean(self, days: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """Mean recall@k and NDCG@k over all scored requests of ``days`` (default all)."""
        k = self.config.k
        days = list(self.days) if days is None else list(days)
        out = {}
        for method in self.methods():
            total = Tally()
            for day in days:
                t = self.days.get(day, {}).get(method, Tally())
                total.users += t.users
                total.recall += t.recall
                total.ndcg += t.ndcg
            n = max(total.users, 1)
            out[method] = {
                f"recall@{k}": total.recall / n,
                f"ndcg@{k}": total.ndcg / n,
                "users": total.users,
            }
        return out

    def periods(self) -> tuple[list[str], list[str]]:
        """(tuning days, report days) as split by ``config.report_from``."""
        days = sorted(self.days)
        cut = self.config.report_from
        if cut is None:
            return [], days
        return [d for d in days if d < cut], [d for d in days if d >= cut]

    def to_json(self) -> dict:
        """The JSON document: ``"summary"`` maps each method to its recall@k and NDCG@k over the
        report days; ``"requests"`` counts the scored requests behind it."""
        tuning, report = self.periods()
        summary = self.mean(report)
        return {
            "summary": {
                m: {k: v for k, v in s.items() if k != "users"} for m, s in summary.items()
            },
            "requests": {m: s["users"] for m, s in summary.items()},
            "tuning": self.mean(tuning) if tuning else None,
            "report_days": report,
            "tuning_days": tuning,
            "days": {d: self.mean([d]) for d in sorted(self.days)},
            "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
            "trainings": self.trainings,
            "config": _jsonable(dataclasses.asdict(self.config)),
            **self.extra,
        }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def _ranges(starts: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Concatenation of ``arange(s, s + c)`` for each pair, without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(total, dtype=np.int64) + offsets


def _score_batch(
    result: Result,
    day: str,
    relevant: csr_matrix,
    exclude: csr_matrix,
    user_vectors: NDArray[np.float32],
    history_sizes: NDArray[np.int64],
    item_factors: NDArray[np.float32],
    has_factor: NDArray[np.bool_],
    trend: NDArray[np.float64],
    coread: tuple[coreading.Table, NDArray[np.int64], csr_matrix] | None = None,
) -> None:
    """Score the three methods (and blend variants) for one batch of requests.

    ``coread`` is the co-reading table, the item codes of its live papers and each asking
    user's reads ``(q, n_items)``, or None (no blend weighs co-reading).
    """
    cfg = result.config
    k = cfg.k
    blends = [("blend", cfg.blend)] + [(f"blend[{i}]", p) for i, p in enumerate(cfg.blend_variants)]
    for lo in range(0, relevant.shape[0], cfg.chunk):
        hi = min(lo + cfg.chunk, relevant.shape[0])
        rel, exc = relevant[lo:hi], exclude[lo:hi]
        lists = {
            "trending": ranking.rank_trending(trend, exc, k)[0],
            "als": ranking.rank_personal(user_vectors[lo:hi], item_factors, has_factor, exc, k)[0],
        }
        for name, params in blends:
            lift = None
            if coread is not None and params.coread_weight > 0:
                table, live, reads = coread
                lift = np.zeros((hi - lo, len(trend)), np.float32)
                lift[:, live] = coreading.user_lift(
                    table, reads[lo:hi], params.coread_kappa, params.coread_norm
                )
            lists[name] = ranking.blend(
                user_vectors[lo:hi],
                history_sizes[lo:hi],
                item_factors,
                has_factor,
                trend,
                exc,
                k,
                params,
                lift,
            )[0]
        for name, ids in lists.items():
            result.tally(day, name).add(
                quality.recall_at_k(ids, rel, k), quality.ndcg_at_k(ids, rel, k)
            )


def replay(
    events: Events,
    config: EvalConfig,
    progress: bool = False,
    train: Callable[..., als.Model] | None = None,
) -> Result:
    """Replay a time-sorted event log (``split="time"``) and score every request.

    Parameters
    ----------
    events : Events
        Sorted by ``ts``.
    config : EvalConfig
    progress : bool
        Show a tqdm bar over the replayed slots.
    train : callable, optional
        Training entry point; :func:`recommender.als.train` (the nightly job's) by default.
        Tests pass a wrapper to check that it is the one used.

    Returns
    -------
    Result
    """
    from tqdm.auto import tqdm

    train = train or als.train
    cfg = config
    started = time.perf_counter()
    timings = {"train": 0.0, "fold_in": 0.0, "coread": 0.0, "rank_and_score": 0.0}
    users, uid = encode_ids(events.user)
    items, iid = encode_ids(events.item)
    uid, iid = uid.astype(np.int64), iid.astype(np.int64)
    ts, kind = events.ts, events.kind
    n_users, n_items, n = len(users), len(items), len(ts)
    if n == 0:
        return Result(cfg)
    if np.any(np.diff(ts) < 0):
        raise ValueError("events must be sorted by ts")
    read = kind != DISMISS

    # When each (user, paper) pair was first read: a later read of it is not "new", and only
    # the first read counts for trending (distinct readers).
    pair = uid * n_items + iid
    big = np.where(read, pair, -1 - np.arange(n))  # dismissals never match a read
    _, first_index, pair_of = np.unique(big, return_index=True, return_inverse=True)
    first_read_ts = ts[first_index][pair_of.reshape(-1)]
    is_first_read = np.zeros(n, bool)
    is_first_read[first_index[read[first_index]]] = True

    first_reads = np.flatnonzero(is_first_read)  # in time order
    first_reads_ts = ts[first_reads]
    coread_half_life = cfg.coread_half_life_h * HOUR
    coread_window = coreading.WINDOW_HALF_LIVES * coread_half_life

    by_user = np.argsort(uid, kind="stable")
    user_start = np.concatenate([[0], np.cumsum(np.bincount(uid, minlength=n_users))])[:-1]
    by_item = np.argsort(iid, kind="stable")
    item_start = np.concatenate([[0], np.cumsum(np.bincount(iid, minlength=n_items))])[:-1]

    rng = np.random.default_rng(cfg.seed)
    sampled = rng.random(n_users) < cfg.sample_users if cfg.sample_users < 1 else None

    half_life = cfg.trending_half_life_h * HOUR
    epoch = float(np.floor(ts[0] / DAY) * DAY)
    step = HOUR if cfg.protocol == "hourly" else DAY
    first_midnight = np.floor(ts[0] / DAY) * DAY + DAY
    end = ts[-1] if cfg.max_days is None else min(ts[-1], ts[0] + cfg.max_days * DAY)
    slots = np.arange(first_midnight, end, step)

    trend_raw = np.zeros(n_items)
    user_count = np.zeros(n_users, np.int64)  # events before the current slot
    item_count = np.zeros(n_items, np.int64)
    user_count_at_train = np.zeros(n_users, np.int64)
    factors = cfg.train.factors
    user_factors = np.zeros((n_users, factors), np.float32)
    item_factors = np.zeros((n_items, factors), np.float32)
    trained_item = np.zeros(n_items, bool)
    has_factor = np.zeros(n_items, bool)
    model: als.Model | None = None
    result = Result(cfg)
    cursor = 0
    params = cfg.train

    for slot in tqdm(slots, disable=not progress, desc=f"replay ({cfg.protocol})", unit="slot"):
        # 1. Advance the live state to the slot start.
        upto = int(np.searchsorted(ts, slot, side="left"))
        window = slice(cursor, upto)
        first = np.flatnonzero(is_first_read[window]) + cursor
        if trending.needs_rebase(float(slot), epoch, half_life):
            # as the server does, so that short half-lives do not overflow over a long log
            trend_raw *= trending.rebase_factor(epoch, float(slot) - step, half_life)
            epoch = float(slot) - step
        trend_raw += np.bincount(
            iid[first], weights=trending.increment(ts[first], epoch, half_life), minlength=n_items
        )
        user_count += np.bincount(uid[window], minlength=n_users)
        item_count += np.bincount(iid[window], minlength=n_items)
        cursor = upto

        # 2. Nightly retraining with the shared entry point.
        if slot % DAY == 0 and upto > 0:
            t0 = time.perf_counter()
            model = train(
                events.user[:upto], events.item[:upto], kind[:upto], ts[:upto], float(slot), params
            )
            timings["train"] += time.perf_counter() - t0
            result.trainings += 1
            in_users = np.searchsorted(users, model.user_ids)
            in_items = np.searchsorted(items, model.item_ids)
            user_factors[:] = 0.0
            user_factors[in_users] = model.user_factors
            item_factors[:] = 0.0
            item_factors[in_items] = model.item_factors
            trained_item[:] = False
            trained_item[in_items] = True
            has_factor = trained_item.copy()
            user_count_at_train = user_count.copy()
        if model is None:
            continue
        live = dataclasses.replace(
            model,
            user_ids=users,
            item_ids=items,
            user_factors=user_factors,
            item_factors=item_factors,
        )

        # 3. Fold in the papers first seen since training that have readers.
        t0 = time.perf_counter()
        fresh = np.flatnonzero(~trained_item & (item_count > 0))
        if len(fresh):
            idx = by_item[_ranges(item_start[fresh], item_count[fresh])]
            rows = np.repeat(np.arange(len(fresh)), item_count[fresh])
            cols = build_confidence(
                rows, uid[idx], kind[idx], ts[idx], len(fresh), n_users, float(slot), params
            )
            item_factors[fresh] = als.fold_in_items(live, cols)
            has_factor[fresh] = np.abs(item_factors[fresh]).sum(axis=1) > 0
        timings["fold_in"] += time.perf_counter() - t0

        # 4. Who asks, and what they will newly open in the slot.
        stop = int(np.searchsorted(ts, slot + step, side="left"))
        ahead = np.arange(upto, stop)
        new = ahead[read[ahead] & (first_read_ts[ahead] >= slot) & (user_count[uid[ahead]] > 0)]
        if sampled is not None:
            new = new[sampled[uid[new]]]
        if len(new) == 0:
            continue
        asking, row_of = np.unique(uid[new], return_inverse=True)
        q = len(asking)
        relevant = csr_matrix(
            (np.ones(len(new), np.float32), (row_of.reshape(-1), iid[new])), shape=(q, n_items)
        )
        relevant.data[:] = 1.0

        # 5. Their state at the slot start: history (excluded) and vectors (fold-in if stale).
        counts = user_count[asking]
        idx = by_user[_ranges(user_start[asking], counts)]
        rows = np.repeat(np.arange(q), counts)
        exclude = csr_matrix((np.ones(len(idx), np.float32), (rows, iid[idx])), shape=(q, n_items))
        exclude.sum_duplicates()
        history_sizes = np.diff(exclude.indptr)
        t0 = time.perf_counter()
        vectors = user_factors[asking].copy()
        stale = np.flatnonzero(counts > user_count_at_train[asking])
        if len(stale):
            conf = build_confidence(
                rows,
                iid[idx],
                kind[idx],
                ts[idx],
                q,
                n_items,
                float(slot),
                params.fold_in_confidence(),
            )[stale]
            vectors[stale] = als.fold_in_users(live, conf)
        timings["fold_in"] += time.perf_counter() - t0

        # 6. The co-reading table at the slot (as the worker builds it), then rank and score.
        t0 = time.perf_counter()
        trend = trending.to_now(trend_raw, float(slot), epoch, half_life)
        coread = None
        if cfg.uses_coread():
            lo, hi = np.searchsorted(first_reads_ts, [slot - coread_window, slot])
            recent = first_reads[lo:hi]
            live = ranking.top_n(np.where(trend > 0, trend, -np.inf)[None, :], cfg.coread_live)[0]
            live = live[0][live[0] >= 0]  # the hottest papers, as the server's trending list
            readers, recent_reads = coreading.recent_matrix(
                uid[recent], iid[recent], ts[recent], live, float(slot), coread_half_life
            )
            h_idx, h_row = _history(readers, by_user, user_start, user_count, read)
            history = coreading.history_matrix(h_row, iid[h_idx], ts[h_idx], len(readers), n_items)
            table = coreading.build(history, recent_reads)
            mine = read[idx]  # the asking users' own reads, the latest as serving takes them
            reads = coreading.history_matrix(rows[mine], iid[idx][mine], ts[idx][mine], q, n_items)
            coread = (table, live, reads)
        timings["coread"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        _score_batch(
            result,
            _day(slot),
            relevant,
            exclude,
            vectors,
            history_sizes,
            item_factors,
            has_factor,
            trend,
            coread,
        )
        timings["rank_and_score"] += time.perf_counter() - t0

    timings["total"] = time.perf_counter() - started
    result.timings = timings
    return result


def _history(
    readers: NDArray[np.int64],
    by_user: NDArray[np.int64],
    user_start: NDArray[np.int64],
    user_count: NDArray[np.int64],
    read: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(event index, row) of every read before the slot by ``readers`` (row: index in
    ``readers``)."""
    counts = user_count[readers]
    idx = by_user[_ranges(user_start[readers], counts)]
    rows = np.repeat(np.arange(len(readers)), counts)
    keep = read[idx]
    return idx[keep], rows[keep]


def random_holdout(
    events: Events, seed: int, fraction: float
) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The random split of :func:`random_split`: each (user, paper) read once, ``fraction`` of
    each user's papers held out at random (users with fewer than 3 keep all in training).

    Returns
    -------
    users, items : ndarray
        The sorted distinct ids; ``pu`` and ``pi`` index them.
    pu, pi : ndarray of int64 (pairs,)
        Each distinct (user, paper) pair read.
    test : ndarray of bool (pairs,)
        Held out.
    """
    users, uid = encode_ids(events.user)
    items, iid = encode_ids(events.item)
    read = events.kind != DISMISS
    pair = np.unique(uid[read].astype(np.int64) * len(items) + iid[read])
    pu, pi = pair // len(items), pair % len(items)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(pair)), pu))
    per_user = np.bincount(pu, minlength=len(users))
    start = np.concatenate([[0], np.cumsum(per_user)])[:-1]
    rank = np.empty(len(pair), np.int64)
    rank[order] = np.arange(len(pair)) - start[pu[order]]
    n_test = np.where(per_user >= 3, np.floor(fraction * per_user + 0.5), 0)
    return users, items, pu, pi, rank < n_test[pu]


def random_split(events: Events, config: EvalConfig, check_implicit: bool = True) -> Result:
    """Hold out ``test_fraction`` of each user's papers at random, train on the rest, score.

    Users with fewer than 3 papers keep them all in training; held-out papers the model never
    saw are dropped (no method could rank them). ``trending`` is plain popularity in the
    training part. With ``check_implicit``, the ALS lists are also scored by
    ``implicit.evaluation.ranking_metrics_at_k`` and both numbers are reported.

    Parameters
    ----------
    events : Events
    config : EvalConfig
    check_implicit : bool

    Returns
    -------
    Result
        One pseudo-day, ``"random"``.
    """
    cfg = config
    started = time.perf_counter()
    users, items, pu, pi, test = random_holdout(events, cfg.seed, cfg.test_fraction)

    now = 1.0
    zeros = np.zeros(int((~test).sum()))
    t0 = time.perf_counter()
    model = als.train(
        users[pu[~test]], items[pi[~test]], zeros.astype(np.int8), zeros, now, cfg.train
    )
    train_s = time.perf_counter() - t0
    mu = np.searchsorted(model.user_ids, users)  # every user with a test item is in the model
    mi = np.full(len(items), -1, np.int64)
    mi[np.searchsorted(items, model.item_ids)] = np.arange(len(model.item_ids))
    n_items = len(model.item_ids)
    tr = ~test
    train_csr = csr_matrix(
        (np.ones(int(tr.sum()), np.float32), (mu[pu[tr]], mi[pi[tr]])),
        shape=(len(model.user_ids), n_items),
    )
    keep = test & (mi[pi] >= 0)
    test_csr = csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (mu[pu[keep]], mi[pi[keep]])),
        shape=(len(model.user_ids), n_items),
    )
    asking = np.flatnonzero(np.diff(test_csr.indptr) > 0)
    result = Result(cfg)
    result.trainings = 1
    popularity = np.diff(train_csr.tocsc().indptr).astype(np.float64)
    t0 = time.perf_counter()
    coread = None
    if cfg.uses_coread():
        # no time: every paper is live and every training read is recent (weight 1)
        table = coreading.build(train_csr, train_csr)
        coread = (table, np.arange(n_items), train_csr[asking])
    _score_batch(
        result,
        "random",
        test_csr[asking],
        train_csr[asking],
        model.user_factors[asking],
        np.diff(train_csr.indptr)[asking],
        model.item_factors,
        np.ones(n_items, bool),
        popularity,
        coread,
    )
    result.timings = {"train": train_s, "rank_and_score": time.perf_counter() - t0}
    if check_implicit:
        result.extra["implicit_check"] = implicit_check(model, train_csr, test_csr, cfg.k)
    result.timings["total"] = time.perf_counter() - started
    return result


def implicit_check(
    model: als.Model, train_csr: csr_matrix, test_csr: csr_matrix, k: int
) -> dict[str, float]:
    """Our metrics and ``implicit.evaluation.ranking_metrics_at_k`` on the same ALS model.

    Parameters
    ----------
    model : Model
    train_csr, test_csr : csr_matrix (n_users, n_items)
        Training and held-out papers in the model's codes.
    k : int

    Returns
    -------
    dict
        ``ours_ndcg``, ``implicit_ndcg``, ``ours_pooled_recall``, ``implicit_precision``
        (implicit's name for the pooled recall).
    """
    from implicit.evaluation import ranking_metrics_at_k
    from threadpoolctl import threadpool_limits

    asking = np.flatnonzero(np.diff(test_csr.indptr) > 0)
    ids, _ = ranking.rank_personal(
        model.user_factors[asking],
        model.item_factors,
        np.ones(len(model.item_ids), bool),
        train_csr[asking],
        k,
    )
    with threadpool_limits(1, "blas"):
        solver = als._fitted_solver(model, model.user_factors, model.item_factors)
        theirs = ranking_metrics_at_k(solver, train_csr, test_csr, K=k, show_progress=False)
    return {
        "ours_ndcg": float(np.nanmean(quality.ndcg_at_k(ids, test_csr[asking], k))),
        "implicit_ndcg": float(theirs["ndcg"]),
        "ours_pooled_recall": quality.pooled_recall_at_k(ids, test_csr[asking], k),
        "implicit_precision": float(theirs["precision"]),
    }


def evaluate(path: str | Path, config: EvalConfig, progress: bool = False) -> Result:
    """Load ``path`` and run the configured split."""
    t0 = time.perf_counter()
    events = load_events(path)
    load_s = time.perf_counter() - t0
    if config.split == "random":
        result = random_split(events, config)
    else:
        result = replay(events, config, progress=progress)
    result.timings["load"] = load_s
    result.extra["events"] = len(events)
    return result


def format_table(result: Result) -> str:
    """A plain-text table of the summary (and tuning) means."""
    k = result.config.k
    tuning, report = result.periods()
    lines = []
    for title, days in (("tuning", tuning), ("report", report)):
        if not days:
            continue
        means = result.mean(days)
        lines.append(f"{title} days {days[0]} .. {days[-1]} ({len(days)})")
        lines.append(
            f"  {'method':<10} {'recall@' + str(k):>10} {'ndcg@' + str(k):>10} {'requests':>9}"
        )
        for method, m in means.items():
            lines.append(
                f"  {method:<10} {m[f'recall@{k}']:>10.4f} {m[f'ndcg@{k}']:>10.4f} {m['users']:>9}"
            )
    lines.append("timings (s): " + ", ".join(f"{k_}={v:.1f}" for k_, v in result.timings.items()))
    return "\n".join(lines)


def plot(result: Result, path: str | Path) -> None:
    """Write a PNG of recall@k and NDCG@k per day and method (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the day labels are ISO dates; matplotlib logs a line per axis call saying so
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)

    k = result.config.k
    days = sorted(result.days)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, metric in zip(axes, (f"recall@{k}", f"ndcg@{k}"), strict=True):
        for method in METHODS:
            values = [result.mean([d])[method][metric] for d in days]
            ax.plot(days, values, marker="o", label=method)
        if result.config.report_from:
            ax.axvline(result.config.report_from, color="grey", linestyle=":", label="report from")
        ax.set_title(f"{metric} per day ({result.config.protocol})")
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def to_json(result: Result) -> str:
    """The result as one JSON object (``"summary"`` first)."""
    return json.dumps(result.to_json())
