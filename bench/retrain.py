"""Benchmark: a retrain end to end (Redis streams -> compaction -> matrix -> fit -> evaluate ->
publish) against implicit's ``fit`` alone on the same matrix, on synthetic Zipf-shaped events.

    .venv/bin/python bench/retrain.py --events 1e6
    .venv/bin/python bench/retrain.py --events 2e7 --json bench-20m.json

Events go into Redis streams under a throwaway prefix (deleted afterwards, unless ``--keep``).
Three timings: the first retrain (compaction reads the whole log), a nightly retrain after one
more day of events (compaction reads only that day), and implicit's fit alone. Peak memory is
the process's maximum resident set (``ru_maxrss``) after each phase, and Redis's ``used_memory``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender import compaction, training
from recommender.keys import Keys
from recommender.matrix import build_confidence
from recommender.redisconn import connect
from recommender.settings import Settings

DAY = 86400
KINDS = np.array(["open", "click", "dismiss"])


def paper_id(p: int) -> str:
    """The synthetic paper ``p``'s canonical id."""
    return f"arxiv:{2300 + p // 90000}.{10000 + p % 90000}"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def zipf_choice(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.power(np.arange(n) + 10.0, exponent)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(size)).astype(np.int64)


def generate(
    rng: np.random.Generator, events: int, users: int, papers: int, start: float, span: float
) -> dict[str, np.ndarray]:
    """Zipf users (activity) and papers (popularity); each user's papers lean to one topic."""
    user = zipf_choice(rng, users, events, 0.8)
    item = zipf_choice(rng, papers, events, 1.0)
    # a taste: half the reads land in the user's own slice of the catalogue
    topic = (user * 7919) % 50
    own = rng.random(events) < 0.5
    item[own] = (item[own] - item[own] % 50 + topic[own]) % papers
    return {
        "user": user,
        "item": item,
        "kind": rng.choice(3, size=events, p=[0.7, 0.25, 0.05]),
        "ts": (start + rng.random(events) * span).astype(np.int64),
    }


def write_streams(
    redis, keys: Keys, data: dict[str, np.ndarray], offset: int, batch: int = 20_000
) -> float:
    """XADD every event in big non-transactional pipelines; returns seconds."""
    started = time.perf_counter()
    order = np.argsort(data["ts"], kind="stable")
    user_ids = [f"u{u:07d}" for u in range(int(data["user"].max()) + 1)]
    partition = np.array([zlib.crc32(u.encode()) % keys.partitions for u in user_ids])
    streams = keys.streams()
    n = len(order)
    for lo in range(0, n, batch):
        pipe = redis.pipeline(transaction=False)
        idx = order[lo : lo + batch]
        for i, u, p, k, t in zip(
            idx.tolist(),
            data["user"][idx].tolist(),
            data["item"][idx].tolist(),
            data["kind"][idx].tolist(),
            data["ts"][idx].tolist(),
            strict=True,
        ):
            pipe.xadd(
                streams[partition[u]],
                {
                    "u": user_ids[u],
                    "e": f"{offset + i:032x}",
                    "k": KINDS[k],
                    "p": paper_id(p),
                    "ts": t,
                    "s": "arxiv.org",
                },
            )
        pipe.execute()
    return time.perf_counter() - started


class StageClock:
    """A progress callback that records how long each training stage took."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stage: str | None = None
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, _fraction: float) -> None:
        if stage != self.stage:
            self.lap()
            self.stage = stage

    def lap(self) -> dict[str, float]:
        now = time.perf_counter()
        if self.stage is not None:
            self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self.started
        self.started = now
        return {k: round(v, 2) for k, v in self.seconds.items()}


def implicit_fit_alone(redis, keys: Keys, settings: Settings, now: float) -> float:
    """implicit's fit on the confidence matrix of the same (compacted) events."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    params = training.train_params(settings)
    events = compaction.load(redis, keys)
    matrix = build_confidence(
        events.user,
        events.item,
        events.kind,
        events.ts,
        len(events.users),
        len(events.items),
        now,
        params,
    )
    del events
    solver = AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=params.alpha,
        iterations=params.iterations,
        random_state=params.seed,
        dtype=np.float32,
    )
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        solver.fit(matrix, show_progress=False)
    return time.perf_counter() - started


def delete_prefix(redis, prefix: str) -> None:
    batch = []
    for key in redis.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 1000:
            redis.unlink(*batch)
            batch = []
    if batch:
        redis.unlink(*batch)


