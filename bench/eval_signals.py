"""Which live signals could lift "trending for you" over trending on news clicks? (a benchmark)

The blend's goal (+10 % NDCG@20 over the better of trending and ALS) is missed on Globo; this
script measures, on the same hourly protocol as ``paperfeed evaluate`` (one request per user and
hour, scored against the papers the user newly opens in that hour, history excluded), the
signals a designed blend could add to trending, each on its own and combined:

1. **trending half-life**: decayed distinct readers at 2 minutes .. 2 hours;
2. **momentum and freshness**: short minus long half-life (growth), paper age;
3. **co-reading**: "readers of what you read also read", over the last 6 hours, weighted by how
   recently the user read (the neighbourhood analogue of ALS with fold-in);
4. **transitions**: what readers opened next (within 30 minutes) after the user's last paper,
   mixed with trending per user by the time since the user's last read;
5. **a learned scorer**: logistic regression over all of the above, fitted on the first day of
   the range and scored on the others;
6. for scale, an **oracle** that is not a method: candidates ranked by how many readers they
   get in the hour being predicted, the best any non-personal list could do.

Usage::

    python bench/eval_signals.py /tmp/paperfeed-eval/globo.csv --sample-users 0.1 --days 0:3

``--days A:B`` are day offsets from the first midnight (0 is 2017-10-02 on Globo); 0:3 are the
tuning days of docs/evaluation.md, 3:7 the report days. Prints NDCG@20 per variant, and the
ratio to the best single half-life.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.sparse import csr_matrix

from recommender import evaluate, quality, ranking
from recommender.matrix import encode_ids

HOUR, DAY = 3600.0, 86400.0
HALF_LIVES_S = (120, 300, 600, 900, 1800, 3600, 7200)
WINDOW_S = 6 * HOUR  # co-reading and transitions look this far back
CANDIDATES = 300  # per half-life; the union is ranked
K = 20


@dataclass
class Slot:
    """The state at the start of one hour, for the users who ask in it."""

    start: float
    trend: dict[int, NDArray[np.float64]]  # half-life (s) -> decayed readers per paper
    hot: NDArray[np.int64]  # candidate papers
    relevant: csr_matrix  # (q, n_items)
    excluded: NDArray[np.bool_]  # (q, len(hot))
    hist_row: NDArray[np.int64]  # the asking users' first reads before the slot: row, paper, time
    hist_item: NDArray[np.int64]
    hist_ts: NDArray[np.float64]
    gap: NDArray[np.float64]  # (q,) seconds since the user's last read
    last_item: NDArray[np.int64]  # (q,) the user's last paper


class Log:
    """First reads of a CSV log, as integer arrays sorted by time."""

    def __init__(self, path: str) -> None:
        ev = evaluate.load_events(path)
        users, uid = encode_ids(ev.user)
        items, iid = encode_ids(ev.item)
        self.n_users, self.n_items = len(users), len(items)
        uid, iid = uid.astype(np.int64), iid.astype(np.int64)
        _, first = np.unique(uid * self.n_items + iid, return_index=True)
        first.sort()
        self.u, self.i, self.t = uid[first], iid[first], ev.ts[first]
        self.first_seen = np.full(self.n_items, np.inf)
        np.minimum.at(self.first_seen, iid, ev.ts)
        self.day0 = float(np.floor(ev.ts[0] / DAY) * DAY + DAY)
        # consecutive first reads of one user less than 30 minutes apart
        o = np.lexsort((self.t, self.u))
        su, si, st = self.u[o], self.i[o], self.t[o]
        ok = (su[1:] == su[:-1]) & (st[1:] - st[:-1] < 1800)
        order = np.argsort(st[1:][ok], kind="stable")
        self.tr_from, self.tr_to = si[:-1][ok][order], si[1:][ok][order]
        self.tr_t = st[1:][ok][order]

    def slots(self, first_day: int, last_day: int, sample: NDArray[np.bool_]) -> Iterator[Slot]:
        """Every hour of days ``[first_day, last_day)`` with at least one request."""
        seen = np.zeros(self.n_users, bool)
        cursor = 0
        for start in np.arange(self.day0, self.day0 + last_day * DAY, HOUR):
            upto = int(np.searchsorted(self.t, start))
            seen[self.u[cursor:upto]] = True
            cursor = upto
            if start < self.day0 + first_day * DAY:
                continue
            lo = int(np.searchsorted(self.t, start - 2 * DAY))
            age = start - self.t[lo:upto]
            trend = {
                h: np.bincount(self.i[lo:upto], np.exp2(-age / h), minlength=self.n_items)
                for h in HALF_LIVES_S
            }
            a = np.arange(upto, int(np.searchsorted(self.t, start + HOUR)))
            a = a[seen[self.u[a]] & sample[self.u[a]]]
            if len(a) == 0:
                continue
            asking, row = np.unique(self.u[a], return_inverse=True)
            q = len(asking)
            relevant = csr_matrix(
                (np.ones(len(a)), (row.reshape(-1), self.i[a])), shape=(q, self.n_items)
            )
            h = np.flatnonzero(np.isin(self.u[:upto], asking))
            hist_row = np.searchsorted(asking, self.u[h])
            last = np.full(q, -np.inf)
            np.maximum.at(last, hist_row, self.t[h])
            last_item = np.zeros(q, np.int64)
            is_last = self.t[h] == last[hist_row]
            last_item[hist_row[is_last]] = self.i[h][is_last]
            hot = np.zeros(self.n_items, bool)
            for score in trend.values():
                hot |= score >= max(np.sort(score)[-CANDIDATES], 1e-12)
            hot_ids = np.flatnonzero(hot)
            exc = csr_matrix((np.ones(len(h)), (hist_row, self.i[h])), shape=(q, self.n_items))[
                :, hot_ids
            ]
            yield Slot(
                start,
                trend,
                hot_ids,
                relevant,
                exc.toarray() != 0,
                hist_row,
                self.i[h],
                self.t[h],
                start - last,
                last_item,
            )

    def co_reading(self, s: Slot, user_half_life_s: float) -> NDArray[np.float64]:
        """(q, hot): sum over the user's papers i (decayed by how long ago the user read it)
        of readers of both i and the candidate in the window, over readers of i."""
        lo, hi = np.searchsorted(self.t, [s.start - WINDOW_S, s.start])
        reads = csr_matrix(
            (np.ones(hi - lo), (self.u[lo:hi], self.i[lo:hi])), shape=(self.n_users, self.n_items)
        )
        both = (reads.T @ reads[:, s.hot]).tocsr()
        readers = np.asarray(reads.sum(axis=0)).ravel()
        weight = np.exp2(-(s.start - s.hist_ts) / user_half_life_s) / np.maximum(
            readers[s.hist_item], 1
        )
        mine = csr_matrix((weight, (s.hist_row, s.hist_item)), shape=(len(s.gap), self.n_items))
        return np.asarray((mine @ both).todense())

    def transitions(self, s: Slot) -> NDArray[np.float64]:
        """(q, hot): share of the next reads after the user's last paper that went to each."""
        lo, hi = np.searchsorted(self.tr_t, [s.start - WINDOW_S, s.start])
        weight = np.exp2(-(s.start - self.tr_t[lo:hi]) / HOUR)
        m = csr_matrix(
            (weight, (self.tr_from[lo:hi], self.tr_to[lo:hi])),
            shape=(self.n_items, self.n_items),
        )
        out = np.asarray(m[s.last_item][:, s.hot].todense())
        total = np.asarray(m.sum(axis=1)).ravel()[s.last_item]
        return out / np.maximum(total, 1e-12)[:, None]


