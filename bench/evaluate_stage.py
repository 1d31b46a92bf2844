"""Benchmark: the nightly retrain's evaluation stage (``training.evaluate``) alone, at the shape
of ``bench/retrain.py --events 2e7`` (1M users x 200k papers, Zipf-shaped, 90 days; the last
day held out), with two stored models of random factors, without Redis.

    .venv/bin/python bench/evaluate_stage.py               # prints seconds per run, and the median
    .venv/bin/python bench/evaluate_stage.py --profile     # one run under cProfile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrain import zipf_choice
from recommender import modelstore, training
from recommender.compaction import Events

DAY = 86400


def synthetic(events: int, users: int, papers: int, days: float, seed: int = 0) -> Events:
    """A compacted log of ``events`` reads (a third of them clicks) spread over ``days``."""
    rng = np.random.default_rng(seed)
    now = 1_800_000_000
    return Events(
        users=np.array([b"u%07d" % i for i in range(users)]),
        items=np.array([b"arxiv:%06d" % i for i in range(papers)]),
        user=zipf_choice(rng, users, events, 0.8).astype(np.int32),
        item=zipf_choice(rng, papers, events, 1.0).astype(np.int32),
        kind=(rng.random(events) < 1 / 3).astype(np.int8),
        ts=np.sort(rng.integers(now - int(days * DAY), now, events)).astype(np.int64),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=2e7)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--papers", type=int, default=200_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one run under cProfile")
    args = parser.parse_args()

    events = synthetic(int(args.events), args.users, args.papers, args.days)
    rng = np.random.default_rng(1)
    model = modelstore.StoredModel.from_ids(
        events.users,
        events.items,
        rng.standard_normal((args.users, args.factors)).astype(np.float32),
        rng.standard_normal((args.papers, args.factors)).astype(np.float32),
    )
    split = int(events.ts.max()) - DAY
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(training.evaluate, events, split, model, model)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(20)
        return
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        training.evaluate(events, split, model, model)
        times.append(time.perf_counter() - start)
        print(f"evaluate (2 models, {training.EVAL_USERS} users): {times[-1]:.2f} s", flush=True)
    print(f"median {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
