"""Grid over the blend's knobs on the tuning days only, sharing one replay (one training per day).

Usage::

    python bench/eval_tune.py EVENTS.csv [--until 2017-10-05] [--sample-users 0.2]
        [--half-life-h 48] [--coread-half-life-h 48] [--coread-live 500] [--train '{"alpha": 10}']
        [--grid '[{"personal_weight": 0.5}, ...]']

Every request before ``--until`` (exclusive) is replayed and scored; the report days are never
touched. Prints one line per method, sorted by NDCG.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time

from recommender import evaluate
from recommender.als import TrainParams
from recommender.ranking import BlendParams


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("events")
    parser.add_argument("--until", default="2017-10-05")
    parser.add_argument("--sample-users", type=float, default=0.2)
    parser.add_argument("--half-life-h", type=float, default=48.0)
    parser.add_argument("--coread-half-life-h", type=float, default=48.0)
    parser.add_argument("--coread-live", type=int, default=500, help="co-reading's live papers")
    parser.add_argument("--protocol", default="hourly")
    parser.add_argument("--train", default="{}")
    parser.add_argument("--blend", default="{}")
    parser.add_argument("--grid", default="[]")
    args = parser.parse_args(argv)

    events = evaluate.load_events(args.events)
    until = dt.datetime.fromisoformat(args.until).replace(tzinfo=dt.UTC).timestamp()
    max_days = (until - events.ts[0]) / 86400.0
    base = BlendParams(**json.loads(args.blend))
    variants = tuple(dataclasses.replace(base, **v) for v in json.loads(args.grid))
    config = evaluate.EvalConfig(
        protocol=args.protocol,
        train=TrainParams(**json.loads(args.train)),
        blend=base,
        blend_variants=variants,
        trending_half_life_h=args.half_life_h,
        coread_half_life_h=args.coread_half_life_h,
        coread_live=args.coread_live,
        max_days=max_days,
        sample_users=args.sample_users,
    )
    start = time.perf_counter()
    result = evaluate.replay(events, config)
    means = result.mean()
    print(
        f"# days {sorted(result.days)} half_life_h={args.half_life_h} "
        f"coread_live={args.coread_live} train={args.train} "
        f"{time.perf_counter() - start:.0f}s"
    )
    labels = {"blend": args.blend} | {
        f"blend[{i}]": json.dumps(v) for i, v in enumerate(json.loads(args.grid))
    }
    for method, m in sorted(means.items(), key=lambda kv: -kv[1]["ndcg@20"]):
        print(
            f"{method:<10} ndcg={m['ndcg@20']:.4f} recall={m['recall@20']:.4f} "
            f"n={m['users']} {labels.get(method, '')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
