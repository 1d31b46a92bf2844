"""Metrics: hand-computed values, and agreement with implicit's ranking_metrics_at_k."""

from __future__ import annotations

import math

import numpy as np
import pytest
from implicit.evaluation import ranking_metrics_at_k, train_test_split
from scipy.sparse import coo_matrix, csr_matrix
from threadpoolctl import threadpool_limits

from recommender import als, quality, ranking


def rel(rows: list[list[int]], n_items: int = 10) -> csr_matrix:
    data = [(r, i) for r, items in enumerate(rows) for i in items]
    r, c = zip(*data, strict=True) if data else ((), ())
    return csr_matrix((np.ones(len(data)), (r, c)), shape=(len(rows), n_items))


def test_hand_computed_recall_and_ndcg():
    recommended = np.array([[3, 1, 4, -1], [5, 6, 7, 8], [0, 1, 2, 3]])
    relevant = rel([[1, 4, 9], [2], []])
    k = 3
    # user 0: hits at ranks 2 and 3; 3 relevant, min(k, 3) = 3
    g = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    np.testing.assert_allclose(quality.recall_at_k(recommended, relevant, k)[:2], [2 / 3, 0.0])
    np.testing.assert_allclose(
        quality.ndcg_at_k(recommended, relevant, k)[:2], [(g[1] + g[2]) / sum(g), 0.0]
    )
    assert np.isnan(quality.recall_at_k(recommended, relevant, k)[2])
    assert np.isnan(quality.ndcg_at_k(recommended, relevant, k)[2])


def test_recall_denominator_is_min_k_relevant():
    relevant = rel([[0, 1, 2, 3, 4]])
    assert quality.recall_at_k([[0, 1]], relevant, 2)[0] == 1.0
    assert quality.ndcg_at_k([[0, 1]], relevant, 2)[0] == pytest.approx(1.0)
    assert quality.pooled_recall_at_k([[0, 1], [5, 6]], rel([[0, 1, 2, 3, 4], [6]]), 2) == (
        pytest.approx(3 / 3)
    )


def test_duplicates_and_padding_never_count_twice():
    relevant = rel([[2]])
    assert quality.recall_at_k([[2, 2, -1]], relevant, 3)[0] == 1.0
    assert quality.ndcg_at_k([[-1, 2, 2]], relevant, 3)[0] == pytest.approx(1 / math.log2(3))
    assert quality.hits([[2, 2, -1]], relevant, 5).tolist() == [[True, False, False, False, False]]


def test_metrics_agree_with_implicit_on_the_same_model():
    rng = np.random.default_rng(3)
    n_users, n_items = 120, 60
    # a low-rank preference structure, so that the model is better than chance
    taste = rng.normal(size=(n_users, 3)) @ rng.normal(size=(3, n_items))
    chosen = taste + rng.gumbel(size=taste.shape) > np.quantile(taste, 0.8)
    ratings = coo_matrix(chosen.astype(np.float32))
    train, test = train_test_split(ratings, train_percentage=0.8, random_state=1)
    users = np.repeat(np.arange(n_users), np.diff(train.indptr)).astype(str)
    users = np.char.zfill(users, 4)
    items = np.char.zfill(train.indices.astype(str), 4)
    model = als.train(
        users,
        items,
        np.zeros(train.nnz, np.int8),
        np.zeros(train.nnz),
        1.0,
        als.TrainParams(factors=4, iterations=10, seed=0),
    )
    # our codes equal implicit's because zero-padded ids sort like the integers
    assert len(model.user_ids) == n_users and len(model.item_ids) == n_items
    asking = np.flatnonzero(np.diff(test.indptr) > 0)
    ids, _ = ranking.rank_personal(
        model.user_factors[asking], model.item_factors, np.ones(n_items, bool), train[asking], 10
    )
    with threadpool_limits(1, "blas"):
        solver = als._fitted_solver(model, model.user_factors, model.item_factors)
        theirs = ranking_metrics_at_k(solver, train, test, K=10, show_progress=False)
    ours_ndcg = np.nanmean(quality.ndcg_at_k(ids, test[asking], 10))
    assert ours_ndcg == pytest.approx(theirs["ndcg"], rel=1e-5)
    assert quality.pooled_recall_at_k(ids, test[asking], 10) == pytest.approx(
        theirs["precision"], rel=1e-5
    )
    assert ours_ndcg > 0.1  # the comparison means something: not two zeros
