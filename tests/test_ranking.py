"""Ranking: properties of the blend and of the trending / ALS rankers (pure core, no Redis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse import csr_matrix

from recommender import ranking
from recommender.ranking import BlendParams

FACTORS = 3


@st.composite
def catalogues(draw):
    n_items = draw(st.integers(1, 30))
    q = draw(st.integers(1, 4))
    floats = st.floats(-2, 2, width=32)
    items = draw(arrays(np.float32, (n_items, FACTORS), elements=floats))
    users = draw(arrays(np.float32, (q, FACTORS), elements=floats))
    has_factor = draw(arrays(np.bool_, n_items))
    trend = draw(arrays(np.float64, n_items, elements=st.floats(0, 1000)))
    excluded = draw(arrays(np.bool_, (q, n_items)))
    history = draw(arrays(np.int64, q, elements=st.integers(0, 50)))
    params = BlendParams(
        trending_k=draw(st.integers(0, 40)),
        personal_k=draw(st.integers(0, 40)),
        personal_weight=draw(st.floats(0, 5)),
        history_half=draw(st.floats(0, 20)),
        trending_offset=draw(st.floats(0.01, 10)),
        decorrelate=draw(st.booleans()),
        coread_weight=draw(st.sampled_from([0.0, 0.7, 3.0])),
        coread_k=draw(st.integers(0, 40)),
    )
    coread = draw(arrays(np.float32, (q, n_items), elements=st.floats(-3, 3, width=32)))
    n = draw(st.integers(1, 25))
    return users, history, items, has_factor, trend, csr_matrix(excluded), n, params, coread


@given(catalogues())
@settings(max_examples=150, deadline=None)
def test_blend_is_sorted_unique_bounded_and_respects_exclusions(case):
    users, history, items, has_factor, trend, exclude, n, params, coread = case
    ids, scores, lifted = ranking.blend(
        users, history, items, has_factor, trend, exclude, n, params, coread
    )
    assert ids.shape == scores.shape == lifted.shape == (len(users), n)
    dense_exclude = exclude.toarray()
    for row, (row_ids, row_scores) in enumerate(zip(ids, scores, strict=True)):
        real = row_ids[row_ids >= 0]
        # padding only at the end, real entries unique and sorted by score
        assert (row_ids[: len(real)] >= 0).all()
        assert len(set(real.tolist())) == len(real) <= n
        assert np.all(np.diff(row_scores[: len(real)]) <= 0)
        assert not dense_exclude[row, real].any()
        assert not lifted[row, len(real) :].any()


@given(catalogues())
@settings(max_examples=80, deadline=None)
def test_single_user_entry_point_agrees(case):
    users, history, items, has_factor, trend, exclude, n, params, coread = case
    excluded = exclude[0].indices
    out = ranking.trending_for_you(
        users[0],
        int(history[0]),
        items,
        has_factor,
        trend,
        excluded,
        n,
        params,
        explain=lambda item: 0,
        coread=coread[0],
    )
    ids = [item for item, _, _ in out]
    assert len(ids) == len(set(ids)) <= n
    assert not set(ids) & set(excluded.tolist())
    assert [s for _, s, _ in out] == sorted((s for _, s, _ in out), reverse=True)
    assert all(reason in {("trending",), ("because", 0)} for _, _, reason in out)


def test_no_history_is_pure_trending():
    rng = np.random.default_rng(1)
    items = rng.normal(size=(50, FACTORS)).astype(np.float32)
    users = rng.normal(size=(3, FACTORS)).astype(np.float32)
    trend = rng.uniform(0, 100, 50)
    exclude = csr_matrix((3, 50), dtype=np.float32)
    params = BlendParams(trending_k=50, personal_k=10, personal_weight=3.0)
    ids, _, lifted = ranking.blend(
        users, [0, 0, 0], items, np.ones(50, bool), trend, exclude, 10, params
    )
    expected = np.argsort(-trend)[:10]
    assert (ids == expected).all() and not lifted.any()
    out = ranking.trending_for_you(None, 0, items, np.ones(50, bool), trend, [], 10, params)
    assert [i for i, _, _ in out] == expected.tolist()
    assert {r for _, _, r in out} == {("trending",)}


def test_history_lifts_a_personal_match_over_slightly_more_trending_papers():
    items = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]], np.float32)
    trend = np.array([10.0, 11.0, 12.0, 0.0])
    user = np.array([[3.0, 0, 0]], np.float32)
    params = BlendParams(trending_k=3, personal_k=1, personal_weight=2.0, history_half=1.0)
    ids, _, lifted = ranking.blend(user, [20], items, np.ones(4, bool), trend, None, 3, params)
    assert ids[0, 0] == 0 and lifted[0, 0]
    out = ranking.trending_for_you(
        user[0], 20, items, np.ones(4, bool), trend, [], 3, params, explain=lambda item: 7
    )
    assert out[0][0] == 0 and out[0][2] == ("because", 7)
    assert out[1][2] == ("trending",)


def test_fresh_item_without_factors_is_neutral_not_penalised():
    items = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)
    has_factor = np.array([True, True, False])
    user = np.array([[-1.0, 0, 0]], np.float32)  # dislikes paper 0
    trend = np.array([5.0, 5.0, 5.0])
    ids, _, _ = ranking.blend(user, [10], items, has_factor, trend, None, 3, BlendParams())
    assert ids[0].tolist() == [1, 2, 0]


def test_top_n_pads_and_breaks_ties_by_index():
    scores = np.array([[1, 3, 3, -np.inf], [-np.inf] * 4], np.float32)
    ids, values = ranking.top_n(scores, 5)
    assert ids.tolist() == [[1, 2, 0, -1, -1], [-1] * 5]
    assert values[0, :3].tolist() == [3, 3, 1]


def _top_n_by_full_sort(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """top_n's contract the slow way: every row sorted whole (score down, column up)."""
    ids = np.full((len(scores), n), -1)
    values = np.full((len(scores), n), -np.inf, scores.dtype)
    for r, row in enumerate(scores):
        order = np.lexsort((np.arange(len(row)), -row))
        order = order[np.isfinite(row[order])][:n]
        ids[r, : len(order)], values[r, : len(order)] = order, row[order]
    return ids, values


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 300),
    st.integers(1, 25),
    st.sampled_from([1, 2, 3, 5]),
    st.integers(0, 2**32 - 1),
    st.floats(0, 1),
)
def test_top_n_is_a_full_sort_of_each_row(q, width, n, block, seed, dropped):
    """Blocked or not, top_n answers what sorting every row would: the same scores and the same
    columns, ties by column (at the n-th place too), -inf never."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(-4, 4, (q, width)).astype(np.float32)  # many ties
    if seed % 2:
        scores = rng.standard_normal((q, width)).astype(np.float32)
    scores[rng.random((q, width)) < dropped] = -np.inf
    ids, values = ranking.top_n(scores, n, block=block)
    want_ids, want_values = _top_n_by_full_sort(scores, n)
    assert np.array_equal(values, want_values)
    assert np.array_equal(ids, want_ids)
    found = ids >= 0
    assert np.array_equal(np.take_along_axis(scores, ids.clip(0), axis=1)[found], values[found])


def test_top_n_takes_the_first_columns_of_a_tie_that_fills_most_of_a_row():
    """A row of zeros with a few positive scores (a co-reading lift off the live papers): the
    positives first, then the zeros from the first column on, wide or narrow."""
    scores = np.zeros((3, 1000), np.float32)
    scores[0, [5, 700, 2]] = [1.0, 3.0, 2.0]
    scores[1, 0] = -1.0
    scores[2] = -np.inf
    for block in (1, 4, 1000):  # the last: narrow (fewer than 4n blocks)
        ids, values = ranking.top_n(scores, 6, block=block)
        assert ids.tolist() == [[700, 2, 5, 0, 1, 3], [1, 2, 3, 4, 5, 6], [-1] * 6]
        assert values[0].tolist() == [3, 2, 1, 0, 0, 0]


def test_top_n_blocked_keeps_float64_scores():
    tiny = np.array([[3e-60, 0.0, 1e-60, 2e-60] * 8])
    ids, values = ranking.top_n(tiny, 3, block=2)
    assert ids.tolist() == [[0, 4, 8]] and values.dtype == np.float64 and values[0, 0] == 3e-60


def test_rank_trending_orders_vanishing_scores_and_returns_nothing_when_nobody_read():
    # a 3-minute half-life after a 7-hour gap in the log: scores far below float32's range
    tiny = np.array([3e-60, 0.0, 1e-60, 2e-60])
    ids, _ = ranking.rank_trending(tiny, csr_matrix((2, 4)), 3)
    assert ids.tolist() == [[0, 3, 2]] * 2
    ids, values = ranking.rank_trending(np.zeros(4), csr_matrix((2, 4)), 3)
    assert (ids == -1).all() and ids.shape == (2, 3) and np.isneginf(values).all()


def test_rank_trending_excludes_per_user_and_skips_unread():
    trend = np.array([0.0, 5, 4, 3, 2])
    exclude = csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]], np.float32))
    ids, _ = ranking.rank_trending(trend, exclude, 5)
    assert ids.tolist() == [[2, 3, 4, -1, -1], [1, 2, 3, 4, -1]]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 120),
    st.integers(1, 30),
    st.integers(0, 2**32 - 1),
    st.floats(0, 1),
)
def test_rank_trending_is_each_users_sorted_trending_minus_their_exclusions(
    q, width, n, seed, excluded
):
    """Against sorting every user's row whole: the same papers in the same order (ties by
    paper), never an excluded one (explicit zeros in the matrix exclude nothing) or an unread
    one."""
    rng = np.random.default_rng(seed)
    trend = rng.integers(0, 4, width).astype(np.float64)  # many ties, and unread papers (0)
    if seed % 2:
        trend *= rng.random(width)
    mask = rng.random((q, width)) < excluded
    data = np.where(rng.random((q, width)) < 0.1, 0.0, 1.0)  # some explicit zeros
    rows, cols = np.nonzero(mask)
    exclude = csr_matrix((data[rows, cols], (rows, cols)), shape=(q, width))
    ids, values = ranking.rank_trending(trend, exclude, n)
    dense = np.where(trend > 0, trend, -np.inf)[None, :].repeat(q, axis=0)
    dense[exclude.toarray() != 0] = -np.inf
    want_ids, want_values = _top_n_by_full_sort(dense, n)
    assert np.array_equal(ids, want_ids)
    assert np.array_equal(values, want_values.astype(np.float32))


def test_rank_personal_skips_papers_without_factors_and_exclusions():
    items = np.array([[1.0], [2.0], [3.0]], np.float32)
    ids, _ = ranking.rank_personal(
        np.array([[1.0]], np.float32),
        items,
        np.array([True, True, False]),
        csr_matrix(np.array([[1, 0, 0]], np.float32)),
        3,
    )
    assert ids.tolist() == [[1, -1, -1]]


def test_personal_weight_grows_with_history():
    w = ranking.personal_weights([0, 1, 5, 100], BlendParams(personal_weight=2, history_half=5))
    assert w[0] == 0 and np.all(np.diff(w) > 0) and w[-1] < 2


@given(
    st.lists(st.integers(-5, 60), max_size=40),
    st.lists(st.integers(-5, 60), max_size=20),
)
def test_member_is_isin_against_a_sorted_set(values, members):
    values = np.array(values, dtype=np.int64)
    sorted_set = np.unique(np.array(members, dtype=np.int64))
    assert np.array_equal(ranking.member(values, sorted_set), np.isin(values, sorted_set))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 3000),
    st.integers(0, 400),
    st.integers(0, 2**32 - 1),
    st.floats(0, 1),
)
def test_at_least_top_holds_the_k_best_and_their_ties(n, k, seed, dropped):
    """Every score at or above the k-th highest is returned (ties at the k-th place too), in
    ascending places, each once; at least min(k, n) places."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(-20, 20, n).astype(np.float32)  # many ties
    if seed % 2:
        scores = rng.standard_normal(n).astype(np.float32)
    scores[rng.random(n) < dropped] = -np.inf
    places = ranking.at_least_top(scores, k)
    assert places.dtype == np.int64 and np.all(np.diff(places) > 0)
    assert len(places) >= min(k, n)
    if k > 0:
        kth = np.sort(scores)[::-1][min(k, n) - 1]
        assert set(np.flatnonzero(scores >= kth).tolist()) <= set(places.tolist())
    else:
        assert len(places) == 0
