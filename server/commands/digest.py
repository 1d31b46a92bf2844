"""``paperfeed digest``: preview a subscriber's next daily email, or send today's emails.

``--preview USER_ID`` prints the headers and the text part of the email the user would get
next (it sends and records nothing); ``--send`` runs today's send in the foreground (at most one
email per subscriber and day, resuming a run that stopped midway) and prints its report;
``--enqueue`` puts that send on the job queue for ``paperfeed worker`` and prints the job id.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from recommender import digest, jobs
from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings, SettingsError

NAME = "digest"
HELP = "Preview a subscriber's daily email, or send today's emails (--send / --enqueue)."

PREVIEW_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``paperfeed digest``."""
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--preview", metavar="USER_ID", help="print this user's next email")
    action.add_argument("--send", action="store_true", help="send today's emails now")
    action.add_argument("--enqueue", action="store_true", help="queue today's send for a worker")
    parser.add_argument(
        "--day", type=_day, help="the day to send for, YYYY-MM-DD (default: today, UTC)"
    )


def _day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {value!r}") from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    """0 on success, 1 when sending failed, 2 on a configuration problem."""
    if not settings.redis_url:
        print("paperfeed digest: REDIS_URL is not set", file=sys.stderr)
        return 2
    try:
        digest.check_settings(settings)
        if not settings.secret_key:
            raise digest.EmailDisabled("PAPERFEED_SECRET_KEY is not set")
        if not args.preview:
            digest.require_email(settings)
    except (SettingsError, digest.EmailDisabled) as exc:
        print(f"paperfeed digest: {exc}", file=sys.stderr)
        return 2
    if args.enqueue:
        job_id, created = digest.enqueue_digest(jobs.connect_queue(settings), settings, args.day)
        print(job_id if created else f"{job_id} (already queued, running or done)")
        return 0
    redis = connect(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 30.0))
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    recommend = digest.make_recommend(redis, settings, keys)
    if args.preview:
        message = digest.preview(redis, settings, recommend, args.preview, keys=keys)
        if message is None:
            print(f"nothing new for {args.preview}: no email would be sent")
            return 0
        for name in PREVIEW_HEADERS:
            print(f"{name}: {message[name]}")
        print()
        print(message.get_body(("plain",)).get_content(), end="")
        return 0
    try:
        with digest.Mailer(settings) as mailer:
            report = digest.send_digests(
                redis, settings, recommend, mailer, keys=keys, day=args.day
            )
    except OSError as exc:  # smtplib's errors are OSErrors too
        print(f"paperfeed digest: sending stopped: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0
