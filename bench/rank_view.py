"""What ranking one of the public page's trending views costs, by the number of papers.

A read of the "today" or "this week" view ranks it from the papers' entries once the previous
ranking is older than ``PAPERFEED_TRENDING_VIEW_TTL_S`` (``EventStore.rank_view``). This script
fills a private ``redis-server`` (see ``bench/ingest_redis.py``) with ``--papers`` papers read
over the last week, through ingestion, then ranks the ``day`` view ``--rounds`` times and prints
the wall time and Redis's main-thread CPU of each ranking.

    .venv/bin/python bench/rank_view.py --papers 20000
    .venv/bin/python bench/rank_view.py --papers 200000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest_redis import main_thread_us, private_redis
from recommender.settings import Settings
from recommender.store import Event, EventStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with private_redis() as client:
        store = EventStore(client, Settings.from_env({}, key_prefix="rank"))
        rnd, now = random.Random(1), int(time.time())
        for start in range(0, args.papers, 500):  # one reader each, over the last week
            events = [
                Event(
                    id=str(uuid.uuid4()),
                    kind="open",
                    paper_id=f"arxiv:{2400 + p // 100000}.{p % 100000:05d}",
                    ts=now - rnd.randrange(7 * 86400),
                    site="arxiv.org",
                )
                for p in range(start, min(start + 500, args.papers))
            ]
            store.ingest(f"reader{start}", events, now=now)
        walls, cpus = [], []
        for _ in range(args.rounds):
            wall, cpu = time.perf_counter(), main_thread_us(client)
            ranked = store.rank_view("day", now=now)
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((main_thread_us(client) - cpu) / 1000)
        print(
            f"ranking 'day' over {args.papers} papers ({ranked} ranked), medians of "
            f"{args.rounds}: {statistics.median(walls):.0f} ms wall, "
            f"{statistics.median(cpus):.0f} ms of Redis's main thread"
        )


if __name__ == "__main__":
    main()
