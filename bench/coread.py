"""Benchmark: rebuilding the co-reading table from the log, as the worker does every
``PAPERFEED_COREAD_REFRESH_S``, on the synthetic Zipf-shaped log of ``bench/retrain.py``.

    .venv/bin/python bench/coread.py --events 1e6
    .venv/bin/python bench/coread.py --events 2e7 --rounds 2

Events go into Redis streams under a throwaway prefix (deleted afterwards); the log is compacted
(as the nightly training leaves it) and one more day of events stays in the tail; the main
trending window gets the papers' decayed distinct readers (what ingestion writes). Then the
rebuild (``coreadstore.refresh``: read, build, publish) is timed, median of ``--rounds``, with
the table's sizes and bytes, the peak resident memory, a web process's load of the table, and
one request's lift (``coreading.one_user`` over a reader's latest papers, median of 1,000).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrain import (
    DAY,
    delete_prefix,
    generate,
    paper_id,
    rss_mb,
    synthetic_arguments,
    synthetic_run,
    write_streams,
)
from recommender import compaction, coreading, coreadstore
from recommender.keys import Keys
from recommender.matrix import DISMISS
from recommender.redisconn import connect


def fill_trending(redis, keys: Keys, data: dict[str, np.ndarray], now: float, half_s: float):
    """The main window as ingestion leaves it: decayed distinct readers per paper (epoch now)."""
    read = data["kind"] != DISMISS
    pair = data["user"][read] * (int(data["item"].max()) + 1) + data["item"][read]
    _, first = np.unique(pair, return_index=True)
    items, ts = data["item"][read][first], data["ts"][read][first]
    score = np.bincount(items, weights=np.exp2(-(now - ts) / half_s))
    hot = np.argsort(-score)[:2000]
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(
        keys.trending(),
        {paper_id(p): float(score[p]) for p in hot.tolist()},
    )
    pipe.set(keys.trending_epoch(), repr(now))
    pipe.execute()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    synthetic_arguments(parser)
    parser.add_argument(
        "--half-life-h", type=float, default=48.0, help="PAPERFEED_COREAD_HALF_LIFE_H"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    n, users, papers, settings, keys = synthetic_run(args, coread_half_life_h=args.half_life_h)
    prefix = settings.key_prefix
    redis = connect(args.redis_url, timeout_s=120.0)
    rng = np.random.default_rng(0)
    now = time.time()
    try:
        history = generate(rng, n, users, papers, now - args.days * DAY, (args.days - 1) * DAY)
        write_streams(redis, keys, history, 0)
        compaction.compact(redis, keys, now=now, retention_s=settings.retention_s)
        day = generate(rng, max(n // int(args.days), 1), users, papers, now - DAY, DAY - 60)
        write_streams(redis, keys, day, n)
        both = {k: np.concatenate([history[k], day[k]]) for k in history}
        fill_trending(redis, keys, both, now, args.half_life_h * 3600)
        del history, day, both
        print(f"{n:,} events compacted, {n // int(args.days):,} in the tail", flush=True)

        seconds, report = [], {}
        for _ in range(args.rounds):
            started = time.perf_counter()
            report = coreadstore.refresh(redis, keys, settings, now=now)
            seconds.append(time.perf_counter() - started)
        peak = rss_mb()
        stored = redis.memory_usage(keys.coread(report["version"])) or 0
        started = time.perf_counter()
        live = coreadstore.load(redis, keys, report["version"])
        load_s = time.perf_counter() - started

        # one request: a reader's latest 40 papers (rows the table has), lift over 500 columns
        rows = rng.choice(len(live.row_ids), size=min(40, len(live.row_ids)), replace=False)
        timings = []
        for _ in range(1000):
            began = time.perf_counter()
            coreading.one_user(live.table, rows, 40, kappa=10.0, norm=0.5)
            timings.append(time.perf_counter() - began)
    finally:
        delete_prefix(redis, prefix)

    print(
        f"rebuild (read, build, publish): median {statistics.median(seconds):.2f} s of "
        f"{', '.join(f'{s:.2f}' for s in seconds)}"
    )
    print(
        f"table: {report['rows']:,} rows x {report['live']} live papers, {report['nnz']:,} "
        f"entries, from {report['readers']:,} recent readers ({report['recent_reads']:,} recent "
        f"reads) in {report['events']:,} events"
    )
    print(f"stored in Redis: {stored / 2**20:.1f} MB; a web process loads it in {load_s:.2f} s")
    print(f"one request's lift (40 papers): median {statistics.median(timings) * 1e6:.0f} µs")
    print(f"peak RSS of this process: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
