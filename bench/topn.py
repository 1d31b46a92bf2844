"""Benchmark: ``ranking.top_n`` on the shapes the product and the replay give it.

Times the working tree's ``top_n`` and, with ``--compare REV``, the one in ``recommender/
ranking.py`` at git revision ``REV``, interleaved round by round; prints the medians, their
ratio and whether both return the same scores.

    .venv/bin/python bench/topn.py --compare e9e5d66
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender import ranking  # noqa: E402


def ranking_at(rev: str) -> types.ModuleType:
    """``recommender.ranking`` as it was at git revision ``rev``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:recommender/ranking.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"ranking_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:recommender/ranking.py", "exec"), module.__dict__)
    return module


def cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, int, int]]:
    """name -> (scores, n, calls per timing)."""
    q, width = 1024, 25649  # a replay chunk of Globo's users x papers

    def normal(rows: int, cols: int) -> np.ndarray:
        return rng.standard_normal((rows, cols)).astype(np.float32)

    def sparse(share: float) -> np.ndarray:
        return np.where(rng.random((q, width)) < share, normal(q, width), 0).astype(np.float32)

    return {
        "request: 1 x 400, n=20": (normal(1, 400), 20, 2000),
        "request: 1 x 4,000, n=100": (normal(1, 4000), 100, 500),
        "1,024 x 25,649, n=100, random": (normal(q, width), 100, 3),
        "1,024 x 25,649, n=100, 2 % non-zero": (sparse(0.02), 100, 3),
        "1,024 x 25,649, n=100, 0.2 % non-zero (zeros tie)": (sparse(0.002), 100, 1),
        "evaluation: 500 x 200,000, n=20": (normal(500, 200_000), 20, 2),
    }


def seconds(top_n: Callable, scores: np.ndarray, n: int, calls: int) -> float:
    """Seconds per call of ``top_n(scores, n)``, over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        top_n(scores, n)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", help="git revision whose top_n to time beside this one")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    versions = {"now": ranking}
    if args.compare:
        versions[args.compare] = ranking_at(args.compare)
    for name, (scores, n, calls) in cases(np.random.default_rng(0)).items():
        times: dict[str, list[float]] = {v: [] for v in versions}
        for r in range(args.rounds):
            for label in list(versions)[:: 1 if r % 2 == 0 else -1]:
                times[label].append(seconds(versions[label].top_n, scores, n, calls))
        line = f"{name:52s}"
        for label in versions:
            line += f"  {label} {statistics.median(times[label]) * 1e3:9.3f} ms"
        if args.compare:
            ratio = statistics.median(times["now"]) / statistics.median(times[args.compare])
            same = np.array_equal(
                ranking.top_n(scores, n)[1], versions[args.compare].top_n(scores, n)[1]
            )
            line += f"  now/{args.compare} {ratio:5.2f}  same scores: {same}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
