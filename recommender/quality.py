"""Ranking metrics with binary relevance: recall@k and NDCG@k, per user, vectorised.

Conventions (the same as ``implicit.evaluation.ranking_metrics_at_k``, which the tests check):

- **recall@k** = hits in the top k / ``min(k, |relevant|)``: a perfect list scores 1 even when
  the user has more than k relevant papers. :func:`pooled_recall_at_k` gives the pooled form
  (total hits / total ``min(k, |relevant|)``), which is what implicit calls ``precision``.
- **NDCG@k** = ``sum(1 / log2(rank + 1))`` over the hits at ranks ``1..k``, divided by the same
  sum over ranks ``1..min(k, |relevant|)``.
- A user with no relevant paper has no score (``nan``); means skip them.
- Recommendation lists are arrays of paper codes padded with ``-1`` (never a hit); a code
  repeated in one list counts once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_matrix


def hits(recommended: ArrayLike, relevant: csr_matrix, k: int) -> NDArray[np.bool_]:
    """Which of the first ``k`` recommendations are relevant.

    Parameters
    ----------
    recommended : array_like of int (q, >= k)
        Paper codes per user, best first, ``-1`` padded.
    relevant : csr_matrix (q, n_items)
        Non-zero where the paper is relevant to the user.
    k : int

    Returns
    -------
    ndarray of bool (q, k)
    """
    recommended = np.asarray(recommended, dtype=np.int64)[:, :k]
    q, width = recommended.shape
    relevant = csr_matrix(relevant)
    relevant.sum_duplicates()
    relevant.eliminate_zeros()
    if relevant.shape[0] != q:
        raise ValueError("recommended and relevant must have one row per user")
    n_items = relevant.shape[1]
    rows = np.repeat(np.arange(q, dtype=np.int64), np.diff(relevant.indptr))
    truth = np.sort(rows * n_items + relevant.indices)
    keys = np.arange(q, dtype=np.int64)[:, None] * n_items + recommended
    found = np.zeros(keys.shape, dtype=bool)
    if len(truth):
        pos = np.searchsorted(truth, keys).clip(0, len(truth) - 1)
        found = (truth[pos] == keys) & (recommended >= 0)
    # A paper repeated in one list is one hit, at its first rank.
    if width > 1:
        order = np.argsort(recommended, axis=1, kind="stable")
        ranked = np.take_along_axis(recommended, order, axis=1)
        repeat = np.zeros_like(found)
        repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
        duplicate = np.zeros_like(found)
        np.put_along_axis(duplicate, order, repeat, axis=1)
        found &= ~duplicate
    if width < k:
        found = np.pad(found, ((0, 0), (0, k - width)))
    return found


def _relevant_counts(relevant: csr_matrix) -> NDArray[np.int64]:
    relevant = csr_matrix(relevant)
    relevant.sum_duplicates()
    relevant.eliminate_zeros()
    return np.diff(relevant.indptr).astype(np.int64)


def recall_at_k(recommended: ArrayLike, relevant: csr_matrix, k: int) -> NDArray[np.float64]:
    """Per-user recall@k = hits / ``min(k, |relevant|)``.

    Parameters
    ----------
    recommended : array_like of int (q, >= k)
    relevant : csr_matrix (q, n_items)
    k : int

    Returns
    -------
    ndarray of float64 (q,)
        ``nan`` for users without relevant papers.
    """
    found = hits(recommended, relevant, k).sum(axis=1)
    denominator = np.minimum(k, _relevant_counts(relevant)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, found / denominator, np.nan)


def ndcg_at_k(recommended: ArrayLike, relevant: csr_matrix, k: int) -> NDArray[np.float64]:
    """Per-user NDCG@k with binary relevance.

    Parameters
    ----------
    recommended : array_like of int (q, >= k)
    relevant : csr_matrix (q, n_items)
    k : int

    Returns
    -------
    ndarray of float64 (q,)
        ``nan`` for users without relevant papers.
    """
    gains = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits(recommended, relevant, k) @ gains
    ideal_len = np.minimum(k, _relevant_counts(relevant))
    ideal = np.concatenate([[0.0], np.cumsum(gains)])[ideal_len]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal_len > 0, dcg / np.where(ideal > 0, ideal, 1.0), np.nan)


def pooled_recall_at_k(recommended: ArrayLike, relevant: csr_matrix, k: int) -> float:
    """Total hits / total ``min(k, |relevant|)`` over all users (implicit's "precision").

    Parameters
    ----------
    recommended : array_like of int (q, >= k)
    relevant : csr_matrix (q, n_items)
    k : int

    Returns
    -------
    float
        ``nan`` when no user has a relevant paper.
    """
    denominator = np.minimum(k, _relevant_counts(relevant)).sum()
    if denominator == 0:
        return float("nan")
    return float(hits(recommended, relevant, k).sum() / denominator)
