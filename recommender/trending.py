"""Global trending: each distinct reader of a paper adds weight that halves every half-life.

Scores are kept relative to an epoch so that an increment never needs the old scores to be
decayed: a reader at time ``t`` adds ``2 ** ((t - epoch) / half_life)``, and a score read at
``now`` is multiplied by ``2 ** (-(now - epoch) / half_life)``, which gives the number of
readers, each counted with its decayed weight. When the exponent grows large the scores are
rebased once onto a newer epoch (one ``ZUNIONSTORE``), which at a 48-hour half-life happens
about once a year. The functions here are pure; the Redis side is in :mod:`recommender.store`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Rebase when increments would exceed 2**REBASE_EXPONENT (doubles reach 2**1023).
REBASE_EXPONENT = 400.0
DEFAULT_EPOCH = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def increment(ts: ArrayLike, epoch: float, half_life_s: float) -> NDArray[np.float64]:
    """The score one reader at time ``ts`` adds, in units of ``epoch``."""
    return np.exp2((np.asarray(ts, dtype=np.float64) - epoch) / half_life_s)


def to_now(score: ArrayLike, now: float, epoch: float, half_life_s: float) -> NDArray[np.float64]:
    """Decay stored scores to ``now``: the decayed number of readers."""
    return np.asarray(score, dtype=np.float64) * np.exp2(-(now - epoch) / half_life_s)


def decay(now: float, since: float, half_life_s: float) -> float:
    """What one reader counted whole at ``since`` weighs at ``now`` (a Python float: for one
    value, without numpy's overhead)."""
    return 2.0 ** (-(now - since) / half_life_s)


def stored_epoch(value: str | bytes | None) -> float:
    """An epoch as Redis returns it: ``DEFAULT_EPOCH`` while none is stored."""
    return float(value) if value else DEFAULT_EPOCH


def needs_rebase(now: float, epoch: float, half_life_s: float) -> bool:
    """Whether increments at ``now`` are too large to keep adding to the stored scores."""
    return (now - epoch) / half_life_s > REBASE_EXPONENT


def rebase_factor(old_epoch: float, new_epoch: float, half_life_s: float) -> float:
    """Multiply stored scores by this to express them relative to ``new_epoch``."""
    return float(np.exp2(-(new_epoch - old_epoch) / half_life_s))
