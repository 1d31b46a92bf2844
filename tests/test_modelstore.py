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
