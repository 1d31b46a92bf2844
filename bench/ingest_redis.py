"""Redis's own CPU per ingested event, in all and by section of the ingest script.

``bench/ingest.py`` shows that 100-event batches are bound by Redis's one command thread. This
script measures that thread alone: it starts a private ``redis-server`` (AOF on, fsync every
second, as ``paperfeed up`` runs it, but no automatic AOF rewrite, whose forks would blur the
figures), calls ``EventStore.ingest``'s single-Redis script directly with ``bench/ingest.lua``'s
workload (100-event batches, Zipf-shaped papers titled "Paper <n>", a third clicks), and reads
Redis's main-thread CPU (``INFO cpu``) around the calls. No HTTP, no gunicorn.

Each variant runs the script with some sections only, so differences attribute the cost:

- ``all``: every section (what the API runs);
- ``log+user+papers``: without trending; ``log+user``: without the catalogue entries either;
- ``log``: the stream and de-duplication marks alone;
- ``main window only``: every section with the ``main`` trending window only.

``--compare CHECKOUT`` adds the variant ``all (CHECKOUT)``: every section as another checkout of
Paperfeed (an earlier commit, say, from ``git worktree add``) writes them, its
``recommender/store.py`` and ``keys.py`` loaded beside this one's, so a change is measured side
by side in one Redis, rounds interleaved.

Each round starts from an empty Redis, fills it with ``--batches`` batches (not measured), then
measures a third as many more; variants are interleaved round by round and medians printed.

    .venv/bin/python bench/ingest_redis.py --rounds 3
    .venv/bin/python bench/ingest_redis.py --rounds 3 --users 5000 --ts-spread 3600
    git worktree add /tmp/before <commit> && \
        .venv/bin/python bench/ingest_redis.py --variants all --compare /tmp/before
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from recommender.settings import Settings  # noqa: E402
from recommender.store import Event, EventStore  # noqa: E402
from server.embedded_redis import find_server, free_port, shutdown  # noqa: E402

# variant -> (script sections, papers section on, its store: True for the main window only)
VARIANTS = {
    "all": ("LUZT", True, False),
    "log+user+papers": ("LUZ", True, False),
    "log+user": ("LU", False, False),
    "log": ("L", False, False),
    "main window only": ("LUZT", True, True),
}


class MainWindowOnly(Settings):
    @property
    def trending_windows(self) -> dict[str, float]:
        return {"main": self.trending_half_life_h * 3600.0}


def batch(rnd: random.Random, now: float, spread: int, size: int = 100) -> list[Event]:
    """One batch as bench/ingest.lua sends it (fresh ids; ``spread``: events up to that old)."""
    events = []
    for i in range(size):
        paper = int(20000 * rnd.random() ** 3) + 1
        events.append(
            Event(
                id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                kind="click" if i % 3 == 0 else "open",
                paper_id=f"arxiv:2401.{paper:05d}",
                ts=int(now - rnd.random() * spread),
                site="arxiv.org",
                title=f"Paper {paper}",
            )
        )
    return events


def ingest(
    store: EventStore, sections: str, papers_on: bool, user: str, events: list[Event]
) -> Any:
    """``EventStore.ingest``'s single-Redis call, with only ``sections`` (and the papers')."""
    k, now = store.keys, time.time()
    partition = k.partition_of(user)
    rows, versions = store._rows(events, int(now))
    papers = list(dict.fromkeys(ev.paper_id for ev in events)) if papers_on else []
    derived = store._derived_keys(user, sections[1:], papers)
    keys = [k.stream(partition), k.dedupe(partition), *derived]
    # 'L' alone would answer rows (a Cluster's first call); 'LX' runs the same log section
    header = store._header(
        sections if sections != "L" else "LX",
        user,
        partition,
        now,
        papers,
        versions if papers else {},
        len(events),
    )
    return store._ingest(keys=keys, args=header + rows)


def checkout_store(checkout: Path, client: Any) -> Any:
    """An ``EventStore`` of another checkout's ``recommender/store.py`` (with its ``keys.py``;
    the rest of ``recommender`` is this checkout's), on ``client``."""
    modules = {}
    for name in ("keys", "store"):
        path = checkout / "recommender" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"compared_{name}", path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"no {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        modules[name] = module
    settings = Settings.from_env({}, key_prefix="cost")
    keys = modules["keys"].Keys(settings.key_prefix, settings.stream_partitions)
    return modules["store"].EventStore(client, settings, keys)


