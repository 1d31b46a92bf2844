"""Properties of the confidence matrix and the id helpers (pure core, no Redis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.matrix import (
    CLICK,
    DISMISS,
    OPEN,
    ConfidenceParams,
    build_confidence,
    encode_ids,
    event_weights,
    lookup_ids,
)

N_USERS, N_ITEMS, NOW = 5, 7, 1_000_000.0


@st.composite
def event_arrays(draw):
    n = draw(st.integers(0, 40))
    ints = st.integers
    users = np.array(draw(st.lists(ints(0, N_USERS - 1), min_size=n, max_size=n)), np.int32)
    items = np.array(draw(st.lists(ints(0, N_ITEMS - 1), min_size=n, max_size=n)), np.int32)
    kinds = np.array(draw(st.lists(ints(0, 2), min_size=n, max_size=n)), np.int8)
    ages = draw(st.lists(st.floats(0, 90 * 86400.0), min_size=n, max_size=n))
    return users, items, kinds, NOW - np.array(ages, np.float64)


@given(event_arrays(), st.floats(0.5, 60.0))
@settings(max_examples=60, deadline=None)
def test_shape_sign_and_dismissals(events, half_life):
    users, items, kinds, ts = events
    params = ConfidenceParams(interaction_half_life_days=half_life)
    m = build_confidence(users, items, kinds, ts, N_USERS, N_ITEMS, NOW, params)
    assert m.shape == (N_USERS, N_ITEMS)
    assert m.dtype == np.float32
    assert (m.data > 0).all()
    dense = m.toarray()
    for u, i in zip(users[kinds == DISMISS], items[kinds == DISMISS], strict=True):
        assert dense[u, i] == 0
    # Exactly the pairs with a read and no dismissal are stored.
    read = {(u, i) for u, i, k in zip(users, items, kinds, strict=True) if k != DISMISS}
    dismissed = {(u, i) for u, i, k in zip(users, items, kinds, strict=True) if k == DISMISS}
    stored = set(zip(*m.nonzero(), strict=True))
    assert {(int(u), int(i)) for u, i in stored} == {
        (int(u), int(i)) for u, i in read - dismissed if dense[u, i] > 0
    }


@given(st.floats(0, 400 * 86400.0), st.floats(0, 400 * 86400.0), st.floats(0.1, 100.0))
def test_decay_is_monotone_in_age(age_a, age_b, half_life):
    params = ConfidenceParams(interaction_half_life_days=half_life)
    w = event_weights([OPEN, OPEN], [NOW - age_a, NOW - age_b], NOW, params)
    if age_a <= age_b:
        assert w[0] >= w[1]
    else:
        assert w[0] <= w[1]
    assert ((w >= 0) & (w <= 1)).all()


def test_half_life_halves_and_clicks_weigh_more():
    params = ConfidenceParams(open_weight=1.0, click_weight=3.0, interaction_half_life_days=2)
    w = event_weights([OPEN, OPEN, CLICK, DISMISS], [NOW, NOW - 2 * 86400, NOW, NOW], NOW, params)
    np.testing.assert_allclose(w, [1.0, 0.5, 3.0, 0.0])


def test_repeats_have_diminishing_returns():
    params = ConfidenceParams(interaction_half_life_days=float("inf"))
    m = build_confidence([0, 0, 0, 1], [0, 0, 0, 0], [OPEN] * 4, [NOW] * 4, 2, 1, NOW, params)
    np.testing.assert_allclose(m.toarray().ravel(), [np.log1p(3), np.log1p(1)], rtol=1e-6)


def test_dismissal_wins_over_any_number_of_opens():
    params = ConfidenceParams()
    m = build_confidence(
        [0, 0, 0], [1, 1, 2], [OPEN, DISMISS, CLICK], [NOW - 5, NOW, NOW], 1, 3, NOW, params
    )
    assert m[0, 1] == 0 and m[0, 2] > 0


def test_bad_input_is_rejected_precisely():
    params = ConfidenceParams()
    with pytest.raises(ValueError, match="same length"):
        build_confidence([0], [0, 1], [0], [0.0], 1, 2, NOW, params)
    with pytest.raises(ValueError, match="item codes"):
        build_confidence([0], [5], [0], [0.0], 1, 2, NOW, params)
    with pytest.raises(ValueError, match="kind"):
        build_confidence([0], [0], [7], [0.0], 1, 2, NOW, params)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3000), max_size=200), st.sampled_from([np.int32, np.int64]))
def test_encode_ids_of_integer_codes_is_np_unique(values, dtype):
    """Integer ids (the compaction's codes) take a table, not a sort; the answer is unique's."""
    ids = np.array(values, dtype=dtype)
    vocab, codes = encode_ids(ids)
    want_vocab, want_codes = np.unique(ids, return_inverse=True)
    assert np.array_equal(vocab, want_vocab) and vocab.dtype == want_vocab.dtype
    assert np.array_equal(codes, want_codes.reshape(-1)) and codes.dtype == np.int32
    sparse = np.array([5, 10**9, 5])  # too wide a range for a table: the sort
    vocab, codes = encode_ids(sparse)
    assert vocab.tolist() == [5, 10**9] and codes.tolist() == [0, 1, 0]


def test_encode_and_lookup_round_trip():
    vocab, codes = encode_ids(["b", "a", "c", "a"])
    assert vocab.tolist() == ["a", "b", "c"] and codes.tolist() == [1, 0, 2, 0]
    assert codes.dtype == np.int32
    assert lookup_ids(vocab, ["c", "zz", "a"]).tolist() == [2, -1, 0]
    assert lookup_ids(vocab[:0], ["a"]).tolist() == [-1]
