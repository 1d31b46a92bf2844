"""An inverted-file index over item factors: a user's ALS top-k without reading every paper.

Serving needs each user's ``personal_k`` highest ALS scores as blend candidates. Exactly, that is
a matrix-vector product over every paper: at 200,000 papers x 64 factors, 51 MB of memory
traffic per request, which on a 2-core machine caps a process at about 150 such requests a second
and makes the tail latency under load (see docs/training.md). Exact shortcuts do not help in
general (bounds from factor norms or a principal subspace prune nothing on real ALS models of
citeulike-a), so this is the standard approximate alternative:

- **build** (once per model version, per web process, in the background): k-means on the
  factors of the papers that have any (``2 * sqrt(n)`` clusters, fitted on a sample, then every
  paper assigned to its nearest centroid); the factors are copied in cluster order so that each
  cluster is one contiguous block;
- **search**: score the centroids, take the best clusters until they hold ``scan_fraction`` of
  the papers (and at least k), score those blocks exactly (plus the papers added after the
  index was built, e.g. folded-in fresh ones), and return the top k.

The result is exact when ``scan_fraction`` is 1. On trained ALS models, 10 % of the papers hold
about 96 % of the true top 100 (``bench/topk_search.py``); the candidates are then scored
exactly by the blend, so an approximation can only leave out a candidate, never misrank one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

from recommender import ranking

# Below this many papers an exact scan costs about a millisecond: no index.
MIN_ITEMS = 50_000
_ASSIGN_BLOCK = 16_384


@dataclass(frozen=True)
class Index:
    """Papers grouped by nearest centroid.

    centroids : float32 (c, f)
    order : int64 (m,) -- the indexed paper codes, cluster by cluster
    starts : int64 (c + 1,) -- cluster ``j`` is ``order[starts[j]:starts[j + 1]]``
    blocks : float32 (m, f) -- ``item_factors[order]``, contiguous per cluster
    size : int -- papers in the factor matrix when the index was built (later ones are not in it)
    """

    centroids: NDArray[np.float32]
    order: NDArray[np.int64]
    starts: NDArray[np.int64]
    blocks: NDArray[np.float32]
    size: int


def _nearest(x: NDArray[np.float32], centroids: NDArray[np.float32]) -> NDArray[np.int64]:
    """Nearest centroid (Euclidean) of each row, in blocks to bound the memory."""
    half_norms = 0.5 * np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(x), dtype=np.int64)
    for lo in range(0, len(x), _ASSIGN_BLOCK):
        out[lo : lo + _ASSIGN_BLOCK] = np.argmax(
            x[lo : lo + _ASSIGN_BLOCK] @ centroids.T - half_norms, axis=1
        )
    return out


def kmeans(
    x: NDArray[np.float32], clusters: int, iterations: int = 8, seed: int = 0
) -> NDArray[np.float32]:
    """Lloyd's k-means (random initial centroids, empty clusters re-seeded); the centroids."""
    rng = np.random.default_rng(seed)
    clusters = min(clusters, len(x))
    centroids = x[rng.choice(len(x), clusters, replace=False)].copy()
    for _ in range(iterations):
        assign = _nearest(x, centroids)
        counts = np.bincount(assign, minlength=clusters)
        members = csr_matrix(
            (np.ones(len(x), np.float32), (assign, np.arange(len(x)))), shape=(clusters, len(x))
        )
        sums = np.asarray(members @ x, dtype=np.float32)
        empty = counts == 0
        centroids = np.where(
            empty[:, None], x[rng.choice(len(x), clusters)], sums / np.maximum(counts, 1)[:, None]
        ).astype(np.float32)
    return centroids


def build(
    item_factors: NDArray[np.float32],
    has_factor: NDArray[np.bool_],
    *,
    sample: int = 50_000,
    iterations: int = 8,
    seed: int = 0,
) -> Index:
    """Index the papers that have factors (deterministic for a given ``seed``)."""
    codes = np.flatnonzero(has_factor).astype(np.int64)
    x = np.ascontiguousarray(item_factors[codes], dtype=np.float32)
    if len(codes) == 0:
        empty = np.zeros((0, item_factors.shape[1]), np.float32)
        return Index(empty, codes, np.zeros(1, np.int64), empty, len(item_factors))
    clusters = max(1, int(2 * np.sqrt(len(codes))))
    rng = np.random.default_rng(seed)
    fit_on = x if len(x) <= sample else x[rng.choice(len(x), sample, replace=False)]
    centroids = kmeans(fit_on, clusters, iterations, seed)
    assign = _nearest(x, centroids)
    by_cluster = np.argsort(assign, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=len(centroids)))])
    return Index(
        centroids=centroids,
        order=codes[by_cluster],
        starts=starts.astype(np.int64),
        blocks=np.ascontiguousarray(x[by_cluster]),
        size=len(item_factors),
    )


def search(
    index: Index,
    item_factors: NDArray[np.float32],
    has_factor: NDArray[np.bool_],
    vector: NDArray[np.float32],
    excluded: NDArray[np.int64],
    k: int,
    scan_fraction: float,
) -> NDArray[np.int64]:
    """Codes of (about) the ``k`` highest ``vector . item`` scores, best first.

    Papers without factors and ``excluded`` codes are never returned. Papers added to
    ``item_factors`` after the index was built are always scanned.
    """
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    v = np.asarray(vector, np.float32)
    sizes = np.diff(index.starts)
    ranked = np.argsort(-(index.centroids @ v), kind="stable")
    wanted = max(scan_fraction * len(index.order), k)  # at least k papers when there are
    taken = int(np.searchsorted(np.cumsum(sizes[ranked]), wanted)) + 1
    chosen = np.sort(ranked[:taken])  # in memory order
    lo, size = index.starts[chosen], sizes[chosen]
    ends = np.cumsum(size)  # where each chosen cluster's scores end
    scanned = int(ends[-1]) if len(ends) else 0
    extra = np.arange(index.size, len(item_factors), dtype=np.int64)  # folded in after the build
    extra = extra[has_factor[extra]]
    scores = np.empty(scanned + len(extra), dtype=np.float32)
    at = 0
    # one product per cluster, written in place (100 clusters, warm: 200 us, where a new array
    # per cluster took 390 before they were even concatenated)
    for a, b in zip(lo.tolist(), (lo + size).tolist(), strict=True):
        np.dot(index.blocks[a:b], v, scores[at : at + b - a])
        at += b - a
    if len(extra):
        scores[scanned:] = item_factors[extra] @ v
    # the best k that are not excluded are among the best k + (number excluded)
    excluded = np.unique(np.asarray(excluded, np.int64))
    places = ranking.at_least_top(scores, k + len(excluded))
    inside = places[places < scanned]
    j = np.searchsorted(ends, inside, side="right")
    codes = np.concatenate(
        [index.order[lo[j] + inside - (ends[j] - size[j])], extra[places[len(inside) :] - scanned]]
    )
    keep = ~ranking.member(codes, excluded)
    places, codes = places[keep], codes[keep]
    return codes[np.lexsort((codes, -scores[places]))[:k]]
