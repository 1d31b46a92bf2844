"""``paperfeed worker``: run an RQ worker for the training queue (the Procfile's ``worker:``)."""

from __future__ import annotations

import argparse

from rq import Worker

from recommender import jobs
from recommender.settings import Settings

NAME = "worker"
HELP = "Run a job worker: executes queued trainings (`paperfeed retrain --enqueue`, the clock)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``paperfeed worker``."""
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Work the queue until stopped (or empty with ``--burst``)."""
    conn = jobs.connect_queue(settings)
    worker = Worker([jobs.train_queue(conn, settings)], connection=conn)
    worker.work(burst=args.burst, with_scheduler=False, logging_level=settings.log_level)
    return 0
