"""Benchmark: ``GET /v1/recommendations`` latency under concurrent load, at full model size.

    .venv/bin/python bench/serve.py                      # 1M users x 200k papers, 64 factors
    .venv/bin/python bench/serve.py --users 100000 --papers 20000 --seconds 10

A synthetic model (random float32 factors, or trained ones with ``--factors-from``) is stored in
Redis under a throwaway prefix as the active version, with a trending list, a catalogue entry
per trending paper and ``--readers`` registered users with a history (a quarter of them with
events after the training, so their vector is folded in per request). Then ``--processes``
processes (like gunicorn workers), each with its own app and ``--threads`` client threads, call
the endpoint through the WSGI app (auth, Redis reads, blend, catalogue, JSON) for
``--seconds``; latencies are reported per request.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrain import paper_id
from recommender import coreading, coreadstore, modelstore, users
from recommender.als import TrainParams
from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings
from recommender.store import Event, EventStore


def setup(args: argparse.Namespace, settings: Settings) -> list[str]:
    """Model, trending, catalogue and readers in Redis; returns the readers' tokens."""
    redis = connect(settings.redis_url, timeout_s=120.0)
    keys = Keys(settings.key_prefix)
    store = EventStore(redis, settings, keys)
    rng = np.random.default_rng(0)
    now = time.time()
    trained_at = now - 3600
    tokens, reader_ids = [], []
    for r in range(args.readers):
        user_id, token = users.create_user(redis, keys, now=now)
        tokens.append(token)
        reader_ids.append(user_id)
        when = trained_at - 86400 if r % 4 else now - 60  # a quarter read after the training
        events = [
            Event(
                id=str(uuid.uuid4()),
                kind="open",
                paper_id=paper_id(int(p)),
                ts=int(when) + j,
                site="arxiv.org",
                title=f"Paper {p}",
            )
            for j, p in enumerate(rng.choice(args.papers, size=args.history, replace=False))
        ]
        store.ingest(user_id, events, now=when + args.history)
    # the trending list: the ingests above made one; add the hottest papers with real weight
    hot = rng.choice(args.papers, size=2000, replace=False)
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(keys.trending(), {paper_id(int(p)): float(2000 - i) * 1e3 for i, p in enumerate(hot)})
    for p in hot[:400].tolist():
        pipe.hset(
            keys.paper(paper_id(p)),
            mapping={
                "title": f"Paper {p}",
                "url": f"https://arxiv.org/abs/{paper_id(p)[6:]}",
                "abstract": "x" * 600,
                "authors": json.dumps(["A. Author", "B. Author"]),
            },
        )
    pipe.execute()
    user_ids = [f"synthetic{u:07d}" for u in range(args.users - args.readers)] + reader_ids
    factors = args.factors
    if args.factors_from:  # trained factors (bench/train_synthetic.py) instead of random ones
        saved = np.load(args.factors_from)
        user_factors, item_factors = saved["user_factors"], saved["item_factors"]
        if user_factors.shape != (args.users, factors) or item_factors.shape[0] != args.papers:
            raise SystemExit(f"{args.factors_from}: shapes do not match --users/--papers/--factors")
    else:
        user_factors = rng.standard_normal((args.users, factors), dtype=np.float32) * 0.1
        item_factors = rng.standard_normal((args.papers, factors), dtype=np.float32) * 0.1
    model = modelstore.StoredModel.from_ids(
        user_ids,
        [paper_id(p) for p in range(args.papers)],
        user_factors,
        item_factors,
        meta={"params": TrainParams(factors=factors).as_dict(), "trained_at": trained_at},
    )
    modelstore.store(redis, keys, model, activate=True, keep=2)
    if args.coread_entries:
        publish_coread(redis, keys, rng, args.papers, hot[: coreadstore.LIVE], args.coread_entries)
    redis.close()
    return tokens


def publish_coread(
    redis, keys: Keys, rng: np.random.Generator, papers: int, live: np.ndarray, entries: int
) -> None:
    """A synthetic co-reading table: ``entries`` random (paper, live paper) counts."""
    rows = rng.integers(0, papers, entries)
    cols = rng.integers(0, len(live), entries)
    counts = csr_matrix(
        (rng.exponential(1.0, entries).astype(np.float32) + 0.01, (rows, cols)),
        shape=(papers, len(live)),
    )
    counts.sum_duplicates()
    ids = np.array([paper_id(p) for p in range(papers)], dtype="S")
    order = np.argsort(ids, kind="stable")
    share = np.asarray(counts.sum(axis=0), dtype=np.float64).reshape(-1)
    table = coreadstore.LiveTable(
        row_ids=ids[order],
        live_ids=np.array([paper_id(int(p)) for p in live], dtype="S"),
        table=coreading.Table(counts=counts[order], share=share / share.sum()),
        meta={"built_at": time.time(), "nnz": int(counts.nnz), "synthetic": True},
    )
    coreadstore.publish(redis, keys, table)


