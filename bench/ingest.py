"""Ingestion benchmark: the real API under gunicorn against a bare WSGI ceiling.

Starts an embedded Redis (AOF, fsync every second, as ``paperfeed up`` runs it), registers
users, then loads each server in turn with ``wrk`` (concurrent keep-alive connections, fresh
event ids on every request) for single events and 100-event batches, and prints events/s and
latency percentiles for both, interleaved and repeated so the medians can be compared side by
side. Needs ``wrk`` (``apt-get install wrk``).

    .venv/bin/python bench/ingest.py --seconds 10 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender.keys import Keys  # noqa: E402
from recommender.redisconn import connect  # noqa: E402
from recommender.users import create_user  # noqa: E402
from server.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

SERVERS = {"api": "server.wsgi:app", "bare": "bench.bare_wsgi:app"}


def start_gunicorn(target: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:server.gunicorn_conf", target]
    proc = subprocess.Popen(
        cmd,
        env={**env, "PORT": str(port)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return proc  # it answers (404/405 is fine)
        except OSError:
            time.sleep(0.1)
            continue
        return proc
    proc.kill()
    raise RuntimeError(f"gunicorn {target} did not start")


def run_wrk(port: int, batch: int, tokens: list[str], seconds: int, connections: int) -> dict:
    env = {
        **os.environ,
        "BATCH": str(batch),
        "TOKENS": ",".join(tokens),
        "NOW": str(int(time.time())),
    }
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "ingest.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        latency[pct] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "events_per_s": rps * batch,
        "rps": rps,
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench/ingest.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    data_dir = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    redis_server = EmbeddedRedis(data_dir)
    url = redis_server.start()
    prefix = "pfbench"
    redis = connect(url)
    keys = Keys(prefix)
    tokens = [create_user(redis, keys)[1] for _ in range(64)]
    env = {
        **os.environ,
        "REDIS_URL": url,
        "PAPERFEED_KEY_PREFIX": prefix,
        "PAPERFEED_RATE_LIMITS": "0",
        "WEB_CONCURRENCY": str(args.workers),
        "PAPERFEED_LOG_LEVEL": "WARNING",
        "PAPERFEED_RETENTION_DAYS": "30",
    }
    results: dict[tuple[str, int], list[dict]] = {}
    procs = {}
    try:
        for name, target in SERVERS.items():
            port = free_port()
            procs[name] = (start_gunicorn(target, port, env), port)
        for round_no in range(args.rounds):
            for batch in (1, 100):
                for name in SERVERS:
                    _, port = procs[name]
                    r = run_wrk(port, batch, tokens, args.seconds, args.connections)
                    results.setdefault((name, batch), []).append(r)
                    print(
                        f"round {round_no + 1} {name:4} batch={batch:3}: "
                        f"{r['events_per_s']:9.0f} events/s  p50 {r['p50_ms']:6.2f} ms  "
                        f"p99 {r['p99_ms']:6.2f} ms  non-2xx {r['non2xx']}",
                        flush=True,
                    )
    finally:
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        stream_len = redis.xlen(keys.stream(0))
        redis_server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    print(
        f"\nmedians over {args.rounds} rounds of {args.seconds} s, {args.connections} "
        f"connections, {args.workers} gunicorn workers x 4 threads, 2 cores shared with "
        f"wrk and Redis; {stream_len} events in the log at the end"
    )
    print(
        f"{'batch':>5} {'server':>6} {'events/s':>10} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'of ceiling':>10}"
    )
    for batch in (1, 100):
        ceiling = statistics.median(r["events_per_s"] for r in results[("bare", batch)])
        for name in SERVERS:
            rows = results[(name, batch)]
            eps = statistics.median(r["events_per_s"] for r in rows)
            p50 = statistics.median(r["p50_ms"] for r in rows)
            p99 = statistics.median(r["p99_ms"] for r in rows)
            print(
                f"{batch:>5} {name:>6} {eps:>10.0f} {p50:>7.2f} {p99:>7.2f} {eps / ceiling:>10.0%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