@contextlib.contextmanager
def private_redis(appendonly: bool = True, callgrind: Path | None = None) -> Iterator[redis.Redis]:
    """A client of a private ``redis-server`` (AOF as ``paperfeed up`` runs it unless
    ``appendonly`` is false; no automatic AOF rewrite, no snapshots), once it answers; the
    server is shut down on exit. With ``callgrind``, the server runs under valgrind's callgrind
    with its counting off (see :class:`Instructions`), writing its counts to that file."""
    port, data_dir = free_port(), tempfile.mkdtemp(prefix="pf-redis-cost-")
    grind = []
    if callgrind:
        grind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        grind.append(f"--callgrind-out-file={callgrind}")
    server = subprocess.Popen(
        [
            *grind,
            *(find_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir),
            *("--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec"),
            *("--save", "", "--auto-aof-rewrite-percentage", "0"),
            *("--logfile", f"{data_dir}/redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if callgrind else None,  # valgrind's banner
    )
    client = redis.Redis(port=port, decode_responses=True)
    for _ in range(600 if callgrind else 100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield client
    finally:
        client.close()
        shutdown(port, save=False)
        server.wait(timeout=10)


class Instructions:
    """The instructions a ``private_redis(callgrind=...)`` server executes while counting is on.

    Unlike CPU time, the count repeats whatever else the machine does, so two versions of the
    ingest script compare by it in one round."""

    def __init__(self, client: Any, out: Path) -> None:
        self.pid, self.out = str(client.info("server")["process_id"]), out

    def count(self, on: bool) -> None:
        cmd = ["callgrind_control", "-i", "on" if on else "off", self.pid]
        subprocess.run(cmd, check=True, capture_output=True)

    def total(self) -> int:
        """Everything counted so far (the server must have exited, writing its counts)."""
        return callgrind_total(self.out)


def callgrind_total(out: Path) -> int:
    """The instructions a callgrind output file counted in all."""
    totals = [line for line in out.read_text().splitlines() if line[:7] == "totals:"]
    return int(totals[-1].split()[1])


def main_thread_us(client: Any) -> float:
    cpu = client.info("cpu")
    return (cpu["used_cpu_sys_main_thread"] + cpu["used_cpu_user_main_thread"]) * 1e6


def stores_on(client: Any, compare: Path | None) -> dict[Any, Any]:
    """The stores the variants write with (keyed as ``VARIANTS``' third item), on ``client``."""
    stores = {
        False: EventStore(client, Settings.from_env({}, key_prefix="cost")),
        True: EventStore(client, MainWindowOnly.from_env({}, key_prefix="cost")),
    }
    if compare:
        stores[f"all ({compare})"] = checkout_store(compare.resolve(), client)
    return stores


def load(client: Any, stores: dict[Any, Any], variant: str, seed: int, args: Any) -> Iterator[None]:
    """Fill an empty Redis with ``args.batches`` batches of ``variant``, yield, then send the
    measured third as many more (the caller measures around the part after the yield)."""
    sections, papers_on, store_key = VARIANTS[variant]
    store = stores[store_key]
    users = [f"user{i:05d}" for i in range(args.users)]
    client.flushall()
    rnd = random.Random(seed)
    for _ in range(args.batches):
        ingest(
            store, sections, papers_on, rnd.choice(users), batch(rnd, time.time(), args.ts_spread)
        )
    yield
    for _ in range(measured(args)):
        ingest(
            store, sections, papers_on, rnd.choice(users), batch(rnd, time.time(), args.ts_spread)
        )


def measured(args: Any) -> int:
    return max(1, args.batches // 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--batches", type=int, default=1500, help="fill batches per round")
    parser.add_argument("--ts-spread", type=int, default=0, help="events up to this many s old")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--compare", type=Path, help="another checkout, measured as 'all (...)'")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count Redis's instructions per event instead (valgrind; one round, each variant "
        "on its own server; try --batches 300)",
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    if args.compare:
        compared = f"all ({args.compare})"
        VARIANTS[compared] = ("LUZT", True, compared)
        variants.append(compared)
    shape = f"{args.users} users, events up to {args.ts_spread} s old"
    events = measured(args) * 100
    if args.callgrind:
        for variant in variants:
            with tempfile.TemporaryDirectory(prefix="pf-callgrind-") as tmp:
                out = Path(tmp) / "callgrind.out"
                with private_redis(callgrind=out) as client:
                    counter = Instructions(client, out)
                    steps = load(client, stores_on(client, args.compare), variant, 0, args)
                    next(steps)
                    counter.count(True)
                    for _ in steps:
                        pass
                    counter.count(False)
                total = counter.total()
            print(f"  {variant:18s} {total / events:10,.0f} instructions/event", flush=True)
        print(f"(Redis, callgrind; {shape}, {args.batches} + {measured(args)} batches of 100)")
        return

    with private_redis() as client:
        stores = stores_on(client, args.compare)
        results: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.rounds):
            for variant in variants if r % 2 == 0 else variants[::-1]:
                steps = load(client, stores, variant, r, args)
                next(steps)
                before = main_thread_us(client)
                for _ in steps:
                    pass
                results[variant].append((main_thread_us(client) - before) / events)
                figure = results[variant][-1]
                print(f"round {r + 1} {variant:18s} {figure:6.1f} us/event", flush=True)
        print(
            f"\nRedis main-thread CPU per event, medians of {args.rounds} rounds "
            f"({shape}, {args.batches} + {measured(args)} batches of 100 per round):"
        )
        for variant in variants:
            print(f"  {variant:18s} {statistics.median(results[variant]):6.1f} us/event")


if __name__ == "__main__":
    main()
