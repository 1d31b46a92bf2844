"""The job worker and the clock survive a Redis outage, and the nightly training runs once
Redis is back (real processes, a real Redis stopped and restarted on its AOF)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rq import Worker
from rq.registry import StartedJobRegistry

from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings
from recommender.store import Event, EventStore
from server.embedded_redis import EmbeddedRedis, free_port
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent


def last_success(redis, keys) -> float:
    value = redis.get(keys.train_last_success())
    return float(value) if value else 0.0


def paperfeed(role: str, env: dict[str, str], logs: Path) -> subprocess.Popen:
    """``paperfeed <role>`` as its own process, its output in ``logs/<role>.log``."""
    with open(logs / f"{role}.log", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", role],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
def test_worker_and_clock_survive_an_outage_and_train_after_it(tmp_path):
    server = EmbeddedRedis(tmp_path, port=free_port())
    server.start()
    prefix = f"pftest-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env({}, redis_url=server.url, key_prefix=prefix)
    keys = Keys(prefix)
    redis = connect(server.url, timeout_s=2)
    store = EventStore(redis, settings, keys)
    now = int(time.time())
    for u in range(30):  # two reading communities, enough for a model
        events = [
            Event(
                id=str(uuid.uuid4()),
                kind="open",
                paper_id=f"arxiv:2401.{(u % 2) * 50 + p + 1:05d}",
                ts=now - 3 * 86400 + u * 60 + p,
                site="arxiv.org",
            )
            for p in range(8)
        ]
        store.ingest(f"user{u:03d}", events)
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "PAPERFEED_KEY_PREFIX": prefix,
        "PAPERFEED_NIGHTLY_CRON": "* * * * *",
        "PAPERFEED_LOG_LEVEL": "INFO",
        "PAPERFEED_REDIS_TIMEOUT_S": "1",
    }
    procs = [paperfeed(role, env, tmp_path) for role in ("worker", "clock")]
    try:
        wait_for(
            lambda: last_success(redis, keys) > 0, 90, "the first training (catch-up)", tmp_path
        )
        first = last_success(redis, keys)
        # the job records its success before RQ marks it finished: stop Redis only after that,
        # or RQ keeps the job "started" and a new training waits out the dead job's lock
        # (2 x PAPERFEED_TRAIN_LOCK_TTL_S), longer than this test waits
        started = StartedJobRegistry(keys.train_queue(), connection=redis)
        wait_for(lambda: started.count == 0, 30, "RQ to mark the job finished", tmp_path)

        server.stop()
        time.sleep(8)  # the clock ticks and the worker polls against a dead Redis
        assert [p.poll() for p in procs] == [None, None], "a process died during the outage"

        server.start()  # same port and data directory
        redis = connect(server.url, timeout_s=2)
        wait_for(
            lambda: last_success(redis, keys) > first, 150, "a training after the outage", tmp_path
        )
        assert [p.poll() for p in procs] == [None, None]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()


@pytest.mark.slow
def test_worker_started_before_redis_waits_for_it_and_stops_on_sigterm(tmp_path):
    """RQ's worker quits when Redis is away at start (or anywhere but its wait for a job);
    ``paperfeed worker`` starts a new one until Redis answers."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "PAPERFEED_KEY_PREFIX": f"pftest-{uuid.uuid4().hex[:8]}",
        "PAPERFEED_LOG_LEVEL": "INFO",
        "PAPERFEED_REDIS_TIMEOUT_S": "1",
    }
    proc = paperfeed("worker", env, tmp_path)
    server = EmbeddedRedis(tmp_path, port=port)
    try:
        time.sleep(3)
        assert proc.poll() is None, "the worker quit while Redis was away"
        server.start()
        redis = connect(server.url, timeout_s=2)
        wait_for(
            lambda: len(Worker.all(connection=redis)) == 1, 30, "the worker to register", tmp_path
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
