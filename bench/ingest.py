"""Ingestion benchmark: the real API under gunicorn against a bare WSGI ceiling.

Starts an embedded Redis (AOF, fsync before every reply as ``paperfeed up`` runs it, or
``--appendfsync everysec``), registers users, then loads each server in turn with ``wrk``
(concurrent keep-alive connections, fresh event ids on every request) for single events and
100-event batches, and prints events/s and
latency percentiles for both, interleaved and repeated so the medians can be compared side by
side. Needs ``wrk`` (``apt-get install wrk``).

Beside throughput and latency it reports where the CPU went during each load (Linux ``/proc``):
microseconds of CPU per event in the server under test (gunicorn master and workers), Redis
(its own process; apart from it, ``fork``: the forked children that rewrite its AOF) and wrk,
and the rest of the machine's busy time (``other``: whatever else ran meanwhile, such as another
user's jobs on a shared machine). On two cores the sum bounds the rate: ``c`` µs of CPU per
event, all processes together, allow at most ``2e6 / c`` events/s, and Redis, which runs
commands on one thread, at most ``1e6 / redis``. It also shows how wrk's keep-alive connections
landed on the two workers (``11/5``): a worker holding most of them is bound by its own GIL
while the other idles. gunicorn's workers race to accept wrk's connections, and left alone one
of them often takes all 16, which decides a single-event round more than the code under test
does; so each worker is capped at ``--worker-connections`` (gunicorn's setting, 12 by default,
the same for every server; 0 leaves gunicorn's default of 1,000), and each serves at least 4.

Every event of a round carries the same timestamp and 64 users send them all, unless
``--ts-spread`` (events dated up to that many seconds back, as an extension's queue sends them)
and ``--users`` say otherwise.

    .venv/bin/python bench/ingest.py --seconds 8 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) used by ``pid``; with ``children``, plus its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` (with reaped children) and of its live children (gunicorn)."""
    total = process_cpu_s(pid, children=True)
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return total + sum(process_cpu_s(int(kid), children=True) for kid in kids)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores: not idle, not waiting on I/O)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


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


def connection_split(port: int) -> str:
    """How the load's keep-alive connections are spread over the server's workers ("11/5"): a
    worker holding most of them saturates its own core (one GIL) while the other idles."""
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return "/".join(str(n) for n in sorted(counts.values(), reverse=True)) or "?"


