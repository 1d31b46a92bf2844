"""Grid over ALS and blend knobs for the random split, on a tuning split (seed 1) only.

Usage: ``python bench/eval_tune_random.py EVENTS.csv [--seed 1]``. The reported figures use the
split with seed 0 (``paperfeed evaluate --split random``), which this script never scores.
"""

from __future__ import annotations

import argparse
import sys

from recommender import evaluate
from recommender.als import TrainParams
from recommender.ranking import BlendParams

TRAIN_GRID = [
    {"alpha": 10.0, "regularization": 0.1},
    {"alpha": 40.0, "regularization": 1.0},
    {"alpha": 20.0, "regularization": 0.5, "factors": 128},
]
BLEND_GRID = [
    {"personal_weight": w, "history_half": h, "trending_offset": o}
    for w in (0.5, 1.0, 2.0, 4.0)
    for h in (0.0, 10.0)
    for o in (1.0, 10.0)
]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("events")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    events = evaluate.load_events(args.events)
    for train in TRAIN_GRID:
        config = evaluate.EvalConfig(
            split="random",
            seed=args.seed,
            train=TrainParams(interaction_half_life_days=float("inf"), **train),
            blend_variants=tuple(BlendParams(**b) for b in BLEND_GRID),
        )
        means = evaluate.random_split(events, config, check_implicit=False).mean()
        best = max((m for m in means if m.startswith("blend[")), key=lambda m: means[m]["ndcg@20"])
        print(
            f"train={train} als={means['als']['ndcg@20']:.4f} "
            f"trending={means['trending']['ndcg@20']:.4f} best={best} "
            f"{BLEND_GRID[int(best[6:-1])]} ndcg={means[best]['ndcg@20']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
