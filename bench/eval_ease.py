"""EASE on `paperfeed evaluate --split random`'s split: is there a collaborative model to beat ALS?

On citeulike-a the blend adds +2 % NDCG@20 to the best ALS found (600 factors), short of the
+10 % goal. This scores EASE (Steck 2019: a closed-form item-item model, often the strongest
linear collaborative filter on data of this size) on the very same split and metrics, to see
whether a better collaborative model is there to be blended in:

    .venv/bin/python bench/eval_ease.py /tmp/paperfeed-eval/citeulike-a.csv --lambdas 60,200,500

Dense: memory and time grow with the square and the cube of the papers (16,980 papers: 2.3 GB,
about 3.5 minutes per lambda on 2 cores). An experiment, not a model the product can train
nightly over 200,000 papers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.sparse import csr_matrix

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender import quality, ranking  # noqa: E402
from recommender.evaluate import load_events, random_holdout  # noqa: E402


class Split(NamedTuple):
    """``random_holdout``'s split as matrices (users x papers, ones)."""

    users: np.ndarray  # sorted distinct ids
    items: np.ndarray
    pu: np.ndarray  # each (user, paper) pair read, as indices into users and items
    pi: np.ndarray
    train: np.ndarray  # bool per pair: kept for training
    seen: np.ndarray  # bool per paper: read in training
    x: csr_matrix  # the training pairs
    held: csr_matrix  # the held-out pairs of papers seen in training
    asking: np.ndarray  # the users with a held-out paper


def split(events: Any, seed: int, fraction: float = 0.2) -> Split:
    """The split of ``paperfeed evaluate --split random --seed SEED``, as matrices."""
    users, items, pu, pi, test = random_holdout(events, seed, fraction)
    train = ~test
    seen = np.zeros(len(items), bool)
    seen[pi[train]] = True
    keep = test & seen[pi]  # as random_split: held-out papers nobody trained on are dropped
    shape = (len(users), len(items))
    x = csr_matrix((np.ones(int(train.sum()), np.float32), (pu[train], pi[train])), shape=shape)
    held = csr_matrix((np.ones(int(keep.sum()), np.float32), (pu[keep], pi[keep])), shape=shape)
    asking = np.flatnonzero(np.diff(held.indptr) > 0)
    return Split(users, items, pu, pi, train, seen, x, held, asking)


def ease_weights(x: csr_matrix, lam: float) -> np.ndarray:
    """EASE's item-to-item weights for the users x papers matrix ``x`` with L2 weight ``lam``:
    ``B = I - P / diag(P)`` for ``P = (X'X + lam I)^-1``, zero diagonal (dense, float64)."""
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    weights = np.linalg.inv(gram)
    weights /= -np.diag(weights)
    np.fill_diagonal(weights, 0.0)
    return weights


def top_unread(scores: np.ndarray, had: csr_matrix, k: int) -> np.ndarray:
    """Each row's ``k`` best papers by ``scores`` among those the user does not have in ``had``
    (what the user has is never recommended)."""
    scores = scores.astype(np.float32, copy=True)
    scores[had.nonzero()] = -np.inf
    return ranking.top_n(scores, k)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("events", help="CSV with user,item[,ts]")
    parser.add_argument("--lambdas", default="60,200,500", help="EASE's L2 weights to try")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (as --seed)")
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()

    data = split(load_events(args.events), args.seed)
    items, x, held, asking = data.items, data.x, data.held, data.asking
    print(
        f"{len(data.users)} users, {len(items)} papers, {x.nnz} training pairs, {held.nnz} held out"
    )

    x_asking, held_asking = x[asking], held[asking]
    for lam in (float(v) for v in args.lambdas.split(",")):
        started = time.perf_counter()
        scores = np.asarray(x_asking @ ease_weights(x, lam), dtype=np.float32)
        top = top_unread(scores, x_asking, args.k)
        ndcg = np.nanmean(quality.ndcg_at_k(top, held_asking, args.k))
        recall = np.nanmean(quality.recall_at_k(top, held_asking, args.k))
        print(
            f"EASE lambda {lam:g}: NDCG@{args.k} {ndcg:.4f}  recall@{args.k} {recall:.4f}  "
            f"({len(asking)} users, {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
