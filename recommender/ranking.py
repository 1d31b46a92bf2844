"""Ranking: global trending, personal ALS, and the "trending for you" blend of the two.

Pure functions over arrays, shared by the server (one user) and the replay evaluation (a batch
of users per call, one matrix product). The blend:

- **candidates**: the ``trending_k`` most trending papers (the same for everybody) together with
  the user's ``personal_k`` highest ALS scores, which includes papers folded in since training;
- **calibration**: trending momentum enters as ``log(offset + decayed readers)``, so that a
  paper read by twice as many people gains a constant amount whatever the traffic; the ALS
  affinity enters as a per-user z-score (``(a - mean) / std`` over the trending candidates that
  have factors, i.e. the papers that are live now), so that users whose vectors have different
  norms are on one scale and the score separates papers that can actually compete; papers ALS
  knows nothing about (no factors yet) get ``z = 0``, neither pushed nor held back;
- **per-user weight**: the affinity term is multiplied by
  ``personal_weight * n / (n + history_half)`` where ``n`` is the user's history size: a user
  with no history gets pure trending, a long history trusts ALS up to ``personal_weight``;
- the papers a user opened or dismissed are never returned.

Reading ``log(readers) + w * z`` as the logarithm of "popularity x personal affinity" is the
reason for the shape: a personal match can lift a moderately trending paper over a slightly
more trending one, but it cannot lift a paper nobody reads today over the front page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_matrix

NEG_INF = np.float32(-np.inf)
# top_n finds each wide row's threshold from its maxima over blocks of this many columns
TOP_N_BLOCK = 64


@dataclass(frozen=True)
class BlendParams:
    """Knobs of the "trending for you" blend.

    Attributes
    ----------
    trending_k : int
        Global trending candidates.
    personal_k : int
        ALS candidates per user.
    personal_weight : float
        Weight of the affinity z-score for a user with a long history.
    history_half : float
        History size at which the personal weight is half of ``personal_weight``.
    trending_offset : float
        ``offset`` of ``log(offset + decayed readers)``; larger flattens the momentum signal.
    decorrelate : bool
        Remove from each user's z-scores the part explained linearly by the momentum term (over
        the live candidates), so that ALS's own popularity bias is not counted twice.
    coread_weight : float
        Weight of the co-reading lift (:mod:`recommender.coreading`); 0 leaves it out.
    coread_kappa : float
        Pseudo-reads that shrink a paper's readers towards everybody in the lift.
    coread_norm : float
        The lift's sum over the history is divided by ``|history| ** coread_norm``.
    coread_k : int
        Co-reading candidates per user (the live papers with the highest lift).
    """

    trending_k: int = 200
    personal_k: int = 100
    personal_weight: float = 0.3
    history_half: float = 5.0
    trending_offset: float = 1.0
    decorrelate: bool = False
    coread_weight: float = 0.7
    coread_kappa: float = 10.0
    coread_norm: float = 0.5
    coread_k: int = 100

    def __post_init__(self) -> None:
        if self.trending_k < 0 or self.personal_k < 0 or self.coread_k < 0:
            raise ValueError("trending_k, personal_k and coread_k must be >= 0")
        if self.personal_weight < 0 or self.history_half < 0 or self.trending_offset <= 0:
            raise ValueError("personal_weight, history_half >= 0 and trending_offset > 0")
        if self.coread_weight < 0 or self.coread_kappa <= 0 or self.coread_norm < 0:
            raise ValueError("coread_weight, coread_norm >= 0 and coread_kappa > 0")


def _mask_excluded(scores: NDArray[np.float32], exclude: csr_matrix | None) -> None:
    if exclude is None or exclude.nnz == 0:
        return
    rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    scores[rows, exclude.indices] = NEG_INF


def member(values: NDArray[np.int64], sorted_set: NDArray[np.int64]) -> NDArray[np.bool_]:
    """``np.isin(values, sorted_set)`` for a sorted ``sorted_set``: one binary search per value,
    without the sort of both that ``np.isin`` makes. For a request's few hundred values (8 us
    where ``np.isin`` takes 38); for tens of thousands a boolean mask over the codes is faster
    than either."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_set, values).clip(0, len(sorted_set) - 1)
    return sorted_set[at] == values


