"""``paperfeed retrain``: train the recommender now, in the foreground or on the job queue.

In the foreground the run takes the same single-flight lock as the worker's jobs (a second run
is refused with the running job's id) and shows a tqdm progress bar; ``--enqueue`` only puts a
job on the queue for ``paperfeed worker`` and prints its id.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from recommender import jobs, training
from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings

NAME = "retrain"
HELP = "Retrain the recommender now (foreground with a progress bar, or --enqueue)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``paperfeed retrain``."""
    parser.add_argument(
        "--enqueue",
        action="store_true",
        help="put a job on the queue for `paperfeed worker` and print its id",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Train (or enqueue); 0 on success, 1 when the training failed, 3 when one is running."""
    if not settings.redis_url:
        print("paperfeed retrain: REDIS_URL is not set", file=sys.stderr)
        return 2
    if args.enqueue:
        conn = jobs.connect_queue(settings)
        data = connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
        job_id, created = jobs.trigger(conn, settings, redis=data)
        print(job_id if created else f"{job_id} (already queued or running)")
        return 0
    redis = connect(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 60.0))
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    job_id = f"cli-{socket.gethostname()}-{os.getpid()}"
    bar = None
    if not args.no_progress and not args.json:
        from tqdm import tqdm

        bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def progress(stage: str, fraction: float) -> None:
        if bar is not None:
            bar.set_description(stage)
            bar.update(round(fraction * 100) - bar.n)

    try:
        with training.training_lock(redis, keys, settings.train_lock_ttl_s, job_id):
            report = training.run_training(redis, settings, keys=keys, progress=progress)
    except training.TrainingBusy as busy:
        print(f"paperfeed retrain: a training is already running ({busy.job_id})", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"paperfeed retrain: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    """A few lines: version, whether it serves, metrics of the three contenders."""
    lines = [
        f"model {report['version']} "
        f"({'activated' if report['activated'] else 'stored, not activated'}: {report['gate']})",
        f"{report['events']} events, {report['users']} users, {report['papers']} papers, "
        f"{report['duration_s']:.1f}s",
    ]
    for name in ("model", "active", "trending"):
        m = report["metrics"].get(name)
        if m:
            lines.append(
                f"  {name:<9} recall@20 {_f(m['recall@20'])}  ndcg@20 "
                f"{_f(m['ndcg@20'])}  ({m['users']} users)"
            )
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "   -  " if value is None else f"{value:.4f}"
