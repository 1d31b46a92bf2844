"""How well does the inverted-file index find a user's ALS top 100? (serving's personal candidates)

    .venv/bin/python bench/topk_search.py [--citeulike /tmp/paperfeed-eval/citeulike-a.csv]

For three item-factor matrices it builds :func:`recommender.ivf.build` (timed) and reports, for
300 users, the recall of the exact top 100 among the index's top 100 at several scan fractions
(and the median time of one search), and the share of papers an exact norm-ordered scan would
have to read (the exact alternative: score papers by decreasing norm, stop when
``|user| * |paper|`` falls below the 100th score):

1. random normal factors, 200,000 x 64: the synthetic model of ``bench/serve.py`` (no structure:
   the worst case for any index);
2. ALS (``recommender.als.train``, 64 factors) on 2 million synthetic Zipf events (the generator
   of ``bench/retrain.py``: 100,000 users, 40,000 papers);
3. ALS on citeulike-a (``bench/eval_prepare.py`` writes the CSV), if given;
4. the factors saved by ``bench/train_synthetic.py`` (``--factors-from``), if given: ALS on
   20 million synthetic Zipf events is 1M users x 200k papers, the size of the serving goal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrain import generate
from recommender import als, evaluate, ivf

K = 100
FRACTIONS = (0.05, 0.1, 0.2)


def norm_ordered_share(items: NDArray[np.float32], v: NDArray[np.float32]) -> float:
    """Share of papers an exact scan by decreasing norm reads before its bound stops it."""
    norms = np.linalg.norm(items, axis=1)
    order = np.argsort(-norms)
    scores = items[order] @ v
    kth = np.partition(scores, len(scores) - K)[-K]  # the 100th best score
    # the scan stops at the first paper whose bound cannot beat the 100th best
    below = np.flatnonzero(np.linalg.norm(v) * norms[order] < kth)
    return (below[0] if len(below) else len(items)) / len(items)


def study(name: str, users: NDArray[np.float32], items: NDArray[np.float32]) -> None:
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    has = np.any(items != 0, axis=1)
    index = ivf.build(items, has)
    built = time.perf_counter() - started
    sample = users[rng.choice(len(users), 300, replace=False)]
    none = np.zeros(0, np.int64)
    recall: dict[float, list[float]] = {f: [] for f in FRACTIONS}
    took: dict[float, list[float]] = {f: [] for f in FRACTIONS}
    scan = []
    for v in sample:
        truth = set(np.argpartition(-(items @ v), K)[:K].tolist())
        for f in FRACTIONS:
            began = time.perf_counter()
            got = ivf.search(index, items, has, v, none, K, f)
            took[f].append(time.perf_counter() - began)
            recall[f].append(len(truth & set(got.tolist())) / K)
        scan.append(norm_ordered_share(items, v))
    cells = ", ".join(f"{f:.0%}: {np.mean(r):.3f}" for f, r in recall.items())
    times = ", ".join(f"{f:.0%}: {np.median(t) * 1e6:,.0f} us" for f, t in took.items())
    print(
        f"{name}: {items.shape[0]:,} x {items.shape[1]} papers, {len(index.centroids)} clusters "
        f"built in {built:.1f} s; recall@{K} by scan fraction {cells}; "
        f"median search {times}; "
        f"exact norm-ordered scan reads {np.median(scan):.0%} (median)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citeulike", help="citeulike-a.csv from bench/eval_prepare.py")
    parser.add_argument(
        "--factors-from", metavar="NPZ", help="also a model from bench/train_synthetic.py"
    )
    args = parser.parse_args(argv)
    if args.factors_from:
        saved = np.load(args.factors_from)
        study(f"ALS from {args.factors_from}", saved["user_factors"], saved["item_factors"])
    rng = np.random.default_rng(0)
    study(
        "random normal (bench/serve.py's model)",
        rng.standard_normal((20_000, 64), dtype=np.float32),
        rng.standard_normal((200_000, 64), dtype=np.float32),
    )
    ev = generate(rng, 2_000_000, 100_000, 40_000, 0.0, 90 * 86400.0)
    model = als.train(
        ev["user"].astype(str),
        ev["item"].astype(str),
        ev["kind"].astype(np.int8),
        ev["ts"].astype(np.float64),
        90 * 86400.0,
        als.TrainParams(factors=64, iterations=10),
    )
    study("ALS on 2M synthetic Zipf events", model.user_factors, model.item_factors)
    if args.citeulike:
        ce = evaluate.load_events(args.citeulike)
        model = als.train(
            ce.user, ce.item, ce.kind, ce.ts, float(ce.ts.max()) + 1, als.TrainParams(factors=64)
        )
        study("ALS on citeulike-a", model.user_factors, model.item_factors)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
