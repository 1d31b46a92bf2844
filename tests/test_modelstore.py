"""Model versions in Redis: atomic publishing, rollback, pruning, the array codec."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from recommender import modelstore
from recommender.keys import Keys
from recommender.modelstore import StoredModel

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


def model(fill: float, n_users: int = 300, n_items: int = 200, factors: int = 8) -> StoredModel:
    """A model whose every factor equals ``fill``: a torn read would mix two fills."""
    return StoredModel.from_ids(
        [f"user-{i}" for i in range(n_users)],
        [f"arxiv:{i}" for i in range(n_items)],
        np.full((n_users, factors), fill, np.float32),
        np.full((n_items, factors), fill, np.float32),
        meta={"fill": fill, "metrics": {"recall@20": fill}},
    )


def test_array_codec_round_trip_in_chunks(redis_client: Any, keys: Keys) -> None:
    arrays = {
        "f": np.arange(10_000, dtype=np.float32).reshape(100, 100),
        "ids": np.array([b"a", b"bb", b"ccc"]),
        "empty": np.array([], dtype=np.int64),
    }
    modelstore.write_arrays(redis_client, keys.model("x"), arrays, chunk_bytes=1000)
    back = modelstore.read_arrays(redis_client, keys.model("x"))
    for name, array in arrays.items():
        np.testing.assert_array_equal(back[name], array)
        assert back[name].dtype == array.dtype
    with pytest.raises(ValueError):
        modelstore.write_arrays(redis_client, keys.model("y"), {"o": np.array([object()])})


def test_store_activate_rollback_and_list(redis_client: Any, keys: Keys) -> None:
    assert modelstore.load_active(redis_client, keys) is None
    first = modelstore.store(redis_client, keys, model(1.0), activate=True, keep=5, now=1000)
    second = modelstore.store(redis_client, keys, model(2.0), activate=False, keep=5, now=2000)
    assert modelstore.active_version(redis_client, keys) == first
    listed = modelstore.list_versions(redis_client, keys)
    assert [v["version"] for v in listed] == [second, first]
    assert [v["active"] for v in listed] == [False, True]
    assert listed[0]["metrics"] == {"recall@20": 2.0}

    modelstore.activate(redis_client, keys, second)
    loaded = modelstore.load_active(redis_client, keys)
    assert loaded.version == second and loaded.meta["fill"] == 2.0
    modelstore.activate(redis_client, keys, first)  # rollback
    assert modelstore.load_active(redis_client, keys).version == first
    with pytest.raises(modelstore.ModelNotFound):
        modelstore.activate(redis_client, keys, "no-such-version")


def test_prune_keeps_newest_and_the_active_one(redis_client: Any, keys: Keys) -> None:
    first = modelstore.store(redis_client, keys, model(1.0), activate=True, keep=2, now=1000)
    versions = [
        modelstore.store(redis_client, keys, model(f), activate=False, keep=2, now=1000 + f)
        for f in (2.0, 3.0, 4.0)
    ]
    kept = [v["version"] for v in modelstore.list_versions(redis_client, keys)]
    assert kept == [versions[2], versions[1], first]
    assert not redis_client.exists(keys.model(versions[0]))


def test_user_lookup_by_id(redis_client: Any, keys: Keys) -> None:
    m = StoredModel.from_ids(
        ["b", "a", "c"], ["p2", "p1"], np.eye(3, dtype=np.float32), np.eye(2, dtype=np.float32)
    )
    assert m.user_row("a") == 0 and m.user_row("c") == 2 and m.user_row("zz") is None
    np.testing.assert_array_equal(m.user_factors[m.user_row("b")], [1, 0, 0])
    np.testing.assert_array_equal(m.item_rows(["p1", "p9", "p2"]), [0, -1, 1])


def test_readers_never_see_half_a_model(redis_client: Any, keys: Keys) -> None:
    modelstore.store(redis_client, keys, model(0.0), activate=True, keep=3, now=1000)
    errors: list[BaseException] = []
    seen: set[float] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                m = modelstore.load_active(redis_client, keys)
                fill = m.meta["fill"]
                assert (m.user_factors == fill).all() and (m.item_factors == fill).all()
                assert m.user_factors.shape == (300, 8)
                seen.add(fill)
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 15):
            modelstore.store(
                redis_client, keys, model(float(i)), activate=True, keep=3, now=1000 + i
            )
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors[0]
    assert len(seen) > 1


def numbered(n_users: int = 50, factors: int = 8) -> StoredModel:
    """Every factor distinct and non-zero, so a write to the wrong bytes shows."""
    return StoredModel.from_ids(
        [f"user-{i:03d}" for i in range(n_users)],
        ["arxiv:1", "arxiv:2"],
        np.arange(1, n_users * factors + 1, dtype=np.float32).reshape(n_users, factors),
        np.ones((2, factors), np.float32),
        meta={"params": {"factors": factors}},
    )


@pytest.mark.parametrize("chunk_bytes", [40, 100, 4096])
def test_erasure_zeroes_the_users_row_in_every_version(
    redis_client: Any, keys: Keys, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    # small chunks: rows of 32 bytes straddle chunk boundaries, and the .npy header spans several
    monkeypatch.setattr(modelstore, "CHUNK_BYTES", chunk_bytes)
    original = numbered()
    first = modelstore.store(redis_client, keys, original, activate=True, keep=5, now=1000)
    second = modelstore.store(redis_client, keys, original, activate=False, keep=5, now=2000)
    other = StoredModel.from_ids(
        ["someone-else"],
        ["arxiv:1"],
        np.ones((1, 8), np.float32),
        np.ones((1, 8), np.float32),
        meta={"params": {"factors": 8}},
    )
    third = modelstore.store(redis_client, keys, other, activate=False, keep=5, now=3000)

    assert modelstore.forget_user(redis_client, keys, "user-007") == 2
    assert modelstore.forget_user(redis_client, keys, "user-049") == 2  # the last row
    assert modelstore.forget_user(redis_client, keys, "nobody") == 0

    row7, row49 = original.user_row("user-007"), original.user_row("user-049")
    for version in (first, second):
        loaded = modelstore.load(redis_client, keys, version)
        expected = original.user_factors.copy()
        expected[[row7, row49]] = 0.0
        np.testing.assert_array_equal(loaded.user_factors, expected)
        np.testing.assert_array_equal(loaded.user_ids, original.user_ids)
        np.testing.assert_array_equal(loaded.item_factors, original.item_factors)
    np.testing.assert_array_equal(modelstore.load(redis_client, keys, third).user_factors, 1.0)


def test_zeroing_rows_of_a_pruned_version_reports_it(redis_client: Any, keys: Keys) -> None:
    assert not modelstore.zero_user_rows(redis_client, keys, "gone", [0], 1)
