"""ALS training, fold-in and explanations on a two-community data set with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from recommender import als, ranking
from recommender.matrix import lookup_ids

NOW = 1_700_000_000.0
PARAMS = als.TrainParams(factors=2, iterations=15, regularization=1.0, alpha=5.0, seed=7)


def communities(n_users: int = 40, per_user: int = 6, seed: int = 0):
    """Users ``a*`` read only papers ``A*``, users ``b*`` only papers ``B*`` (10 each)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        side = "ab"[u % 2]
        for i in rng.choice(10, per_user, replace=False):
            users.append(f"{side}{u:02d}")
            items.append(f"{side.upper()}{i}")
    n = len(users)
    ts = NOW - rng.uniform(0, 5 * 86400, n)
    return np.array(users), np.array(items), np.zeros(n, np.int8), ts


@pytest.fixture(scope="module")
def model() -> als.Model:
    return als.train(*communities(), NOW, PARAMS)


def community_of(ids: np.ndarray) -> set[str]:
    return {str(i)[0].lower() for i in ids}


def test_model_shapes_and_metadata(model):
    assert model.user_factors.shape == (40, 2) and model.item_factors.shape == (20, 2)
    assert model.user_factors.dtype == np.float32 and model.item_factors.dtype == np.float32
    assert list(model.item_ids) == sorted(model.item_ids)
    assert model.trained_at == NOW and model.params["factors"] == 2
    assert model.item_readers.sum() == 40 * 6
    assert als.TrainParams(**model.params) == PARAMS


def test_each_user_is_recommended_their_own_community(model):
    users, items, _, _ = communities()
    seen = csr_matrix(
        (
            np.ones(len(users)),
            (lookup_ids(model.user_ids, users), lookup_ids(model.item_ids, items)),
        ),
        shape=(40, 20),
    )
    ids, _ = ranking.rank_personal(
        model.user_factors, model.item_factors, np.ones(20, bool), seen, 4
    )
    for user, row in zip(model.user_ids, ids, strict=True):
        assert community_of(model.item_ids[row]) == {user[0]}, user


def test_same_events_and_seed_give_the_same_model(model):
    again = als.train(*communities(), NOW, PARAMS)
    np.testing.assert_array_equal(again.item_factors, model.item_factors)


def test_events_at_or_after_now_are_ignored():
    users, items, kinds, ts = communities()
    later = als.train(
        np.append(users, "zz"),
        np.append(items, "Z9"),
        np.append(kinds, 0),
        np.append(ts, NOW),
        NOW,
        PARAMS,
    )
    assert "zz" not in later.user_ids and "Z9" not in later.item_ids


def test_string_kinds_and_bad_input():
    users, items, _, ts = communities()
    m = als.train(users, items, np.array(["open"] * len(users)), ts, NOW, PARAMS)
    assert m.user_factors.shape == (40, 2)
    with pytest.raises(ValueError, match="kinds"):
        als.train(users, items, np.array(["read"] * len(users)), ts, NOW, PARAMS)
    with pytest.raises(ValueError, match="no event"):
        als.train(users, items, np.zeros(len(users)), ts, ts.min(), PARAMS)


def test_progress_is_reported_per_sweep():
    calls = []
    als.train(*communities(), NOW, PARAMS, progress=lambda done, total: calls.append(done))
    assert calls == list(range(1, PARAMS.iterations + 1))


def test_fold_in_user_not_in_the_model_gets_their_community(model):
    a_papers = lookup_ids(model.item_ids, ["A1", "A2", "A3"])
    rows = csr_matrix((np.ones(3, np.float32), a_papers, [0, 3]), shape=(1, 20))
    vectors = als.fold_in_users(model, rows)
    assert vectors.shape == (1, 2)
    ids, _ = ranking.rank_personal(vectors, model.item_factors, np.ones(20, bool), rows, 5)
    assert community_of(model.item_ids[ids[0]]) == {"a"}
    empty = als.fold_in_users(model, csr_matrix((2, 20), dtype=np.float32))
    assert not empty.any()
    with pytest.raises(ValueError, match="columns"):
        als.fold_in_users(model, csr_matrix((1, 3)))


def test_fold_in_fresh_paper_read_by_one_community(model):
    readers = lookup_ids(model.user_ids, [u for u in model.user_ids if u.startswith("b")][:6])
    cols = csr_matrix((np.ones(6, np.float32), readers, [0, 6]), shape=(1, 40))
    fresh = als.fold_in_items(model, cols)
    assert fresh.shape == (1, 2)
    scores = model.user_factors @ fresh[0]
    b_users = np.char.startswith(model.user_ids.astype(str), "b")
    assert scores[b_users].mean() > scores[~b_users].mean()
    # A "b" user who never read it now gets it among their top papers.
    extended = np.vstack([model.item_factors, fresh])
    other_b = np.flatnonzero(b_users)[-1]
    ids, _ = ranking.rank_personal(
        model.user_factors[[other_b]], extended, np.ones(21, bool), None, 11
    )
    assert 20 in ids[0]


def test_explain_names_a_history_paper_of_the_same_community(model):
    history_ids = lookup_ids(model.item_ids, ["A1", "A2", "B5"])
    row = csr_matrix((np.ones(3, np.float32), np.sort(history_ids), [0, 3]), shape=(1, 20))
    target = int(lookup_ids(model.item_ids, ["A7"])[0])
    item, contribution = als.explain(model, row, target)
    assert model.item_ids[item] in {"A1", "A2"} and contribution > 0
    assert als.explain(model, csr_matrix((1, 20), dtype=np.float32), target) is None