def synthetic_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that shape the synthetic log and say where it goes."""
    parser.add_argument("--events", type=float, default=1e6)
    parser.add_argument("--users", type=int, help="default: events / 20")
    parser.add_argument("--papers", type=int, help="default: events / 100")
    parser.add_argument("--days", type=float, default=90.0, help="span of the synthetic log")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")


def synthetic_run(
    args: argparse.Namespace, **settings: Any
) -> tuple[int, int, int, Settings, Keys]:
    """Sizes (events, users, papers; the last two default to events / 20 and / 100) and the
    settings and keys of a throwaway prefix for one run of a benchmark on the synthetic log."""
    n = int(args.events)
    users = args.users or max(n // 20, 10)
    papers = args.papers or max(n // 100, 10)
    prefix = f"pfbench-{uuid.uuid4().hex[:8]}"
    config = Settings.from_env(
        {},
        redis_url=args.redis_url,
        key_prefix=prefix,
        stream_partitions=args.partitions,
        redis_timeout_s=120.0,
        retention_days=args.days + 30,
        **settings,
    )
    return n, users, papers, config, Keys(prefix, args.partitions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    synthetic_arguments(parser)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument(
        "--first-compaction-only",
        action="store_true",
        help="first pass: compaction only, no fit (saves time; the nightly run is the figure)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data (prints the prefix)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    n, users, papers, settings, keys = synthetic_run(
        args, als_factors=args.factors, als_iterations=args.iterations
    )
    prefix = settings.key_prefix
    redis = connect(args.redis_url, timeout_s=120.0)
    rng = np.random.default_rng(0)
    now = time.time()
    figures: dict[str, float | int | str] = {
        "events": n,
        "users": users,
        "papers": papers,
        "factors": args.factors,
        "iterations": args.iterations,
        "prefix": prefix,
    }
    try:
        history = generate(rng, n, users, papers, now - args.days * DAY, (args.days - 1) * DAY)
        figures["write_s"] = write_streams(redis, keys, history, 0)
        del history
        print(f"wrote {n:,} events in {figures['write_s']:.1f}s", flush=True)

        started, stages = time.perf_counter(), StageClock()
        if args.first_compaction_only:
            compaction.compact(redis, keys, now=now, retention_s=settings.retention_s)
            stages.seconds["compact"] = time.perf_counter() - started
            figures["retrain_first_s"] = float("nan")
            print(f"first compaction {time.perf_counter() - started:.1f}s", flush=True)
        else:
            report = training.run_training(redis, settings, now=now, progress=stages)
            figures["retrain_first_s"] = time.perf_counter() - started
            print(
                f"first retrain {figures['retrain_first_s']:.1f}s "
                f"(model {report['users']:,} x {report['papers']:,})",
                flush=True,
            )
        figures["stages_first"] = json.dumps(stages.lap())
        figures["rss_after_first_mb"] = rss_mb()

        day = generate(rng, max(n // int(args.days), 1), users, papers, now, DAY - 60)
        write_streams(redis, keys, day, n)
        del day
        started, stages = time.perf_counter(), StageClock()
        report = training.run_training(redis, settings, now=now + DAY, progress=stages)
        figures["retrain_nightly_s"] = time.perf_counter() - started
        figures["stages_nightly"] = json.dumps(stages.lap())
        figures["rss_after_nightly_mb"] = rss_mb()
        figures["metrics"] = json.dumps(report["metrics"])
        print(f"nightly retrain {figures['retrain_nightly_s']:.1f}s", flush=True)

        figures["implicit_fit_s"] = implicit_fit_alone(redis, keys, settings, now + DAY)
        figures["rss_peak_mb"] = rss_mb()
        figures["redis_used_mb"] = redis.info("memory")["used_memory"] / 2**20
        figures["ratio_first"] = figures["retrain_first_s"] / figures["implicit_fit_s"]
        figures["ratio_nightly"] = figures["retrain_nightly_s"] / figures["implicit_fit_s"]
    finally:
        if not args.keep:
            delete_prefix(redis, prefix)

    print(f"implicit fit alone     {figures['implicit_fit_s']:8.1f} s")
    print(
        f"retrain, first run     {figures['retrain_first_s']:8.1f} s  "
        f"({figures['ratio_first']:.2f}x; compaction reads the whole log)"
    )
    print(
        f"retrain, nightly       {figures['retrain_nightly_s']:8.1f} s  "
        f"({figures['ratio_nightly']:.2f}x; compaction reads one new day)"
    )
    print(
        f"peak RSS               {figures['rss_peak_mb']:8.0f} MB  "
        f"(after first {figures['rss_after_first_mb']:.0f}, "
        f"after nightly {figures['rss_after_nightly_mb']:.0f})"
    )
    print(f"Redis used_memory      {figures['redis_used_mb']:8.0f} MB (before clean-up)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
