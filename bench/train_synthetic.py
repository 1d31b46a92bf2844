"""Train ALS on a synthetic Zipf event log and save the factors (for ``bench/serve.py``).

    .venv/bin/python bench/train_synthetic.py --events 2e7 --out /tmp/paperfeed-model-20m.npz

The log comes from ``bench/retrain.py``'s generator (users = events / 20, papers = events / 100,
half of each user's reads in a topic slice); the fit is ``recommender.als.train`` with the
default parameters. ``bench/serve.py --factors-from FILE`` then serves a model with the
structure of trained factors instead of random ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrain import generate
from recommender import als


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=2e7)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    n = int(args.events)
    span = 90 * 86400.0
    ev = generate(np.random.default_rng(0), n, n // 20, n // 100, 0.0, span)
    started = time.perf_counter()
    model = als.train(
        ev["user"],
        ev["item"],
        ev["kind"].astype(np.int8),
        ev["ts"].astype(np.float64),
        span,
        als.TrainParams(factors=args.factors, iterations=args.iterations),
    )
    # the generator's codes are the ids: row i of each matrix belongs to user / paper i
    users = np.zeros((n // 20, args.factors), np.float32)
    papers = np.zeros((n // 100, args.factors), np.float32)
    users[model.user_ids.astype(np.int64)] = model.user_factors
    papers[model.item_ids.astype(np.int64)] = model.item_factors
    np.savez(args.out, user_factors=users, item_factors=papers)
    took = time.perf_counter() - started
    print(f"trained {users.shape[0]:,} x {papers.shape[0]:,} in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
