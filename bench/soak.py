"""Soak: a bounded mixed load for ``--minutes`` against ``paperfeed up`` (web, worker, clock,
embedded Redis), with a retrain and a model switch in the middle, sampling every process's
resident memory. It prints the error count, request counts and latencies, and each process's
memory at the start and end of the measured period with its linear trend (MB per 10 minutes);
``--markdown`` prints the same as a table for ``docs/reliability.md``.

    .venv/bin/python bench/soak.py --minutes 10 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.embedded_redis import free_port  # noqa: E402

ADMIN = "soak-admin-token"


def request(method: str, url: str, token: str | None = None, body: object = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    except OSError:
        payload, status = b"", 0
    return status, payload, (time.perf_counter() - started) * 1000


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_tree(root: int) -> dict[int, str]:
    """pid -> a stable role name for ``paperfeed up`` and everything below it."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True)
    children = defaultdict(list)
    args = {}
    for line in out.stdout.splitlines():
        pid, ppid, cmd = line.split(None, 2)
        children[int(ppid)].append(int(pid))
        args[int(pid)] = cmd
    roles, stack = {}, [root]
    while stack:
        pid = stack.pop()
        cmd = args.get(pid, "")
        if "redis-server" in cmd:
            roles[pid] = "redis"
        elif "gunicorn" in cmd:
            roles[pid] = (
                "web-master"
                if pid in children and any("gunicorn" in args.get(c, "") for c in children[pid])
                else f"web-worker-{pid}"
            )
        elif "server.cli worker" in cmd or ("rq" in cmd and "worker" in cmd):
            roles[pid] = "worker" if "worker" not in roles.values() else f"worker-{pid}"
        elif "server.cli clock" in cmd:
            roles[pid] = "clock"
        elif pid == root:
            roles[pid] = "up"
        stack.extend(children.get(pid, []))
    return roles


def slope_per_10min(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 600 if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    seconds = args.minutes * 60
    data_dir = Path(tempfile.mkdtemp(prefix="pf-soak-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        PAPERFEED_DATA_DIR=str(data_dir),
        PORT=str(port),
        PAPERFEED_ADMIN_TOKEN=ADMIN,
        PAPERFEED_RATE_LIMITS="0",
        PAPERFEED_LOG_LEVEL="WARNING",
        WEB_CONCURRENCY="2",
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            if request("GET", f"{base}/readyz")[0] == 200:
                break
            time.sleep(0.1)
        tokens = [
            json.loads(request("POST", f"{base}/v1/users")[1])["token"] for _ in range(args.users)
        ]
        # a community structure so the model has something to learn
        papers = [f"arxiv:2501.{i:05d}" for i in range(1, 2001)]
        stop = threading.Event()
        stats: dict[str, list[float]] = defaultdict(list)
        statuses: Counter = Counter()
        lock = threading.Lock()

        def load(worker: int) -> None:
            rng = random.Random(worker)
            while not stop.is_set():
                token = rng.choice(tokens)
                community = tokens.index(token) % 4
                if rng.random() < 0.7:
                    batch = [
                        {
                            "id": str(uuid.uuid4()),
                            "type": rng.choice(["open", "click"]),
                            "paper": {
                                "id": papers[community * 500 + int(500 * rng.random() ** 2)],
                                "title": "Soak paper",
                            },
                            "ts": int(time.time()),
                            "site": "arxiv.org",
                        }
                        for _ in range(rng.choice([1, 1, 5, 20]))
                    ]
                    status, _, ms = request("POST", f"{base}/v1/events", token, {"events": batch})
                    kind = "events"
                else:
                    status, _, ms = request("GET", f"{base}/v1/recommendations?limit=20", token)
                    kind = "recommendations"
                with lock:
                    stats[kind].append(ms)
                    statuses[(kind, status)] += 1
                time.sleep(0.02)

        threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
        start = time.monotonic()
        for t in threads:
            t.start()
        memory: dict[str, list[tuple[float, float]]] = defaultdict(list)
        milestones = []
        retrains = 0
        while (elapsed := time.monotonic() - start) < seconds:
            for pid, role in process_tree(up.pid).items():
                mb = rss_mb(pid)
                if mb is not None:
                    memory[role].append((elapsed, mb))
            if retrains == 0 and elapsed > seconds * 0.4:
                status, body, _ = request("POST", f"{base}/v1/admin/retrain", ADMIN)
                milestones.append(f"t={elapsed:.0f}s retrain -> {status} {body[:80]!r}")
                retrains += 1
            if retrains == 1 and elapsed > seconds * 0.6:
                status, body, _ = request("GET", f"{base}/v1/admin/models", ADMIN)
                models = json.loads(body) if status == 200 else {}
                versions = [m.get("version") for m in models.get("versions", [])]
                milestones.append(f"t={elapsed:.0f}s models: {versions}")
                if versions:
                    status, _, _ = request(
                        "POST", f"{base}/v1/admin/models/{versions[-1]}/activate", ADMIN
                    )
                    milestones.append(f"t={elapsed:.0f}s activate {versions[-1]} -> {status}")
                retrains += 1
            time.sleep(5)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
        shutil.rmtree(data_dir, ignore_errors=True)

    errors = sum(n for (kind, status), n in statuses.items() if status >= 500 or status == 0)
    rows = []
    for kind, values in sorted(stats.items()):
        values.sort()
        rows.append(
            (
                kind,
                len(values),
                values[len(values) // 2],
                values[min(len(values) - 1, int(len(values) * 0.99))],
            )
        )
    mem_rows = []
    for role, points in sorted(memory.items()):
        # after the model switch (t >= 65 %): a new model legitimately grows the web workers
        warm = [p for p in points if p[0] >= seconds * 0.65]
        if not warm:
            continue
        mem_rows.append(
            (role, warm[0][1], warm[-1][1], max(p[1] for p in warm), slope_per_10min(warm))
        )
    print("\n".join(milestones))
    print(f"status counts: {dict(statuses)}")
    print(f"errors (5xx or no answer): {errors}")
    if args.markdown:
        print("\n| requests | count | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
        for kind, n, p50, p99 in rows:
            print(f"| {kind} | {n} | {p50:.1f} | {p99:.1f} |")
        print("\nmemory after the model switch (65 % to 100 % of the run):")
        print("\n| process | RSS start MB | RSS end MB | RSS max MB | trend MB / 10 min |")
        print("| --- | --- | --- | --- | --- |")
        for role, first, last, peak, slope in mem_rows:
            print(f"| {role} | {first:.1f} | {last:.1f} | {peak:.1f} | {slope:+.2f} |")
    else:
        for kind, n, p50, p99 in rows:
            print(f"{kind:16} n={n:6} p50={p50:7.1f} ms p99={p99:7.1f} ms")
        for role, first, last, peak, slope in mem_rows:
            print(
                f"{role:22} RSS {first:7.1f} -> {last:7.1f} MB (max {peak:7.1f}), "
                f"trend {slope:+.2f} MB/10 min"
            )
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
