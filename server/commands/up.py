"""``paperfeed up``: run every process of the service locally, as the Procfile lists them.

With no ``REDIS_URL`` it first starts an embedded Redis server (data persisted with AOF under
``PAPERFEED_DATA_DIR``, one server per data directory) and hands its address to the processes.
It stops everything, Redis last, on Ctrl-C / SIGTERM / SIGHUP or when any process exits. On
Linux every child also gets SIGTERM if ``up`` itself dies (``kill -9``, the OOM killer), so
none is left running, holding the port or the data directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from recommender.settings import Settings
from server.commands import _available
from server.embedded_redis import EmbeddedRedis, die_with_parent

NAME = "up"
HELP = "Run the whole service locally (web, worker, clock); embedded Redis if no REDIS_URL."

log = logging.getLogger(__name__)


def process_table() -> dict[str, list[str]]:
    """Process type -> command line; the Procfile lists the same types."""
    py = sys.executable
    table = {
        "web": [py, "-m", "gunicorn", "-c", "python:server.gunicorn_conf", "server.wsgi:app"],
    }
    for name in ("worker", "clock"):
        if _available(name):
            table[name] = [py, "-m", "server.cli", name]
    return table


def _log_tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a log file, under a line that names it."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        tail = [f"(unreadable: {exc})"]
    return "\n".join([f"paperfeed: the end of {path}:", *tail])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only", default="", help="Comma-separated process types to run (default: all)."
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    env = dict(os.environ)
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(
            settings.data_dir, appendfsync=settings.redis_appendfsync, die_with_parent=True
        )
        try:
            env["REDIS_URL"] = embedded.start()
        except (RuntimeError, OSError) as exc:  # held by another server; no redis-server; a
            print(f"paperfeed up: {exc}", file=sys.stderr)  # data directory it cannot make
            return 1
        print(
            f"paperfeed: embedded Redis at {env['REDIS_URL']} (data in {embedded.dir})", flush=True
        )
    metrics_dir = Path(settings.data_dir, "prometheus").resolve()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    wanted = {p for p in args.only.split(",") if p}
    table = {k: v for k, v in process_table().items() if not wanted or k in wanted}
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    status = 0
    try:
        for name, cmd in table.items():
            children[name] = subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent())
            print(f"paperfeed: started {name} (pid {children[name].pid})", flush=True)
        print(f"paperfeed: serving on http://{settings.host}:{settings.port}", flush=True)
        # the embedded Redis is watched too: if it dies (a full disk ends it when the AOF is
        # fsynced before every reply), every request would answer 503 until someone noticed
        watched = {**children, **({"redis": embedded.process} if embedded else {})}
        while not stopping:
            exited = [n for n, p in watched.items() if p.poll() is not None]
            if exited:
                name = exited[0]
                code = watched[name].returncode
                status = code if code > 0 else 1  # killed by a signal (< 0) or not: failure
                print(f"paperfeed: {name} exited with {code}; stopping", flush=True)
                if name == "redis" and embedded:
                    print(_log_tail(embedded.dir / "redis.log"), file=sys.stderr, flush=True)
                break
            time.sleep(0.2)
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 25
        for proc in children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if embedded:
            embedded.stop()
        print("paperfeed: stopped", flush=True)
    return status
