"""Training the ALS model, folding new users and papers into it, and explaining its scores.

:func:`train` is the one training entry point: the nightly job and the replay evaluation both
call it, so what is evaluated is what ships. It maps string ids to dense codes, builds the
confidence matrix (:mod:`recommender.matrix`) and fits implicit's CPU
``AlternatingLeastSquares`` with BLAS pinned to one thread (implicit parallelises itself).

Between trainings, :func:`fold_in_users` gives a vector to a user who is new or read something
since, and :func:`fold_in_items` gives one to a paper first seen since training that already has
readers; both solve the same regularised least-squares problem as one ALS half-step, with the
other side's factors held fixed. :func:`explain` names the history paper that contributes most
to a score ("because you read ...").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from recommender.matrix import KIND_CODES, ConfidenceParams, build_confidence, encode_ids


@dataclass(frozen=True)
class TrainParams(ConfidenceParams):
    """Hyper-parameters of one training (the confidence rules are inherited).

    Attributes
    ----------
    factors : int
        Latent dimensions.
    regularization : float
        L2 penalty of the least-squares solves.
    alpha : float
        Scale of the confidences (``C = 1 + alpha * confidence`` in Hu, Koren & Volinsky).
    iterations : int
        ALS sweeps.
    seed : int
        ``random_state`` of the initial factors: the same events and seed give the same model.
    num_threads : int
        Threads of implicit's solver (0: all cores).
    fold_in_half_life_days : float or None
        Interaction half-life used when folding a user in between trainings (``None``: the
        training's). A short one lets the current session dominate the user's vector.
    """

    factors: int = 64
    regularization: float = 1.0
    alpha: float = 40.0
    iterations: int = 12
    seed: int = 0
    num_threads: int = 0
    fold_in_half_life_days: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.factors < 1 or self.iterations < 1:
            raise ValueError("factors and iterations must be >= 1")
        if self.regularization < 0 or self.alpha <= 0:
            raise ValueError("regularization must be >= 0 and alpha > 0")

    def fold_in_confidence(self) -> ConfidenceParams:
        """The confidence rules of user fold-in (:attr:`fold_in_half_life_days` applied)."""
        half_life = self.fold_in_half_life_days
        return ConfidenceParams(
            open_weight=self.open_weight,
            click_weight=self.click_weight,
            interaction_half_life_days=(
                self.interaction_half_life_days if half_life is None else half_life
            ),
        )

    def as_dict(self) -> dict:
        """The parameters as a plain, JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclass
class Model:
    """A trained model.

    Attributes
    ----------
    user_ids : ndarray of str (n_users,)
        Sorted user ids; row ``i`` of ``user_factors`` belongs to ``user_ids[i]``.
    item_ids : ndarray of str (n_items,)
        Sorted paper ids; row ``j`` of ``item_factors`` belongs to ``item_ids[j]``.
    user_factors : ndarray of float32 (n_users, factors)
    item_factors : ndarray of float32 (n_items, factors)
    params : dict
        The :class:`TrainParams` used, as a dict.
    trained_at : float
        The ``now`` of the training (Unix seconds): events up to it were used.
    item_readers : ndarray of int64 (n_items,)
        Distinct users with a positive confidence for each paper (popularity at training time).
    """

    user_ids: NDArray
    item_ids: NDArray
    user_factors: NDArray[np.float32]
    item_factors: NDArray[np.float32]
    params: dict
    trained_at: float
    item_readers: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def train_params(self) -> TrainParams:
        """``params`` as a :class:`TrainParams`."""
        return TrainParams(**self.params)


def _as_kinds(kinds: ArrayLike) -> NDArray[np.int8]:
    kinds = np.asarray(kinds)
    if kinds.dtype.kind not in ("U", "S", "O"):
        return kinds.astype(np.int8)
    names = kinds.astype(str)
    codes = np.full(names.shape, -1, dtype=np.int8)
    for name, code in KIND_CODES.items():  # three kinds, not one pass per event
        codes[names == name] = code
    if (codes < 0).any():
        raise ValueError(f"kinds must be one of {sorted(KIND_CODES)}")
    return codes


def _solver(params: TrainParams) -> AlternatingLeastSquares:
    return AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=params.alpha,
        iterations=params.iterations,
        random_state=params.seed,
        num_threads=params.num_threads,
        dtype=np.float32,
    )


