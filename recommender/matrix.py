"""The user x paper confidence matrix that ALS learns from, built from raw event arrays.

Pure numpy/scipy: event arrays in, one ``csr_matrix`` out, built with a single ``coo -> csr``
conversion (duplicate ``(user, paper)`` entries are summed by scipy). The rules:

- each event weighs by its kind (``open``, ``click``; a ``dismiss`` weighs nothing),
- older interactions count less: an event of age ``a`` at ``now`` is multiplied by
  ``2 ** (-a / half_life)``,
- repeated interest has diminishing returns: the cell is ``log1p`` of its summed weights,
- any ``(user, paper)`` pair the user dismissed is excluded (left empty), whatever else they did.

String ids become dense codes with :func:`encode_ids`; :func:`lookup_ids` maps ids onto an
existing vocabulary (``-1`` where absent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import coo_matrix, csr_matrix

OPEN, CLICK, DISMISS = 0, 1, 2
KIND_CODES = {"open": OPEN, "click": CLICK, "dismiss": DISMISS}


@dataclass(frozen=True)
class ConfidenceParams:
    """How events become confidences.

    Attributes
    ----------
    open_weight, click_weight : float
        Weight of one ``open`` / ``click`` event before decay.
    interaction_half_life_days : float
        Age at which an event counts half; ``inf`` (or any value <= 0) disables the decay.
    """

    open_weight: float = 1.0
    click_weight: float = 2.0
    interaction_half_life_days: float = 14.0

    def __post_init__(self) -> None:
        if self.open_weight < 0 or self.click_weight < 0:
            raise ValueError("event weights must be >= 0")


def encode_ids(ids: ArrayLike) -> tuple[NDArray, NDArray[np.int32]]:
    """Dense integer codes for string (or any sortable) ids.

    Parameters
    ----------
    ids : array_like (n,)
        Ids, with repeats.

    Returns
    -------
    vocabulary : ndarray (n_unique,)
        The sorted distinct ids; ``vocabulary[codes] == ids``.
    codes : ndarray of int32 (n,)
        Index of each id in ``vocabulary``.
    """
    ids = np.asarray(ids).reshape(-1)
    top = int(ids.max()) if ids.dtype.kind in "iu" and len(ids) else -1
    if top >= 0 and top < 4 * len(ids) + 2**20 and ids.min() >= 0:
        # codes already (the compaction's): a table over their range instead of a sort
        present = np.zeros(top + 1, dtype=bool)
        present[ids] = True
        code_of = (np.cumsum(present, dtype=np.int64) - 1).astype(np.int32)
        return np.flatnonzero(present).astype(ids.dtype), code_of[ids]
    vocabulary, codes = np.unique(ids, return_inverse=True)
    return vocabulary, codes.astype(np.int32, copy=False).reshape(-1)


def lookup_ids(vocabulary: NDArray, ids: ArrayLike) -> NDArray[np.int64]:
    """Codes of ``ids`` in a sorted ``vocabulary`` (from :func:`encode_ids`), ``-1`` if absent.

    Parameters
    ----------
    vocabulary : ndarray (n_vocabulary,)
        Sorted distinct ids.
    ids : array_like (n,)
        Ids to look up.

    Returns
    -------
    ndarray of int64 (n,)
    """
    ids = np.asarray(ids)
    if len(vocabulary) == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.searchsorted(vocabulary, ids).clip(0, len(vocabulary) - 1)
    return np.where(vocabulary[pos] == ids, pos, -1).astype(np.int64)


def event_weights(
    kind: ArrayLike, ts: ArrayLike, now: float, params: ConfidenceParams
) -> NDArray[np.float64]:
    """The decayed weight of each event (dismissals weigh 0).

    Parameters
    ----------
    kind : array_like of int (n,)
        ``0`` open, ``1`` click, ``2`` dismiss.
    ts : array_like of float (n,)
        Event times, Unix seconds.
    now : float
        The time at which the weights are taken; events after ``now`` count as of age 0.
    params : ConfidenceParams

    Returns
    -------
    ndarray of float64 (n,)
    """
    kind = np.asarray(kind)
    by_kind = np.array([params.open_weight, params.click_weight, 0.0])
    weights = by_kind[kind]
    half_life = params.interaction_half_life_days
    if np.isfinite(half_life) and half_life > 0:
        age = np.maximum(now - np.asarray(ts, dtype=np.float64), 0.0)
        weights = weights * np.exp2(-age / (half_life * 86400.0))
    return weights


def build_confidence(
    user_idx: ArrayLike,
    item_idx: ArrayLike,
    kind: ArrayLike,
    ts: ArrayLike,
    n_users: int,
    n_items: int,
    now: float,
    params: ConfidenceParams,
) -> csr_matrix:
    """The user x paper confidence matrix.

    Parameters
    ----------
    user_idx, item_idx : array_like of int (n,)
        Dense user and paper codes of each event.
    kind : array_like of int8 (n,)
        ``0`` open, ``1`` click, ``2`` dismiss.
    ts : array_like of float64 (n,)
        Event times, Unix seconds.
    n_users, n_items : int
        Shape of the result.
    now : float
        Time the decay is measured from.
    params : ConfidenceParams

    Returns
    -------
    csr_matrix of float32 (n_users, n_items)
        ``log1p`` of the summed decayed weights; dismissed pairs and pairs whose weight is zero
        (in float32) are not stored. Indices are sorted.

    Raises
    ------
    ValueError
        On arrays of different lengths, codes out of range or an unknown kind.
    """
    user_idx = np.asarray(user_idx, dtype=np.int64).reshape(-1)
    item_idx = np.asarray(item_idx, dtype=np.int64).reshape(-1)
    kind = np.asarray(kind, dtype=np.int64).reshape(-1)
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    n = len(user_idx)
    if not (len(item_idx) == len(kind) == len(ts) == n):
        raise ValueError("user_idx, item_idx, kind and ts must have the same length")
    if n and (user_idx.min() < 0 or user_idx.max() >= n_users):
        raise ValueError(f"user codes must lie in [0, {n_users})")
    if n and (item_idx.min() < 0 or item_idx.max() >= n_items):
        raise ValueError(f"item codes must lie in [0, {n_items})")
    if n and (kind.min() < 0 or kind.max() > DISMISS):
        raise ValueError("kind must be 0 (open), 1 (click) or 2 (dismiss)")

    weights = event_weights(kind, ts, now, params)
    dismissed = kind == DISMISS
    if dismissed.any():
        pair = user_idx * n_items + item_idx
        weights[np.isin(pair, pair[dismissed])] = 0.0
    keep = weights > 0
    matrix = coo_matrix(
        (weights[keep], (user_idx[keep], item_idx[keep])), shape=(n_users, n_items)
    ).tocsr()
    matrix.sum_duplicates()
    matrix.data = np.log1p(matrix.data)
    matrix = matrix.astype(np.float32)
    matrix.eliminate_zeros()  # events decayed below float32's range are forgotten
    return matrix