def worker(
    settings: Settings,
    tokens: list[str],
    threads: int,
    seconds: float,
    limit: int,
    coread: bool,
    out: mp.Queue,
) -> None:
    from server.app import create_app

    app = create_app(settings)
    client = app.test_client()
    warm = client.get(
        f"/v1/recommendations?limit={limit}", headers={"Authorization": f"Bearer {tokens[0]}"}
    )
    assert warm.status_code == 200, warm.get_data(as_text=True)
    assert warm.get_json()["model_version"], "the model did not load"
    recommender = app.extensions["paperfeed"].extras["recommender"]
    assert (recommender.coread_table() is not None) == coread, "the co-reading table"
    began = time.perf_counter()
    indexed = recommender.wants_index(recommender.snapshot().model)
    while indexed and recommender.snapshot().index is None:
        if time.perf_counter() - began > 300:
            raise RuntimeError("the index was not built in 300 s")
        time.sleep(0.05)
    index_s = time.perf_counter() - began
    latencies: list[float] = []
    errors = [0]
    start = time.perf_counter()

    def loop(offset: int) -> None:
        local = app.test_client()
        i = offset
        while time.perf_counter() - start < seconds:
            token = tokens[i % len(tokens)]
            i += threads
            began = time.perf_counter()
            response = local.get(
                f"/v1/recommendations?limit={limit}", headers={"Authorization": f"Bearer {token}"}
            )
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                errors[0] += 1

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, errors[0], index_s))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--papers", type=int, default=200_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--readers", type=int, default=400)
    parser.add_argument("--history", type=int, default=40, help="papers per reader")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="client threads per process")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--factors-from",
        metavar="NPZ",
        help="user_factors and item_factors from bench/train_synthetic.py (default: random)",
    )
    parser.add_argument(
        "--scan-fraction",
        type=float,
        default=0.1,
        help="PAPERFEED_PERSONAL_SCAN_FRACTION (1: exact personal candidates, no index)",
    )
    parser.add_argument(
        "--coread-entries",
        type=int,
        default=5_000_000,
        help="entries of the synthetic co-reading table (0: none)",
    )
    args = parser.parse_args()

    prefix = f"pfbench-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env(
        {},
        redis_url=args.redis_url,
        key_prefix=prefix,
        rate_limit_enabled=False,
        redis_timeout_s=30.0,
        personal_scan_fraction=args.scan_fraction,
    )
    redis = connect(args.redis_url, timeout_s=120.0)
    try:
        began = time.perf_counter()
        tokens = setup(args, settings)
        print(
            f"set up {args.users:,} x {args.papers:,} model in {time.perf_counter() - began:.1f}s",
            flush=True,
        )
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()
        procs = [
            ctx.Process(
                target=worker,
                args=(
                    settings,
                    tokens[p :: args.processes],
                    args.threads,
                    args.seconds,
                    args.limit,
                    args.coread_entries > 0,
                    out,
                ),
            )
            for p in range(args.processes)
        ]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
    finally:
        for key in list(redis.scan_iter(match=f"{prefix}:*", count=5000)):
            redis.unlink(key)
    latencies = np.array([x for lat, _, _ in results for x in lat]) * 1000
    errors = sum(e for _, e, _ in results)
    if args.scan_fraction < 1:
        waits = ", ".join(f"{i:.1f}" for _, _, i in results)
        print(f"index built in the background of each process in {waits} s (before the clock)")
    if args.coread_entries:
        print(
            f"co-reading table of {args.coread_entries:,} entries over "
            f"{coreadstore.LIVE} live papers"
        )
    print(
        f"{len(latencies):,} requests in {args.seconds:.0f}s "
        f"({len(latencies) / args.seconds:.0f}/s) by {args.processes} processes x "
        f"{args.threads} threads, {errors} errors"
    )
    print(f"min    {latencies.min():7.2f} ms  (service time with no wait)")
    for q in (50, 90, 99, 99.9):
        print(f"p{q:<5} {np.percentile(latencies, q):7.2f} ms")
    print(f"max    {latencies.max():7.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