def train(
    user_ids: ArrayLike,
    item_ids: ArrayLike,
    kinds: ArrayLike,
    ts: ArrayLike,
    now: float,
    params: TrainParams | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Model:
    """Fit ALS on every event before ``now``.

    Parameters
    ----------
    user_ids, item_ids : array_like of str (n,)
        User and paper id of each event.
    kinds : array_like (n,)
        ``0``/``1``/``2`` or ``"open"``/``"click"``/``"dismiss"``.
    ts : array_like of float (n,)
        Event times, Unix seconds; events at or after ``now`` are ignored.
    now : float
        Training time: the decay reference and ``Model.trained_at``.
    params : TrainParams, optional
        Defaults to ``TrainParams()``.
    progress : callable, optional
        Called as ``progress(iterations_done, iterations_total)`` after each ALS sweep.

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        When the arrays differ in length or hold no event before ``now``.
    """
    params = params or TrainParams()
    user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
    ts = np.asarray(ts, dtype=np.float64)
    kinds = _as_kinds(kinds)
    if not (len(user_ids) == len(item_ids) == len(kinds) == len(ts)):
        raise ValueError("user_ids, item_ids, kinds and ts must have the same length")
    before = ts < now
    if not before.any():
        raise ValueError("no event before `now` to train on")
    users, user_idx = encode_ids(user_ids[before])
    items, item_idx = encode_ids(item_ids[before])
    confidence = build_confidence(
        user_idx, item_idx, kinds[before], ts[before], len(users), len(items), now, params
    )
    callback = None
    if progress is not None:

        def callback(iteration: int, _elapsed: float, _loss: float | None) -> None:
            progress(iteration + 1, params.iterations)

    with threadpool_limits(1, "blas"):
        solver = _solver(params)
        solver.fit(confidence, show_progress=False, callback=callback)
    return Model(
        user_ids=users,
        item_ids=items,
        user_factors=np.ascontiguousarray(solver.user_factors, dtype=np.float32),
        item_factors=np.ascontiguousarray(solver.item_factors, dtype=np.float32),
        params=params.as_dict(),
        trained_at=float(now),
        item_readers=np.diff(confidence.tocsc().indptr).astype(np.int64),
    )


def _fitted_solver(
    model: Model, user_factors: NDArray, item_factors: NDArray
) -> AlternatingLeastSquares:
    # Call inside threadpool_limits(1, "blas"): implicit checks the BLAS threads on creation.
    solver = _solver(model.train_params)
    solver.user_factors = user_factors
    solver.item_factors = item_factors
    return solver


def fold_in_users(model: Model, user_item_rows: csr_matrix) -> NDArray[np.float32]:
    """User vectors for confidence rows, with the model's paper factors held fixed.

    Parameters
    ----------
    model : Model
    user_item_rows : csr_matrix (k, n_items)
        Confidence rows (as built by :func:`recommender.matrix.build_confidence`) in the model's
        paper columns.

    Returns
    -------
    ndarray of float32 (k, factors)
        An empty row gives a zero vector.
    """
    return _fold_in(model, user_item_rows, "user_item_rows", users=True)


def fold_in_items(model: Model, item_user_cols: csr_matrix) -> NDArray[np.float32]:
    """Paper vectors from their readers' confidences, with the model's user factors held fixed.

    Parameters
    ----------
    model : Model
    item_user_cols : csr_matrix (k, n_users)
        One row per new paper: the confidence of each of the model's users for it.

    Returns
    -------
    ndarray of float32 (k, factors)
        A paper none of the model's users read gets a zero vector.
    """
    return _fold_in(model, item_user_cols, "item_user_cols", users=False)


def _fold_in(model: Model, rows: csr_matrix, name: str, users: bool) -> NDArray[np.float32]:
    """One least-squares solve per row against the other side's fixed factors."""
    rows = csr_matrix(rows, dtype=np.float32)
    fixed = model.item_factors if users else model.user_factors
    if rows.shape[1] != fixed.shape[0]:
        raise ValueError(f"{name} must have {fixed.shape[0]} columns, got {rows.shape[1]}")
    if rows.shape[0] == 0:
        return np.zeros((0, fixed.shape[1]), dtype=np.float32)
    with threadpool_limits(1, "blas"):
        solver = _fitted_solver(model, model.user_factors, model.item_factors)
        recalculate = solver.recalculate_user if users else solver.recalculate_item
        vectors = recalculate(np.arange(rows.shape[0]), rows)
    return np.asarray(vectors, dtype=np.float32).reshape(rows.shape[0], -1)


def explain(model: Model, history: csr_matrix, item: int) -> tuple[int, float] | None:
    """The history paper that contributes most to a user's score of ``item``.

    Parameters
    ----------
    model : Model
    history : csr_matrix (1, n_items)
        The user's confidence row in the model's paper columns.
    item : int
        Code of the recommended paper in the model.

    Returns
    -------
    (history_item, contribution) or None
        ``None`` when the history is empty or nothing in it contributes positively.
    """
    row = csr_matrix(history, dtype=np.float32)
    if row.shape != (1, model.item_factors.shape[0]):
        raise ValueError(f"history must have shape (1, {model.item_factors.shape[0]})")
    if row.nnz == 0:
        return None
    with threadpool_limits(1, "blas"):
        solver = _fitted_solver(model, model.user_factors, model.item_factors)
        _, contributions, _ = solver.explain(0, row, int(item), N=1)
    if not contributions or contributions[0][1] <= 0:
        return None
    return int(contributions[0][0]), float(contributions[0][1])
