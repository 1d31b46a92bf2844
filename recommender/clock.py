"""The clock process: enqueue the nightly training, catch up a run missed while down, and keep
the co-reading table fresh.

Every ``tick`` the clock takes the latest scheduled time (``nightly_cron``, read in UTC) at or
before now, the *slot*. If no training succeeded since the slot (``Keys.train_last_success()``,
written by every successful run, nightly or manual), it triggers one with the deterministic job
id ``<prefix>-nightly-<slot>``. So:

- starting the clock after a missed 03:00 enqueues at once (catch-up);
- a restarted clock, or two clocks on two hosts, never enqueue the same slot twice (the job id
  exists, and :func:`recommender.jobs.trigger` claims the current job with ``SET NX``);
- a nightly job that failed is not retried in a loop: its id exists until the next slot;
- a manual retrain after the slot counts as the night's run;
- a slot whose time comes while the event log is empty (a fresh install) is skipped, once, with a
  line in the log, instead of a training that can only fail with a traceback; its daily email
  is still enqueued. The running clock does not come back to that slot when events arrive
  later that day (the next slot trains on them); a restarted clock checks again (catch-up).

Each tick also enqueues a rebuild of the co-reading table when the newest is
``coread_refresh_s`` old or an erasure marked it stale (:func:`recommender.coreadstore.due`);
:func:`recommender.jobs.enqueue_coread` keeps at most one waiting.

Why not ``rq.cron``: its ``CronScheduler`` reads cron expressions in the host's local time,
gives each enqueued job a random id (no de-duplication across restarts or hosts) and keeps its
schedule in memory only (no catch-up of a run missed while down). This loop is small and uses the
same ``croniter`` that ``rq.cron`` does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis as redis_lib
from croniter import croniter

from recommender import coreadstore, jobs
from recommender.keys import Keys
from recommender.settings import Settings, SettingsError

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0


def check_cron(cron: str) -> None:
    """Fail at start-up on a schedule croniter cannot read (SettingsError)."""
    if not croniter.is_valid(cron):
        raise SettingsError(f"PAPERFEED_NIGHTLY_CRON={cron!r} is not a cron expression")


def slot(cron: str, now: float) -> float:
    """The latest scheduled time at or before ``now`` (Unix seconds, cron in UTC)."""
    moment = datetime.fromtimestamp(now, UTC)
    if croniter.match(cron, moment) and moment.second == 0 and moment.microsecond == 0:
        return now
    return croniter(cron, moment).get_prev(float)


def next_slot(cron: str, now: float) -> float:
    """The first scheduled time after ``now``."""
    return croniter(cron, datetime.fromtimestamp(now, UTC)).get_next(float)


def nightly_job_id(settings: Settings, slot_time: float) -> str:
    stamp = datetime.fromtimestamp(slot_time, UTC).strftime("%Y%m%dT%H%MZ")
    return f"{settings.key_prefix}-nightly-{stamp}"


def coread_job_id(settings: Settings, now: float) -> str:
    """The id of a rebuild the clock enqueues at ``now`` (two clocks ticking together may both
    enqueue one; the second finds the table fresh and skips)."""
    return f"{settings.key_prefix}-coread-{int(now)}"


def last_success(redis: redis_lib.Redis, keys: Keys) -> float | None:
    value = redis.get(keys.train_last_success())
    return None if value is None else float(value)


def log_is_empty(redis: redis_lib.Redis, keys: Keys) -> bool:
    """Whether the event log holds no event at all (a fresh install, or everything expired)."""
    return all(redis.xlen(stream) == 0 for stream in keys.streams())


def tick(
    conn: redis_lib.Redis,
    settings: Settings,
    now: float,
    redis: redis_lib.Redis | None = None,
    empty_slots: set[float] | None = None,
) -> str | None:
    """Trigger the training of the current slot if it is due; the job id, or None if not due.

    ``conn`` is the queue's (undecoded) client, ``redis`` the data's (default: ``conn``).
    ``empty_slots`` (the running clock's memory): slots skipped because the log was empty when
    they came due, not triggered again; without it an empty log is not checked.
    """
    keys = Keys(settings.key_prefix, settings.stream_partitions)
    data = conn if redis is None else redis
    if coreadstore.due(data, keys, settings, now):
        jobs.enqueue_coread(conn, settings, job_id=coread_job_id(settings, now))
    due = slot(settings.nightly_cron, now)
    done = last_success(data, keys)
    if done is not None and done >= due:
        return None
    if empty_slots is not None:
        if due in empty_slots:
            return None
        if log_is_empty(data, keys):
            empty_slots.add(due)
            log.info(
                "no events yet: nothing to train for %s; the next training is at %s",
                _iso(due),
                _iso(next_slot(settings.nightly_cron, now)),
            )
            _enqueue_daily_email(conn, settings, due, None)
            return None
    job_id, created = jobs.trigger(conn, settings, job_id=nightly_job_id(settings, due), redis=data)
    if created:
        log.info("nightly training for %s enqueued as %s", _iso(due), job_id)
        _enqueue_daily_email(conn, settings, due, job_id)
    return job_id


def _enqueue_daily_email(
    conn: redis_lib.Redis, settings: Settings, due: float, job_id: str | None
) -> None:
    """The daily email follows the nightly training (when this server sends email at all)."""
    from recommender import digest

    try:
        digest.require_email(settings)
    except digest.EmailDisabled:
        return
    digest.enqueue_digest(conn, settings, day=digest.today(due), after=job_id)


def run(
    conn: redis_lib.Redis,
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    stop: threading.Event | None = None,
    redis: redis_lib.Redis | None = None,
) -> None:
    """Tick until ``stop`` is set: at start (catch-up), then at each slot (and every minute)."""
    check_cron(settings.nightly_cron)
    stop = stop or threading.Event()
    log.info("clock started: training on %r (UTC)", settings.nightly_cron)
    empty_slots: set[float] = set()
    while not stop.is_set():
        now = clock()
        try:
            tick(conn, settings, now, redis=redis, empty_slots=empty_slots)
        except redis_lib.exceptions.RedisError as exc:
            log.warning("clock tick failed: %s", exc)
        wait = min(
            max(next_slot(settings.nightly_cron, now) - clock(), 0.5),
            MAX_SLEEP_S,
            settings.coread_refresh_s,
        )
        stop.wait(wait)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()