def run_wrk(
    port: int,
    batch: int,
    tokens_file: Path,
    seconds: int,
    connections: int,
    server_pid: int,
    redis_pid: int,
    ts_spread: int = 0,
) -> dict:
    env = {
        **os.environ,
        "BATCH": str(batch),
        "TOKENS_FILE": str(tokens_file),
        "NOW": str(int(time.time())),
        "SPREAD": str(ts_spread),
    }
    before = (
        tree_cpu_s(server_pid),
        process_cpu_s(redis_pid),
        tree_cpu_s(redis_pid) - process_cpu_s(redis_pid),
        resource.getrusage(resource.RUSAGE_CHILDREN),
        machine_busy_s(),
        time.monotonic(),
    )
    wrk = subprocess.Popen(
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
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(seconds / 2)
    split = connection_split(port)
    out = wrk.communicate()[0]
    if wrk.returncode:
        raise RuntimeError(f"wrk failed: {out}")
    wrk_usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk: the only child reaped
    cpu = {
        "server": tree_cpu_s(server_pid) - before[0],
        "redis": process_cpu_s(redis_pid) - before[1],
        # Redis's forked children (AOF rewrites, snapshots) run beside its command thread
        "fork": max(0.0, tree_cpu_s(redis_pid) - process_cpu_s(redis_pid) - before[2]),
        "wrk": (wrk_usage.ru_utime + wrk_usage.ru_stime)
        - (before[3].ru_utime + before[3].ru_stime),
    }
    cpu["other"] = max(0.0, machine_busy_s() - before[4] - sum(cpu.values()))
    elapsed = time.monotonic() - before[5]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        latency[pct] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    events = max(1, requests * batch)
    return {
        "events_per_s": rps * batch,
        "rps": rps,
        **{f"cpu_{name}_us": seconds_ * 1e6 / events for name, seconds_ in cpu.items()},
        "busy": (sum(cpu.values())) / elapsed,
        "split": split,
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
    parser.add_argument(
        "--worker-connections",
        type=int,
        default=12,
        help="most connections one gunicorn worker holds (0: gunicorn's default)",
    )
    parser.add_argument("--users", type=int, default=64, help="users sending the events")
    parser.add_argument(
        "--appendfsync", default="always", choices=("always", "everysec"), help="the AOF's fsync"
    )
    parser.add_argument(
        "--ts-spread",
        type=int,
        default=0,
        help="date each event up to this many seconds before it is sent (0: all at the start)",
    )
    parser.add_argument(
        "--flask-floor",
        action="store_true",
        help="also load bench/flask_floor.py: the bare callable's work in a minimal Flask route",
    )
    args = parser.parse_args()
    servers = dict(SERVERS)
    if args.flask_floor:
        servers["flask"] = "bench.flask_floor:app"
    if not shutil.which("wrk"):
        print("bench/ingest.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    data_dir = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    redis_server = EmbeddedRedis(data_dir, appendfsync=args.appendfsync)
    url = redis_server.start()
    prefix = "pfbench"
    redis = connect(url)
    keys = Keys(prefix)
    tokens_file = data_dir / "tokens.txt"
    tokens_file.write_text("".join(create_user(redis, keys)[1] + "\n" for _ in range(args.users)))
    env = {
        **os.environ,
        "REDIS_URL": url,
        "PAPERFEED_KEY_PREFIX": prefix,
        "PAPERFEED_RATE_LIMITS": "0",
        "WEB_CONCURRENCY": str(args.workers),
        "PAPERFEED_LOG_LEVEL": "WARNING",
        "PAPERFEED_RETENTION_DAYS": "30",
    }
    if args.worker_connections:
        env["GUNICORN_CMD_ARGS"] = f"--worker-connections {args.worker_connections}"
    results: dict[tuple[str, int], list[dict]] = {}
    procs = {}
    redis_pid = redis_server.process.pid if redis_server.process else 0
    try:
        for name, target in servers.items():
            port = free_port()
            procs[name] = (start_gunicorn(target, port, env), port)
        for round_no in range(args.rounds):
            for batch in (1, 100):
                for name in servers:
                    proc, port = procs[name]
                    r = run_wrk(
                        port,
                        batch,
                        tokens_file,
                        args.seconds,
                        args.connections,
                        server_pid=proc.pid,
                        redis_pid=redis_pid,
                        ts_spread=args.ts_spread,
                    )
                    results.setdefault((name, batch), []).append(r)
                    print(
                        f"round {round_no + 1} {name:5} batch={batch:3}: "
                        f"{r['events_per_s']:9.0f} events/s  p50 {r['p50_ms']:6.2f} ms  "
                        f"p99 {r['p99_ms']:6.2f} ms  non-2xx {r['non2xx']}  "
                        f"CPU us/event: server {r['cpu_server_us']:.1f} "
                        f"redis {r['cpu_redis_us']:.1f} (+fork {r['cpu_fork_us']:.1f}) "
                        f"wrk {r['cpu_wrk_us']:.1f} "
                        f"other {r['cpu_other_us']:.1f} ({r['busy']:.2f} cores busy; "
                        f"connections per worker {r['split']})",
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
        f"connections, {args.workers} gunicorn workers x 4 threads (at most "
        f"{args.worker_connections or 1000} connections each), 2 cores shared with wrk and "
        f"Redis; {args.users} users, events dated up to {args.ts_spread} s back; "
        f"{stream_len} events in the log at the end"
    )
    print(
        f"{'batch':>5} {'server':>6} {'events/s':>10} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'of ceiling':>10} | CPU us/event: {'server':>6} {'redis':>6} {'fork':>5} {'wrk':>5}"
        f" {'other':>6} {'busy':>5} | connections per worker, by round"
    )
    for batch in (1, 100):
        ceiling = statistics.median(r["events_per_s"] for r in results[("bare", batch)])
        for name in servers:
            rows = results[(name, batch)]

            def med(field: str, rows: list[dict] = rows) -> float:
                return statistics.median(r[field] for r in rows)

            eps = med("events_per_s")
            print(
                f"{batch:>5} {name:>6} {eps:>10.0f} {med('p50_ms'):>7.2f} {med('p99_ms'):>7.2f}"
                f" {eps / ceiling:>10.0%} |               {med('cpu_server_us'):>6.1f}"
                f" {med('cpu_redis_us'):>6.1f} {med('cpu_fork_us'):>5.1f} {med('cpu_wrk_us'):>5.1f}"
                f" {med('cpu_other_us'):>6.1f} {med('busy'):>5.2f} | "
                + " ".join(r["split"] for r in rows)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
