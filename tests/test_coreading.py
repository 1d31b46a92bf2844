"""Co-reading ("readers like you"): the pure core, by hand and by property (no Redis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse import csr_matrix

from recommender import coreading, ranking
from recommender.ranking import BlendParams


def test_counts_are_the_readers_recent_reads_and_shares_sum_to_one() -> None:
    # readers 0 and 1 read paper 0 long ago; reader 2 read paper 1. Live papers: 2 and 3.
    history = csr_matrix(np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1]], np.float32))
    recent = csr_matrix(np.array([[1.0, 0.0], [0.0, 0.5], [0.0, 0.25]]))
    table = coreading.build(history, recent)
    assert table.counts.shape == (4, 2)
    np.testing.assert_allclose(
        table.counts.toarray(), [[1.0, 0.5], [0.0, 0.25], [1.0, 0.0], [0.0, 0.75]]
    )
    np.testing.assert_allclose(table.share, [1 / 1.75, 0.75 / 1.75])


def test_build_refuses_mismatched_readers() -> None:
    with pytest.raises(ValueError, match="one row per reader"):
        coreading.build(csr_matrix((2, 3)), csr_matrix((3, 1)))


def test_a_paper_everybody_reads_lifts_nothing() -> None:
    rng = np.random.default_rng(0)
    recent = csr_matrix(rng.random((40, 6)) * (rng.random((40, 6)) < 0.5))
    history = np.zeros((40, 3), np.float32)
    history[:, 0] = 1  # everybody read paper 0
    history[:20, 1] = 1  # half read paper 1
    table = coreading.build(csr_matrix(history), recent)
    everybody = coreading.user_lift(table, csr_matrix([[1, 0, 0]]), kappa=5.0, norm=0.5)[0]
    np.testing.assert_allclose(everybody, 0.0, atol=1e-6)  # its readers read what all read
    half = coreading.user_lift(table, csr_matrix([[0, 1, 0]]), kappa=5.0, norm=0.5)[0]
    assert not np.allclose(half, half[0])


def test_a_niche_papers_readers_lift_what_they_read_now() -> None:
    # 30 readers: the 5 who read paper "niche" are all reading live paper 0 now; the crowd
    # (25) reads live paper 1 and a few read live paper 0.
    history = np.zeros((30, 2), np.float32)
    history[:5, 0] = 1  # niche
    history[:, 1] = 1  # the front page: everybody
    recent = np.zeros((30, 2))
    recent[:5, 0] = 1.0
    recent[5:, 1] = 1.0
    recent[5:8, 0] = 1.0
    table = coreading.build(csr_matrix(history), csr_matrix(recent))
    lift = coreading.user_lift(table, csr_matrix([[1, 0]]), kappa=1.0, norm=0.5)[0]
    assert lift[0] > 0 > lift[1]  # what its readers read now, and what they do not
    lift, because = coreading.one_user(table, np.array([0, 1]), 2, kappa=1.0, norm=0.5)
    assert lift[0] > 0 > lift[1]
    assert because.tolist() == [0, -1]  # the niche paper behind 0; nothing lifts 1


@st.composite
def tables(draw):
    readers = draw(st.integers(1, 12))
    n_items = draw(st.integers(1, 10))
    m = draw(st.integers(1, 6))
    history = draw(arrays(np.bool_, (readers, n_items)))
    recent = draw(arrays(np.float64, (readers, m), elements=st.floats(0, 1)))
    users = draw(arrays(np.bool_, (draw(st.integers(1, 4)), n_items)))
    kappa = draw(st.floats(0.01, 100))
    norm = draw(st.floats(0, 1))
    return csr_matrix(history), csr_matrix(recent), csr_matrix(users), kappa, norm


@given(tables())
@settings(max_examples=150, deadline=None)
def test_the_batch_and_one_user_forms_agree_and_name_the_strongest_paper(case) -> None:
    history, recent, users, kappa, norm = case
    table = coreading.build(history, recent)
    assert (table.counts.data > 0).all()
    if recent.sum() > 0:
        assert table.share.sum() == pytest.approx(1.0)
    batch = coreading.user_lift(table, users, kappa, norm)
    assert batch.shape == (users.shape[0], recent.shape[1])
    assert np.isfinite(batch).all()
    for row in range(users.shape[0]):
        papers = users[row].indices
        if len(papers) == 0:
            assert not batch[row].any()
        lift, because = coreading.one_user(table, papers, len(papers), kappa, norm)
        np.testing.assert_allclose(lift, batch[row], rtol=1e-5, atol=1e-6)
        terms = table.terms(papers, kappa) if len(papers) else None
        if terms is not None:  # the gather from the CSR arrays is the scipy form, row by row
            sub = table.counts[papers[::-1]]
            slow = table.lift(sub, kappa).toarray() + table.offset(sub, kappa)[:, None]
            np.testing.assert_allclose(table.terms(papers[::-1], kappa), slow, rtol=1e-6, atol=1e-6)
        for col in range(recent.shape[1]):
            if because[col] < 0:
                assert terms is None or terms[:, col].max() <= 0
            else:
                assert because[col] in papers.tolist()
                top = terms[papers.tolist().index(because[col]), col]
                assert top == pytest.approx(terms[:, col].max())


def test_history_matrix_keeps_each_readers_latest_papers() -> None:
    row = np.array([0, 0, 0, 0, 1, 1])
    item = np.array([5, 6, 7, 5, 6, 6])
    ts = np.array([10.0, 20.0, 30.0, 40.0, 1.0, 2.0])
    out = coreading.history_matrix(row, item, ts, 2, 8, max_per_row=2).toarray()
    assert np.flatnonzero(out[0]).tolist() == [5, 7]  # 5 re-read at 40, 7 at 30; 6 dropped
    assert np.flatnonzero(out[1]).tolist() == [6]
    assert set(np.unique(out)) <= {0.0, 1.0}


def test_recent_matrix_keeps_live_papers_inside_the_window() -> None:
    now, half = 1000.0, 10.0
    user = np.array([3, 3, 9, 9, 9])
    item = np.array([7, 8, 7, 2, 7])
    ts = np.array([now, now - 10, now - 90, now - 5, now + 1])  # 90 s = 9 half-lives: out
    readers, recent = coreading.recent_matrix(user, item, ts, np.array([8, 7]), now, half)
    assert readers.tolist() == [3]
    np.testing.assert_allclose(recent.toarray(), [[0.5, 1.0]])
    none, empty = coreading.recent_matrix(user, item, ts, np.array([], np.int64), now, half)
    assert len(none) == 0 and empty.nnz == 0


def test_the_blend_lifts_a_communitys_paper_over_a_more_trending_one() -> None:
    # papers 0-1 live (1 more trending); the readers of paper 2 (the user's) read 0 now
    history = csr_matrix(np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0]], np.float32))
    recent = csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    table = coreading.build(history, recent)
    lift = np.zeros(3, np.float32)
    lift[:2] = coreading.user_lift(table, csr_matrix([[0, 0, 1]]), kappa=1.0, norm=0.5)[0]
    trend = np.array([2.0, 2.5, 0.0])
    items, has = np.zeros((3, 2), np.float32), np.zeros(3, bool)
    plain = ranking.trending_for_you(None, 0, items, has, trend, [2], 2, BlendParams())
    mine = ranking.trending_for_you(
        None, 0, items, has, trend, [2], 2, BlendParams(coread_weight=1.0), coread=lift
    )
    assert [i for i, _, _ in plain] == [1, 0]
    assert [i for i, _, _ in mine] == [0, 1]
