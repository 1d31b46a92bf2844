"""Durability under faults: no acknowledged event is lost or stored twice.

A steady, bounded load of event posts (client threads, each its own user, fresh event ids, at
most ``rate`` requests per second each) runs against gunicorn on a Redis with AOF on, while
the gunicorn workers are killed with SIGKILL and Redis itself is killed with SIGKILL and
restarted on the same data directory. Clients retry whatever failed with the same event ids,
as the extension does. Afterwards the event log is read back: every event that got a 202 must
be in it exactly once.

    .venv/bin/python bench/fault.py --seconds 20

prints ``acknowledged``, ``present``, ``lost`` (must be 0) and ``duplicated`` (must be 0).
Redis fsyncs its AOF before every reply, as ``paperfeed up`` runs it; ``--appendfsync everysec``
runs it the way it ran before 2026-12-07, and ``--disk-load`` keeps the disk busy meanwhile,
which is what makes ``everysec`` lose acknowledged events.
``tests/test_durability.py`` runs the same function.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommender.keys import Keys  # noqa: E402
from recommender.redisconn import connect  # noqa: E402
from recommender.users import create_user  # noqa: E402
from server.embedded_redis import EmbeddedRedis, free_port  # noqa: E402


def _post(url: str, token: str, events: list[dict[str, Any]]) -> int:
    body = json.dumps({"events": events}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # connection refused / reset / timed out: retry


def _worker_pids(master_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def run(
    seconds: float = 20.0,
    clients: int = 6,
    rate: float = 20.0,
    log=print,
    appendfsync: str = "always",
) -> dict[str, int]:
    """Run the fault scenario; returns the counts."""
    data_dir = Path(tempfile.mkdtemp(prefix="pf-fault-"))
    redis_server = EmbeddedRedis(data_dir, appendfsync=appendfsync)
    redis_url = redis_server.start()
    prefix = "pffault"
    keys = Keys(prefix)
    redis = connect(redis_url, timeout_s=2)
    tokens = [create_user(redis, keys) for _ in range(clients)]
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PAPERFEED_KEY_PREFIX": prefix,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PAPERFEED_RATE_LIMITS": "0",
        "PAPERFEED_LOG_LEVEL": "WARNING",
        "PAPERFEED_REDIS_TIMEOUT_S": "1",
    }
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:server.gunicorn_conf", "server.wsgi:app"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/events"
    acknowledged: dict[str, set[str]] = {uid: set() for uid, _ in tokens}
    stop = threading.Event()
    retries = Counter()

    def client(user_id: str, token: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            events = [
                {
                    "id": str(uuid.uuid4()),
                    "type": "open",
                    "paper": {"id": f"arxiv:2401.{(n * 7 + i) % 9000 + 1:05d}"},
                    "ts": int(time.time()),
                    "site": "arxiv.org",
                }
                for i in range(1 + n % 4)
            ]
            delay = 0.05
            while True:  # retry the same batch (same ids) until acknowledged
                status = _post(url, token, events)
                if status == 202:
                    acknowledged[user_id].update(e["id"] for e in events)
                    break
                retries[status] += 1
                if stop.is_set() and time.monotonic() > deadline + 30:
                    return  # give up only long after the load ended
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            time.sleep(1.0 / rate)

    # wait for the web server
    for _ in range(200):
        if _post(url, tokens[0][1], []) in (422, 202):
            break
        time.sleep(0.1)
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=t, daemon=True) for t in tokens]
    for t in threads:
        t.start()
    faults = []
    schedule = [
        (0.2, "kill a web worker"),
        (0.4, "kill redis"),
        (0.55, "kill a web worker"),
        (0.7, "kill both web workers"),
        (0.85, "kill redis"),
    ]
    started = time.monotonic()
    for fraction, what in schedule:
        time.sleep(max(0.0, started + fraction * seconds - time.monotonic()))
        if "redis" in what:
            redis_server.process.send_signal(signal.SIGKILL)
            redis_server.process.wait()
            time.sleep(1.0)
            redis_server.start()
        else:
            pids = _worker_pids(gunicorn.pid)
            for pid in pids[: 2 if "both" in what else 1]:
                os.kill(pid, signal.SIGKILL)
        faults.append(what)
        log(f"t={time.monotonic() - started:5.1f}s  fault: {what}")
    time.sleep(max(0.0, deadline - time.monotonic()))
    stop.set()
    for t in threads:
        t.join(60)

    redis = connect(redis_url, timeout_s=5)
    in_log = Counter()
    for stream in keys.streams():
        for _, fields in redis.xrange(stream):
            in_log[(fields["u"], fields["e"])] += 1
    acked = {(uid, eid) for uid, ids in acknowledged.items() for eid in ids}
    present = sum(1 for pair in acked if in_log[pair] >= 1)
    result = {
        "acknowledged": len(acked),
        "present": present,
        "lost": len(acked) - present,
        "duplicated": sum(1 for count in in_log.values() if count > 1),
        "in_log": sum(in_log.values()),
        "failed_attempts": sum(retries.values()),
        "faults": len(faults),
    }
    gunicorn.send_signal(signal.SIGTERM)
    gunicorn.wait(30)
    redis_server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    log(f"failed attempts by status (0 = no connection): {dict(retries)}")
    return result


@contextlib.contextmanager
def disk_load(directory: Path) -> Iterator[None]:
    """A thread that writes 128 MB into a file of ``directory`` and fsyncs it, over and over,
    until the block exits: Redis's own fsyncs then take long, as on a busy host's disk."""
    done = threading.Event()

    def churn() -> None:
        path = directory / f"pf-disk-load-{os.getpid()}"
        chunk = os.urandom(16 << 20)
        with open(path, "wb") as out:
            while not done.is_set():
                for _ in range(8):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                out.seek(0)
        path.unlink()

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument(
        "--appendfsync", default="always", choices=("always", "everysec"), help="the AOF's fsync"
    )
    parser.add_argument(
        "--disk-load", action="store_true", help="meanwhile, keep the disk busy (slow fsyncs)"
    )
    args = parser.parse_args()
    load = disk_load(Path(tempfile.gettempdir())) if args.disk_load else contextlib.nullcontext()
    with load:
        result = run(args.seconds, args.clients, appendfsync=args.appendfsync)
    for name, value in result.items():
        print(f"{name:>16}: {value}")
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
