"""The inverted-file index behind serving's personal candidates (pure: no Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import ivf


def clustered(n: int = 20_000, f: int = 16, topics: int = 40, seed: int = 0) -> np.ndarray:
    """Factors with topic structure, as trained ALS factors have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, f)).astype(np.float32)
    topic = rng.integers(0, topics, n)
    return (centres[topic] + 0.4 * rng.standard_normal((n, f))).astype(np.float32)


def exact(factors: np.ndarray, has: np.ndarray, v: np.ndarray, excluded, k: int) -> list[int]:
    scores = factors @ v
    scores[~has] = -np.inf
    scores[excluded] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return [int(c) for c in order if np.isfinite(scores[c])]


def test_full_scan_is_exact() -> None:
    factors = clustered(3000)
    has = np.ones(len(factors), bool)
    has[::7] = False
    factors[~has] = 0.0
    index = ivf.build(factors, has)
    assert index.size == len(factors) and len(index.order) == has.sum()
    rng = np.random.default_rng(1)
    for _ in range(20):
        v = rng.standard_normal(factors.shape[1]).astype(np.float32)
        excluded = rng.choice(len(factors), 25, replace=False)
        got = ivf.search(index, factors, has, v, excluded, 50, scan_fraction=1.0)
        assert got.tolist() == exact(factors, has, v, excluded, 50)


def test_a_tenth_of_the_papers_holds_most_of_the_top_on_structured_factors() -> None:
    factors = clustered()
    has = np.ones(len(factors), bool)
    index = ivf.build(factors, has, seed=3)
    rng = np.random.default_rng(2)
    users = factors[rng.choice(len(factors), 100, replace=False)]  # users near some topic
    recall = []
    for v in users:
        got = ivf.search(index, factors, has, v, np.zeros(0, np.int64), 100, scan_fraction=0.1)
        assert len(got) == 100 and len(set(got.tolist())) == 100
        truth = exact(factors, has, v, [], 100)
        recall.append(len(set(got.tolist()) & set(truth)) / 100)
    assert np.mean(recall) >= 0.9


def test_exclusions_missing_factors_and_later_papers() -> None:
    factors = clustered(2000)
    has = np.ones(len(factors), bool)
    has[:50] = False
    factors[:50] = 0.0
    index = ivf.build(factors, has)
    v = factors[100].copy()
    # a paper appended after the build (folded in) that matches the user best
    grown = np.vstack([factors, 10 * v[None, :]])
    grown_has = np.append(has, True)
    got = ivf.search(index, grown, grown_has, v, np.array([100]), 30, scan_fraction=0.05)
    assert got[0] == len(factors)
    assert 100 not in got.tolist() and not set(got.tolist()) & set(range(50))
    assert ivf.search(index, grown, grown_has, v, np.array([], np.int64), 0, 0.1).size == 0


def test_kmeans_is_deterministic() -> None:
    x = clustered(5000)
    a = ivf.kmeans(x, 60, seed=5)
    b = ivf.kmeans(x, 60, seed=5)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a))


@pytest.mark.parametrize("n", [1, 3])
def test_tiny_models(n: int) -> None:
    factors = clustered(n)
    has = np.ones(n, bool)
    index = ivf.build(factors, has)
    got = ivf.search(index, factors, has, factors[0], np.zeros(0, np.int64), 5, 0.1)
    assert sorted(got.tolist()) == list(range(n))


def test_a_model_without_any_factor() -> None:
    factors = np.zeros((10, 4), np.float32)
    index = ivf.build(factors, np.zeros(10, bool))
    v = np.ones(4, np.float32)
    assert (
        ivf.search(index, factors, np.zeros(10, bool), v, np.zeros(0, np.int64), 5, 0.1).size == 0
    )


def test_ties_and_many_exclusions_match_the_exact_order() -> None:
    """Papers with equal scores come by code, at the k-th place too, however many papers the
    user excluded (more than k here), scanning all or part of the index. Small integer factors
    make every score exact, so ties do not depend on how BLAS sums a block."""
    rng = np.random.default_rng(4)
    base = rng.integers(-3, 4, (400, 8)).astype(np.float32)
    factors = np.repeat(base, 5, axis=0)  # every factor row five times: ties everywhere
    has = np.ones(len(factors), bool)
    index = ivf.build(factors, has)
    for _ in range(20):
        v = rng.integers(-3, 4, 8).astype(np.float32)
        excluded = rng.choice(len(factors), 300, replace=False)
        got = ivf.search(index, factors, has, v, excluded, 37, scan_fraction=1.0)
        assert got.tolist() == exact(factors, has, v, excluded, 37)
        part = ivf.search(index, factors, has, v, excluded, 37, scan_fraction=0.2)
        assert len(part) == 37 and not set(part.tolist()) & set(excluded.tolist())
        scores = factors[part] @ v
        # best first, ties by code, among what the index scanned
        pairs = list(zip(scores.tolist(), part.tolist(), strict=True))
        assert pairs == sorted(pairs, key=lambda pair: (-pair[0], pair[1]))