def at_least_top(scores: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Places, ascending, of every score at or above a bound that ``k`` scores reach: the ``k``
    highest scores, every score tied with the ``k``-th of them, and usually a few more.

    The bound is the ``k``-th highest of the maxima of groups of adjacent scores (at least ``4k``
    groups): ``k`` groups reach it, so ``k`` scores do. One pass for the maxima, a partition of
    a few hundred of them and one comparison pass: for one request's 20,000 scores and k = 140,
    about 30 us where ``np.argpartition`` takes 250. The caller sorts the few it gets.
    """
    n = len(scores)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    group = n // (4 * k)
    if group < 2:
        bound = np.partition(scores, n - k)[n - k]
    else:
        groups = n // group
        maxima = scores[: groups * group].reshape(groups, group).max(axis=1)
        bound = np.partition(maxima, groups - k)[groups - k]
    return np.flatnonzero(scores >= bound)


def top_n(
    scores: NDArray[np.float32], n: int, block: int = TOP_N_BLOCK
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The ``n`` best columns of each row, best first, ties by column; ``-inf`` entries are never
    returned.

    Rows are not partitioned whole. Their columns are dealt into groups of ``block`` (group
    ``g`` holds columns ``g``, ``g + G``, ``g + 2G``, ... for ``G`` groups, so that the groups'
    maxima are one elementwise pass; the columns left over make one more group), and the
    ``n``-th largest of the groups' maxima is a threshold that at least ``n`` scores reach.
    Only the groups that reach it are read again (or every score, when they hold more than an
    eighth of them); their scores above the threshold are sorted, and the ties at it follow in
    column order. When many groups tie at the threshold (rows of zeros, say), the ties are the
    first ``n`` of each row, found in column order. Rows of fewer than ``4n`` groups make every
    column its own group. The answer is exact; on 500 x 200,000 scores it is several times
    faster than ``np.argpartition``.

    Parameters
    ----------
    scores : ndarray of float32 (q, n_items)
    n : int
    block : int
        Columns per group.

    Returns
    -------
    ids : ndarray of int64 (q, n)
        Column indices, padded with ``-1`` where a row has fewer than ``n`` finite scores.
    values : ndarray of float32 (q, n)
        Their scores (``-inf`` in the padding).
    """
    q, n_items = scores.shape
    n_eff = min(n, n_items)
    if n_eff == 0 or q == 0:
        return np.full((q, n), -1, np.int64), np.full((q, n), NEG_INF, np.float32)
    groups = n_items // block
    if groups < 4 * n_eff:
        block, groups = 1, n_items
    # whole[r, i, g] is scores[r, i * groups + g]: a group's maxima are one elementwise pass
    whole = scores[:, : groups * block].reshape(q, block, groups)
    maxima = whole[:, 0, :] if block == 1 else whole.max(axis=1)
    rest = scores[:, groups * block :]
    if rest.shape[1]:
        maxima = np.hstack([maxima, rest.max(axis=1, keepdims=True)])
    width = maxima.shape[1]
    threshold = np.partition(maxima, width - n_eff, axis=1)[:, width - n_eff]
    # -inf is never a candidate, so a row with fewer finite scores keeps only those
    threshold = np.maximum(threshold, np.finfo(scores.dtype).min)[:, None]
    reach = maxima >= threshold
    ties = None
    if np.count_nonzero(reach) > 2 * q * n_eff:
        # many groups tie at the threshold (rows of zeros, say): the groups above it give the
        # scores above it, and the first n ties of each row are found in column order
        reach = maxima > threshold
        tied = scores == threshold
        tied &= np.cumsum(tied, axis=1, dtype=np.int32) <= n_eff
        ties = np.nonzero(tied)
    # the scores at or above the threshold (strictly above when the ties come from the whole rows)
    candidate = np.greater if ties is not None else np.greater_equal
    threshold = threshold[:, 0]
    if np.count_nonzero(reach) * block * 8 > scores.size:  # much of the scores: scan them all
        rows, cols = np.nonzero(candidate(scores, threshold[:, None]))
        values = scores[rows, cols]
    else:  # only the groups read
        rows, cols, values = _gathered(whole, rest, reach)
        keep = candidate(values, threshold[rows])
        rows, cols, values = rows[keep], cols[keep], values[keep]
    if ties is not None:
        rows = np.concatenate([rows, ties[0]])
        cols = np.concatenate([cols, ties[1]])
        values = np.concatenate([values, threshold[ties[0]]])
    return _rank(q, n, rows, cols, values)


def _gathered(
    whole: NDArray[np.float32], rest: NDArray[np.float32], reach: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
    """Rows, columns and scores of :func:`top_n`'s groups marked in ``reach`` (q, groups + 1 if
    ``rest`` has columns): ``whole`` (q, block, groups) holds the groups, ``rest`` the columns
    left over (the last group)."""
    _, block, groups = whole.shape
    rows, group = np.nonzero(reach)
    inside = group < groups
    r, g = rows[inside], group[inside]
    parts = [
        (np.repeat(r, block), (g[:, None] + groups * np.arange(block)).ravel(), whole[r, :, g])
    ]
    if rest.shape[1]:
        r = rows[~inside]
        cols = np.broadcast_to(groups * block + np.arange(rest.shape[1]), (len(r), rest.shape[1]))
        parts.append((np.repeat(r, rest.shape[1]), cols.ravel(), rest[r]))
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2].ravel() for p in parts]),
    )


