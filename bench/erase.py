"""Benchmark: the cost of erasing one reader from stored model versions (``DELETE /v1/me``).

    .venv/bin/python bench/erase.py                     # 1M users x 64 factors, 2 versions
    .venv/bin/python bench/erase.py --users 100000 --versions 5

Stores ``--versions`` copies of a random model under a throwaway key prefix on ``--redis``, then
times :func:`recommender.modelstore.forget_user` for readers at the start, middle and end of the
sorted id list, and deletes what it wrote.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender import modelstore
from recommender.keys import Keys
from recommender.redisconn import connect


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--versions", type=int, default=2)
    args = parser.parse_args(argv)
    redis = connect(args.redis, timeout_s=120.0)
    keys = Keys(f"pf-bench-erase-{uuid.uuid4().hex[:8]}")
    ids = np.array([f"u{uuid.uuid4().hex}" for _ in range(args.users)])
    rng = np.random.default_rng(0)
    model = modelstore.StoredModel.from_ids(
        ids,
        ["arxiv:1"],
        rng.random((args.users, args.factors), dtype=np.float32),
        np.ones((1, args.factors), np.float32),
        meta={"params": {"factors": args.factors}},
    )
    try:
        for i in range(args.versions):
            modelstore.store(redis, keys, model, activate=i == 0, keep=args.versions, now=1e9 + i)
        times = []
        for who in model.user_ids[[0, args.users // 2, args.users - 1]]:
            started = time.perf_counter()
            scrubbed = modelstore.forget_user(redis, keys, who.decode())
            times.append(time.perf_counter() - started)
            assert scrubbed == args.versions
        median = float(np.median(times))
        print(
            f"{args.users:,} users x {args.factors} factors, {args.versions} versions: "
            f"erase median {median:.3f} s ({median / args.versions:.3f} s per version), "
            f"all {', '.join(f'{t:.3f}' for t in times)} s"
        )
    finally:
        for key in redis.scan_iter(f"{keys.prefix}*"):
            redis.delete(key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
