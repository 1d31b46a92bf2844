"""``paperfeed worker``: run an RQ worker for the co-reading and training queues (the Procfile's
``worker:``).

RQ's worker waits out a Redis outage while it waits for a job, but quits when Redis goes away
at another moment (finishing a job, its maintenance, its heartbeat). This command then starts a
new worker after a pause, for as long as Redis stays away, and stops only when asked to (SIGTERM
or SIGINT) or, with ``--burst``, when the queue is empty.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

import redis
from rq import Worker

from recommender import jobs
from recommender.settings import Settings

NAME = "worker"
HELP = (
    "Run a job worker: executes queued trainings (`paperfeed retrain --enqueue`, the clock) "
    "and co-reading rebuilds."
)
RESTART_S = 5.0  # pause before a new worker replaces one that quit on a Redis error

log = logging.getLogger(__name__)


class _Worker(Worker):
    """RQ's worker, remembering whether a signal asked it to stop (else it quit on an error)."""

    stop_asked = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_asked = True
        super().request_stop(signum, frame)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``paperfeed worker``."""
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Work the queue until stopped (or empty with ``--burst``)."""
    conn = jobs.connect_queue(settings)
    while True:
        try:  # RQ's worker reads Redis when it is made, starts and tears down
            # co-reading rebuilds are short and frequent: taken before any waiting training
            queues = [jobs.coread_queue(conn, settings), jobs.train_queue(conn, settings)]
            worker = _Worker(queues, connection=conn)
            worker.work(burst=args.burst, with_scheduler=False, logging_level=settings.log_level)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("worker: Redis unreachable (%s)", type(exc).__name__)
        else:
            if args.burst or worker.stop_asked:
                return 0
        log.warning("worker: its loop ended on an error; a new worker starts in %.0f s", RESTART_S)
        if _pause(RESTART_S):
            return 0


def _pause(seconds: float) -> bool:
    """Sleep ``seconds``; whether SIGTERM or SIGINT arrived meanwhile (then stop)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        return stop.wait(seconds)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