def _rank(
    q: int, n: int, rows: NDArray[np.int64], cols: NDArray[np.int64], values: NDArray[np.float32]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """:func:`top_n`'s answer from its candidates (every score of a row above its threshold and
    the first ties at it, in any order)."""
    order = np.lexsort((cols, -values, rows))  # by row, then best first, ties by column
    rows, cols, values = rows[order], cols[order], values[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # position within the row
    keep = rank < n
    ids = np.full((q, n), -1, np.int64)
    out = np.full((q, n), -np.inf, values.dtype)
    ids[rows[keep], rank[keep]] = cols[keep]
    out[rows[keep], rank[keep]] = values[keep]
    return ids, out


def rank_trending(
    trending: ArrayLike, exclude: csr_matrix | None, n: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Global trending, minus what each user already opened or dismissed.

    Parameters
    ----------
    trending : array_like (n_items,)
        Decayed distinct readers of each paper at ``now``.
    exclude : csr_matrix (q, n_items) or None
        Non-zero where the paper must not be shown to the user.
    n : int

    Returns
    -------
    ids, values : ndarray (q, n)
        As :func:`top_n`; papers nobody read are never returned.
    """
    # float64: after hours without a reader, short half-lives leave scores below float32's range
    trending = np.asarray(trending, dtype=np.float64)
    q = 0 if exclude is None else exclude.shape[0]
    ids = np.full((q, n), -1, np.int64)
    values = np.full((q, n), NEG_INF, np.float32)
    if q == 0:
        return ids, values
    # Every user's list is the same ranking minus their exclusions: the best n + max(excluded
    # per user) papers (the head) hold every list.
    exclude = exclude.tocsr()
    keep = min(len(trending), n + int(np.diff(exclude.indptr).max()))
    head = top_n(np.where(trending > 0, trending, -np.inf)[None, :], keep)[0][0]
    head = head[head >= 0]
    size = len(head)
    if size == 0:  # nobody read anything
        return ids, values
    # Each user's list is the first n places of the head that they did not exclude, so among
    # its first n + (their excluded places) places: those places alone are looked at, not a
    # users x head matrix.
    place = np.full(len(trending), -1, np.int64)
    place[head] = np.arange(size)
    excluded_row = np.repeat(np.arange(q), np.diff(exclude.indptr))
    excluded_place = place[exclude.indices]
    hit = (excluded_place >= 0) & (exclude.data != 0)
    excluded = np.unique(excluded_row[hit] * size + excluded_place[hit])
    length = np.minimum(n + np.bincount(excluded // size, minlength=q), size)
    row = np.repeat(np.arange(q), length)
    at = np.arange(len(row)) - np.repeat(np.cumsum(length) - length, length)
    allowed = ~member(row * size + at, excluded)
    row, at = row[allowed], at[allowed]
    rank = np.arange(len(row)) - np.searchsorted(row, row)
    keep_rank = rank < n
    row, at, rank = row[keep_rank], at[keep_rank], rank[keep_rank]
    ids[row, rank] = head[at]
    values[row, rank] = trending[head[at]]
    return ids, values


def affinity(
    user_vectors: NDArray[np.float32], item_factors: NDArray[np.float32]
) -> NDArray[np.float32]:
    """ALS scores, one matrix product for the whole batch.

    Parameters
    ----------
    user_vectors : ndarray of float32 (q, factors)
    item_factors : ndarray of float32 (n_items, factors)

    Returns
    -------
    ndarray of float32 (q, n_items)
    """
    return np.asarray(user_vectors, np.float32) @ np.asarray(item_factors, np.float32).T


def rank_personal(
    user_vectors: NDArray[np.float32],
    item_factors: NDArray[np.float32],
    has_factor: NDArray[np.bool_],
    exclude: csr_matrix | None,
    n: int,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Plain ALS: the papers with the highest ``user . item`` scores, minus exclusions.

    Parameters
    ----------
    user_vectors : ndarray of float32 (q, factors)
    item_factors : ndarray of float32 (n_items, factors)
    has_factor : ndarray of bool (n_items,)
        False for papers the model knows nothing about (never returned).
    exclude : csr_matrix (q, n_items) or None
    n : int

    Returns
    -------
    ids, values : ndarray (q, n)
    """
    scores = affinity(user_vectors, item_factors)
    scores[:, ~np.asarray(has_factor, bool)] = NEG_INF
    _mask_excluded(scores, exclude)
    return top_n(scores, n)


def personal_weights(history_sizes: ArrayLike, params: BlendParams) -> NDArray[np.float32]:
    """Weight of the affinity term per user: ``personal_weight * n / (n + history_half)``.

    Parameters
    ----------
    history_sizes : array_like (q,)
        Papers in each user's history (0: pure trending).
    params : BlendParams

    Returns
    -------
    ndarray of float32 (q,)
    """
    n = np.maximum(np.asarray(history_sizes, dtype=np.float64), 0.0)
    denominator = np.where(n + params.history_half > 0, n + params.history_half, 1.0)
    return (params.personal_weight * n / denominator).astype(np.float32)


def momentum(trending: ArrayLike, params: BlendParams) -> NDArray[np.float32]:
    """The trending term of the blend: ``log(offset + decayed readers)``."""
    return np.log(params.trending_offset + np.asarray(trending, np.float64)).astype(np.float32)


def calibration(reference: NDArray[np.float32]) -> tuple[NDArray, NDArray]:
    """Each user's mean and standard deviation (1 where 0) of their affinities ``(q, m)``
    over the reference papers; ``m == 0`` gives mean 0 and deviation 1."""
    q = reference.shape[0]
    if reference.shape[1] == 0:
        return np.zeros((q, 1), np.float32), np.ones((q, 1), np.float32)
    std = reference.std(axis=1, keepdims=True)
    return reference.mean(axis=1, keepdims=True), np.where(std > 0, std, 1.0)


def personal_term(
    z: NDArray, has_factor: NDArray[np.bool_], weights: NDArray[np.float32]
) -> NDArray[np.float32]:
    """``weight(u) * z``, and 0 for papers without factors (neither pushed nor held back)."""
    return np.where(has_factor, weights[:, None] * z, 0.0).astype(np.float32)


def blend_scores(
    user_vectors: NDArray[np.float32],
    history_sizes: ArrayLike,
    item_factors: NDArray[np.float32],
    has_factor: NDArray[np.bool_],
    trending: ArrayLike,
    exclude: csr_matrix | None,
    params: BlendParams,
    coread: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Blended scores of every candidate; ``-inf`` elsewhere.

    Parameters
    ----------
    user_vectors : ndarray of float32 (q, factors)
        Zero rows for users the model does not know.
    history_sizes : array_like (q,)
    item_factors : ndarray of float32 (n_items, factors)
    has_factor : ndarray of bool (n_items,)
    trending : array_like (n_items,)
        Decayed distinct readers at ``now``.
    exclude : csr_matrix (q, n_items) or None
    params : BlendParams
    coread : ndarray of float32 (q, n_items), optional
        Each user's co-reading lift (:func:`recommender.coreading.user_lift`, 0 outside the
        live papers), weighted by ``params.coread_weight``.

    Returns
    -------
    scores : ndarray of float32 (q, n_items)
        The blended score of each candidate, ``-inf`` for non-candidates and exclusions.
    personal : ndarray of float32 (q, n_items)
        The weighted personal terms alone (ALS affinity, 0 for papers without factors, plus
        the weighted co-reading lift), for reasons.
    """
    has_factor = np.asarray(has_factor, bool)
    trending = np.asarray(trending, dtype=np.float64)
    q, n_items = len(user_vectors), len(trending)
    raw = affinity(user_vectors, item_factors)
    hot = np.zeros(0, np.int64)
    if params.trending_k:
        hot = top_n(np.where(trending > 0, trending, -np.inf)[None, :], params.trending_k)[0][0]
        hot = hot[hot >= 0]
    # Calibrate each user's affinities against the papers that are live now (the trending
    # candidates that ALS knows); fall back to every paper with factors.
    reference = hot[has_factor[hot]] if len(hot) else hot
    if len(reference) < 2:
        reference = np.flatnonzero(has_factor)
    mean, std = calibration(raw[:, reference])
    z = (raw - mean) / std
    trend = momentum(trending, params)
    if params.decorrelate and len(reference) >= 2:
        m = trend[reference] - trend[reference].mean()
        var = float(m @ m)
        if var > 0:
            slope = (z[:, reference] @ m) / var  # (q,)
            z -= slope[:, None] * (trend - trend[reference].mean())[None, :]
    personal = personal_term(z, has_factor[None, :], personal_weights(history_sizes, params))
    use_coread = coread is not None and params.coread_weight > 0
    if use_coread:
        personal += np.float32(params.coread_weight) * np.asarray(coread, np.float32)
    scores = trend[None, :] + personal

    candidate = np.zeros((q, n_items), dtype=bool)
    candidate[:, hot] = True
    if params.personal_k and has_factor.any():
        mine = np.where(has_factor[None, :], raw, NEG_INF)
        _mask_excluded(mine, exclude)
        mine[personal_weights(history_sizes, params) <= 0] = NEG_INF
        ids = top_n(mine, params.personal_k)[0]
        rows = np.repeat(np.arange(q), ids.shape[1])
        ok = ids.ravel() >= 0
        candidate[rows[ok], ids.ravel()[ok]] = True
    if use_coread and params.coread_k:
        mine = np.where(coread > 0, coread, NEG_INF).astype(np.float32)
        _mask_excluded(mine, exclude)
        ids = top_n(mine, params.coread_k)[0]
        rows = np.repeat(np.arange(q), ids.shape[1])
        ok = ids.ravel() >= 0
        candidate[rows[ok], ids.ravel()[ok]] = True
    scores[~candidate] = NEG_INF
    _mask_excluded(scores, exclude)
    return scores, personal


def blend(
    user_vectors: NDArray[np.float32],
    history_sizes: ArrayLike,
    item_factors: NDArray[np.float32],
    has_factor: NDArray[np.bool_],
    trending: ArrayLike,
    exclude: csr_matrix | None,
    n: int,
    params: BlendParams,
    coread: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.bool_]]:
    """ "Trending for you" for a batch of users.

    Parameters are those of :func:`blend_scores`, plus ``n``, the list length.

    Returns
    -------
    ids : ndarray of int64 (q, n)
        Paper codes, best first, ``-1`` padded.
    scores : ndarray of float32 (q, n)
    personal : ndarray of bool (q, n)
        Whether the personal term lifted the paper (a positive weighted affinity).
    """
    scores, personal = blend_scores(
        user_vectors, history_sizes, item_factors, has_factor, trending, exclude, params, coread
    )
    ids, values = top_n(scores, n)
    lifted = np.take_along_axis(personal, ids.clip(0), axis=1) > 0
    return ids, values, lifted & (ids >= 0)


Reason = tuple[str] | tuple[str, int]


def trending_for_you(
    user_vector: NDArray[np.float32] | None,
    history_size: int,
    item_factors: NDArray[np.float32],
    has_factor: NDArray[np.bool_],
    trending: ArrayLike,
    excluded: ArrayLike,
    limit: int,
    params: BlendParams,
    explain: Callable[[int], int | None] | None = None,
    coread: ArrayLike | None = None,
) -> list[tuple[int, float, Reason]]:
    """The blend for one user, with a reason per paper (the server's entry point).

    Parameters
    ----------
    user_vector : ndarray of float32 (factors,) or None
        ``None`` for a user ALS cannot place (pure trending).
    history_size : int
    item_factors : ndarray of float32 (n_items, factors)
    has_factor : ndarray of bool (n_items,)
    trending : array_like (n_items,)
    excluded : array_like of int (m,)
        Paper codes the user opened or dismissed.
    limit : int
    params : BlendParams
    explain : callable, optional
        ``explain(item) -> history item or None``, e.g. wrapping :func:`recommender.als.explain`.
    coread : array_like of float (n_items,), optional
        The user's co-reading lift (:func:`recommender.coreading.one_user`, 0 off the live papers).

    Returns
    -------
    list of (item, score, reason)
        Sorted by score, descending, no duplicates, at most ``limit`` long; ``reason`` is
        ``("because", history_item)`` for a paper the user's history lifted (and ``explain``
        named), ``("trending",)`` otherwise.
    """
    n_items, factors = item_factors.shape
    if user_vector is None:
        user_vector, history_size = np.zeros(factors, np.float32), 0
    excluded = np.unique(np.asarray(excluded, dtype=np.int64))
    exclude = csr_matrix(
        (np.ones(len(excluded), np.float32), excluded, [0, len(excluded)]), shape=(1, n_items)
    )
    ids, scores, lifted = blend(
        np.asarray(user_vector, np.float32)[None, :],
        [history_size],
        item_factors,
        has_factor,
        trending,
        exclude,
        limit,
        params,
        None if coread is None else np.asarray(coread, np.float32)[None, :],
    )
    out: list[tuple[int, float, Reason]] = []
    for item, score, up in zip(
        ids[0].tolist(), scores[0].tolist(), lifted[0].tolist(), strict=True
    ):
        if item < 0:
            break
        because = explain(item) if (up and explain is not None) else None
        out.append((item, score, ("because", because) if because is not None else ("trending",)))
    return out
