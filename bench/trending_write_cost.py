"""Redis's CPU per paper to update one trending window, kept as a sorted set or as a hash.

The ingest script's trending update reads each paper's stored score and writes the new one. This
script times that read-and-write shape on its own, in a private ``redis-server`` (see
``bench/ingest_redis.py``), with ``bench/ingest.lua``'s papers (Zipf-shaped over 20,000):

- ``zset``: ``ZMSCORE`` and ``ZADD`` on a sorted set, as the windows are kept now;
- ``hash``: ``HMGET`` and ``HSET`` on a hash: the same values without the skiplist's ordering;
- ``lua only``: the script's call, arguments and loop without touching a key.

The difference is what keeping the page's ``day`` and ``week`` views in the papers' entries
(hash fields the ingest script reads and writes anyway) saves over a sorted set each:
``docs/benchmarks.md``.

    .venv/bin/python bench/trending_write_cost.py
    .venv/bin/python bench/trending_write_cost.py --no-aof
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest_redis import main_thread_us, private_redis

# ARGV: the batch's distinct papers; each gains i (its position), as increments would
SCRIPTS = {
    "zset": """
local stored = redis.call('ZMSCORE', KEYS[1], unpack(ARGV))
local args = {}
for i = 1, #ARGV do
  args[2 * i - 1] = (tonumber(stored[i]) or 0) + i
  args[2 * i] = ARGV[i]
end
redis.call('ZADD', KEYS[1], unpack(args))
""",
    "hash": """
local stored = redis.call('HMGET', KEYS[1], unpack(ARGV))
local args = {}
for i = 1, #ARGV do
  args[2 * i - 1] = ARGV[i]
  args[2 * i] = (tonumber(stored[i]) or 0) + i
end
redis.call('HSET', KEYS[1], unpack(args))
""",
    "lua only": """
local args = {}
for i = 1, #ARGV do
  args[2 * i - 1] = ARGV[i]
  args[2 * i] = i
end
return #args
""",
}


def papers(rnd: random.Random, n: int = 100) -> list[str]:
    """The distinct papers of ``n`` events drawn as ``bench/ingest.lua`` draws them."""
    return list({f"arxiv:2401.{int(20000 * rnd.random() ** 3) + 1:05d}" for _ in range(n)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=1000, help="measured batches per round")
    parser.add_argument("--no-aof", action="store_true", help="run Redis without its AOF")
    args = parser.parse_args()
    with private_redis(appendonly=not args.no_aof) as client:
        scripts = {name: client.register_script(body) for name, body in SCRIPTS.items()}
        results: dict[str, list[float]] = {name: [] for name in scripts}
        rnd = random.Random(1)
        for r in range(args.rounds):
            for name in scripts if r % 2 == 0 else list(scripts)[::-1]:
                client.delete("window")
                for _ in range(300):  # fill: most papers are in the window before measuring
                    scripts[name](keys=["window"], args=papers(rnd))
                n, before = 0, main_thread_us(client)
                for _ in range(args.batches):
                    batch = papers(rnd)
                    n += len(batch)
                    scripts[name](keys=["window"], args=batch)
                results[name].append((main_thread_us(client) - before) / n)
        print(f"Redis main-thread CPU per paper updated, medians of {args.rounds} rounds:")
        for name, figures in results.items():
            rounds = ", ".join(f"{x:.2f}" for x in figures)
            print(f"  {name:9s} {statistics.median(figures):5.2f} us  (rounds: {rounds})")


if __name__ == "__main__":
    main()
