"""The server's own work per ingested event: the API's events lane against the bare callable.

``bench/ingest.py`` shows that 100-event batches share the two cores between Redis and the
gunicorn workers, so the workers' CPU per event matters as much as Redis's. Under ``wrk`` that
CPU moves with the machine's mood (the same code measured 39 and 57 µs per event in two runs of
one session). This script measures it without HTTP or gunicorn: it calls the WSGI callables
(``server.wsgi:app``, whose events lane answers these requests, and ``bench/bare_wsgi.py``)
in this process with ``bench/ingest.lua``'s requests (100 events each unless ``--batch``;
Zipf-shaped papers titled "Paper <n>", a third clicks, 64 users) against a private
``redis-server``, and reports:

- ``instructions``: what the server process executes per event (callgrind, the measured calls
  only, imports and warm-up left out). This count repeats to a fraction of a percent whatever
  else the machine does, so two versions compare by it;
- ``redis``: what Redis executes per event for the same calls, counted the same way (a private
  ``redis-server`` of its own under callgrind for each count), so that work moved between the
  server and Redis shows on both sides;
- ``cpu``: the process's CPU time per event, medians of the rounds (noisy; for scale).

``--compare CHECKOUT`` measures another checkout (``git worktree add``) the same way, its own
``server``, ``recommender`` and ``bench`` modules imported from it.

    apt-get install -y valgrind
    .venv/bin/python bench/server_cost.py
    .venv/bin/python bench/server_cost.py --batch 1 --batches 400   # single events
    git worktree add /tmp/before <commit> && \\
        .venv/bin/python bench/server_cost.py --compare /tmp/before
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("api", "bare")


def body(rnd: random.Random, now: int, size: int = 100) -> bytes:
    """One request body as bench/ingest.lua sends it."""
    events = []
    for i in range(1, size + 1):
        paper = int(20000 * rnd.random() ** 3) + 1
        event_id = uuid.UUID(int=rnd.getrandbits(128), version=4)
        kind = "click" if i % 3 == 0 else "open"
        events.append(
            f'{{"id":"{event_id}","type":"{kind}","paper":{{"id":"arxiv:2401.{paper:05d}",'
            f'"title":"Paper {paper}"}},"ts":{now},"site":"arxiv.org"}}'
        )
    return ('{"events":[' + ",".join(events) + "]}").encode()


def environ(data: bytes, token: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/events",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
    }


def child(target: str, batches: int, size: int, rounds: int, toggle: bool) -> None:
    """Run in the checkout's directory with the bench's environment: load ``target`` and print
    its CPU µs per event by round; with ``toggle``, callgrind counts only the measured calls."""
    sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "bench")]
    import bare_wsgi  # the checkout's own (its Redis client and keys are the ones used)

    from recommender.users import create_user

    if target == "api":
        from server.wsgi import app
    else:
        app = bare_wsgi.app
    tokens = [create_user(bare_wsgi._redis, bare_wsgi._keys)[1] for _ in range(64)]
    rnd, now = random.Random(1), int(time.time())
    status: list[str] = []

    def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
        status.append(line)

    def load(bodies: list[bytes]) -> float:
        started = time.process_time()
        for i, data in enumerate(bodies):
            b"".join(app(environ(data, tokens[i % len(tokens)]), start_response))
            if not status.pop().startswith("202"):
                raise SystemExit(f"{target}: a batch was not accepted")
        return (time.process_time() - started) / (len(bodies) * size) * 1e6

    load([body(rnd, now, size) for _ in range(batches)])  # warm-up: caches, connections
    pid = str(os.getpid())
    for _ in range(rounds):
        bodies = [body(rnd, now, size) for _ in range(batches)]
        # the server process, and Redis when it runs under callgrind too (its pid in the env)
        counted = [pid, *filter(None, [os.environ.get("PF_COST_REDIS_PID")])] if toggle else []
        counting(counted, "on")
        cpu = load(bodies)
        counting(counted, "off")
        print(f"cpu {cpu:.2f}", flush=True)


def counting(pids: list[str], on: str) -> None:
    """Switch callgrind's counting ``on`` or ``off`` in ``pids`` (as ``Instructions.count`` of
    bench/ingest_redis.py does; the child cannot import it: it runs in the compared checkout)."""
    for pid in pids:
        subprocess.run(["callgrind_control", "-i", on, pid], check=True, capture_output=True)


def child_command(target: str, args: Any, rounds: int) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", target]
    return [
        *cmd,
        "--batches",
        str(args.batches),
        "--batch",
        str(args.batch),
        "--rounds",
        str(rounds),
    ]


def run_child(checkout: Path, target: str, cmd: list[str], env: dict[str, str]) -> str:
    run = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{checkout} {target} failed:\n{run.stderr[-3000:]}")
    return run.stdout


def cpu_time(checkout: Path, target: str, env: dict[str, str], args: Any) -> float:
    """The median CPU µs per event of ``target`` over ``args.rounds`` rounds."""
    stdout = run_child(checkout, target, child_command(target, args, args.rounds), env)
    return statistics.median(
        float(line.split()[1]) for line in stdout.splitlines() if line[:4] == "cpu "
    )


def instructions(
    checkout: Path, target: str, env: dict[str, str], args: Any
) -> tuple[float, float]:
    """Instructions per event of ``target``'s process and of Redis, for one round of calls, on
    a private Redis of its own (both under callgrind, counting only the measured calls)."""
    from bench.ingest_redis import Instructions, callgrind_total, private_redis

    events = args.batches * args.batch
    with tempfile.TemporaryDirectory(prefix="pf-server-cost-") as tmp:
        out, redis_out = Path(tmp) / "callgrind.out", Path(tmp) / "redis.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        cmd = [*valgrind, f"--callgrind-out-file={out}", *child_command(target, args, 1)]
        with private_redis(callgrind=redis_out) as client:
            counter = Instructions(client, redis_out)
            port = client.connection_pool.connection_kwargs["port"]
            env = {**env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
            env["PF_COST_REDIS_PID"] = counter.pid
            run_child(checkout, target, [*cmd, "--toggle"], env)
        return callgrind_total(out) / events, counter.total() / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40, help="requests per round")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of plain CPU time")
    parser.add_argument("--compare", type=Path, help="another checkout, measured beside this one")
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--toggle", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batches, args.batch, args.rounds, args.toggle)
        return
    sys.path.insert(0, str(ROOT))
    from bench.ingest_redis import private_redis

    checkouts = [ROOT] + ([args.compare.resolve()] if args.compare else [])
    grind = shutil.which("valgrind") is not None
    if not grind:
        print("valgrind not found: CPU time only (apt-get install -y valgrind)")
    with private_redis() as client:
        port = client.connection_pool.connection_kwargs["port"]
        env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "PAPERFEED_RATE_LIMITS": "0",
            "PAPERFEED_LOG_LEVEL": "WARNING",
            "PAPERFEED_RETENTION_DAYS": "30",
        }
        for n, (checkout, target) in enumerate((c, t) for c in checkouts for t in TARGETS):
            env["PAPERFEED_KEY_PREFIX"] = f"cost{n}"
            cpu = cpu_time(checkout, target, env, args)
            shown = "         -          -"
            if grind:
                server, redis_side = instructions(checkout, target, env, args)
                shown = f"{server:10,.0f} {redis_side:10,.0f}"
            line = f"{checkout!s:30s} {target:4s} {shown} instructions/event (server, redis)"
            print(f"{line}  server cpu {cpu:6.1f} µs/event", flush=True)
    print(
        f"\nper event of {args.batches} requests of {args.batch} events: instructions (callgrind, "
        f"one round; the server process, and Redis) and the server process's CPU time (median "
        f"of {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