def ndcg(s: Slot, scores: NDArray) -> NDArray[np.float64]:
    sc = np.array(np.broadcast_to(scores, s.excluded.shape), dtype=np.float32)
    sc[s.excluded] = -np.inf
    ids = ranking.top_n(sc, K)[0]
    return quality.ndcg_at_k(np.where(ids >= 0, s.hot[ids.clip(0)], -1), s.relevant, K)


def features(log: Log, s: Slot) -> NDArray[np.float64]:
    """(q, hot, f) for the learned scorer."""
    shape = s.excluded.shape
    cols = [np.broadcast_to(np.log(0.01 + s.trend[h][s.hot]), shape) for h in (120, 300, 900, 3600)]
    cols.append(np.broadcast_to(np.log(np.maximum(s.start - log.first_seen[s.hot], 60)), shape))
    recency = np.log(np.maximum(s.gap, 60))[:, None]
    for half in (900.0, 4 * HOUR):
        c = np.log1p(10 * log.co_reading(s, half))
        cols += [c, c * recency]
    cols.append(np.log1p(100 * log.transitions(s)))
    cols.append(np.broadcast_to(recency, shape))
    return np.stack(cols, axis=-1)


def fit_logistic(x: NDArray, y: NDArray) -> NDArray:
    """L2-regularised logistic regression; the last weight is the intercept."""
    xs = np.c_[x, np.ones(len(x))]

    def loss(w: NDArray) -> tuple[float, NDArray]:
        z = xs @ w
        reg = np.r_[w[:-1], 0.0]
        value = float(np.mean(np.logaddexp(0, z) - y * z) + 1e-4 * reg @ reg)
        return value, xs.T @ (1 / (1 + np.exp(-z)) - y) / len(y) + 2e-4 * reg

    return minimize(loss, np.zeros(xs.shape[1]), jac=True, method="L-BFGS-B").x


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events")
    parser.add_argument("--sample-users", type=float, default=0.1)
    parser.add_argument("--days", default="0:3")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    first, last = (int(x) for x in args.days.split(":"))
    log = Log(args.events)
    rng = np.random.default_rng(args.seed)
    sample = rng.random(log.n_users) < args.sample_users

    scores: dict[str, list[NDArray]] = {}
    segments: dict[tuple[str, str], list[NDArray]] = {}
    train_x, train_y = [], []
    fitted: NDArray | None = None
    mu = sd = None
    bounds = [(0, 600, "< 10 min"), (600, 7200, "10 min - 2 h"), (7200, np.inf, "> 2 h")]
    for s in log.slots(first, last, sample):
        learn_day = s.start < log.day0 + (first + 1) * DAY
        if not learn_day and fitted is None and train_x:
            x, y = np.concatenate(train_x), np.concatenate(train_y).astype(float)
            mu, sd = x.mean(0), x.std(0) + 1e-9
            fitted = fit_logistic((x - mu) / sd, y)
        logs = {h: np.log(0.01 + s.trend[h][s.hot]) for h in HALF_LIVES_S}
        variants: dict[str, NDArray] = {f"trending {h // 60} min": logs[h] for h in HALF_LIVES_S}
        for g in (0.5, 1.0):
            growth = logs[900] - logs[3600]
            variants[f"5 min + {g} x growth (15 min - 1 h)"] = logs[300] + g * growth
        age = np.log(np.maximum(s.start - log.first_seen[s.hot], 60))
        variants["5 min - 0.25 x log age"] = logs[300] - 0.25 * age
        co = log.co_reading(s, 900.0)
        variants["co-reading alone"] = co + 1e-9 * logs[300]
        for w in (0.25, 0.5, 1.0):
            variants[f"5 min + {w} x log(1 + 10 co-reading)"] = logs[300] + w * np.log1p(10 * co)
        share = s.trend[300][s.hot] / s.trend[300][s.hot].sum()
        trans = log.transitions(s)
        variants["transitions alone"] = trans + 1e-9 * share
        for lam in (0.3, 0.5):
            mix = lam * np.exp2(-s.gap / 1800)[:, None]
            variants[f"5 min mixed with transitions ({lam})"] = (1 - mix) * share + mix * trans
        # Not a method: the best list anyone could rank without personal signals.
        lo, hi = np.searchsorted(log.t, [s.start, s.start + HOUR])
        future = np.bincount(log.i[lo:hi], minlength=log.n_items)[s.hot]
        variants["oracle: the hour's own global reads"] = future + 1e-9 * s.trend[300][s.hot]
        if learn_day:
            x = features(log, s)
            y = s.relevant[:, s.hot].toarray() != 0
            keep = ~s.excluded
            xk, yk = x[keep], y[keep]
            pos, neg = np.flatnonzero(yk), np.flatnonzero(~yk)
            neg = rng.choice(neg, min(len(neg), 20 * len(pos)), replace=False)
            train_x.append(xk[np.r_[pos, neg]])
            train_y.append(yk[np.r_[pos, neg]])
            continue
        if fitted is not None:
            x = (features(log, s) - mu) / sd
            variants["learned (all signals)"] = x @ fitted[:-1]
        for name, sc in variants.items():
            value = ndcg(s, sc)
            scores.setdefault(name, []).append(value)
            for lo, hi, label in bounds:
                m = (s.gap >= lo) & (s.gap < hi)
                segments.setdefault((name, label), []).append(value[m])

    means = {k: float(np.nanmean(np.concatenate(v))) for k, v in scores.items()}
    best = max((v, k) for k, v in means.items() if k.startswith("trending "))
    print(f"days {first}:{last} (the first fits the learned scorer), users {args.sample_users}")
    print(f"requests: {sum(len(v) for v in scores[best[1]])}; best single half-life: {best[1]}")
    print(f"{'variant':48} {'NDCG@20':>8} {'vs best':>8}  " + "  ".join(b[2] for b in bounds))
    for name, value in sorted(means.items(), key=lambda kv: -kv[1]):
        seg = [np.concatenate(segments[(name, b[2])]) for b in bounds]
        cells = "  ".join(f"{np.nanmean(x):.3f} ({len(x)})" for x in seg)
        print(f"{name:48} {value:8.4f} {value / best[0]:8.3f}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
