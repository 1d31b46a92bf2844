"""``paperfeed clock``: enqueue the nightly training (``PAPERFEED_NIGHTLY_CRON``, UTC).

On start it catches up a run missed while it was down (see :mod:`recommender.clock`), and
carries an earlier version's trending views over (:meth:`EventStore.migrate_legacy_views`).
Run one or more (they do not enqueue the same night twice) next to ``paperfeed worker``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from redis.exceptions import RedisError

from recommender import clock, jobs
from recommender.redisconn import connect
from recommender.settings import Settings, SettingsError
from recommender.store import EventStore

log = logging.getLogger(__name__)

NAME = "clock"
HELP = "Run the scheduler that enqueues the nightly training (catches up a missed night)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``paperfeed clock``."""
    parser.add_argument(
        "--once", action="store_true", help="check once (enqueue if due), then exit"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Tick until SIGTERM / SIGINT (or once with ``--once``)."""
    try:
        clock.check_cron(settings.nightly_cron)
    except SettingsError as exc:
        print(f"paperfeed clock: {exc}", file=sys.stderr)
        return 2
    conn = jobs.connect_queue(settings)
    redis = connect(settings.redis_url or "", timeout_s=settings.redis_timeout_s)
    try:
        carried = EventStore(redis, settings).migrate_legacy_views()
        if carried:
            log.info("carried %d papers' trending views over from an earlier version", carried)
    except RedisError as exc:  # the next start tries again
        log.warning("carrying earlier trending views over failed: %s", exc)
    if args.once:
        job_id = clock.tick(conn, settings, time.time(), redis=redis)
        print(job_id or "not due")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    clock.run(conn, settings, stop=stop, redis=redis)
    return 0
