"""Training as an RQ job: enqueue (single flight), run on a worker with progress, report status;
and the co-reading rebuild, a short job on a queue of its own that workers take first.

:func:`trigger` puts a training on the queue ``Keys.train_queue()`` unless one is queued or
running, in which case it returns that one's id: ``Keys.train_job()`` names the current job and
is claimed with ``SET NX``, so two triggers racing on two hosts enqueue one job. The worker side,
:func:`run_training_job`, takes the training lock (:func:`recommender.training.training_lock`),
writes progress into the job's meta (``{"stage", "fraction"}``, at most once a second) and
returns the training report, which RQ keeps as the job's result.

:func:`enqueue_coread` puts a rebuild of the co-reading table (:mod:`recommender.coreadstore`)
on ``Keys.coread_queue()`` unless one already waits there; :func:`run_coread_job` runs it.

RQ stores pickled jobs and needs a client that does not decode replies: :func:`connect_queue`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis as redis_lib
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus, get_current_job

from recommender import coreadstore, training
from recommender.keys import Keys
from recommender.redisconn import connect
from recommender.settings import Settings

log = logging.getLogger(__name__)

RESULT_TTL_S = 7 * 86400
COREAD_RESULT_TTL_S = 3600
_ALIVE = {
    JobStatus.QUEUED,
    JobStatus.DEFERRED,
    JobStatus.SCHEDULED,
    JobStatus.STARTED,
    JobStatus.CREATED,
}
_STATUS_NAMES = {
    JobStatus.STARTED: "running",
    JobStatus.FINISHED: "finished",
    JobStatus.FAILED: "failed",
    JobStatus.STOPPED: "failed",
    JobStatus.CANCELED: "failed",
}


def connect_queue(settings: Settings) -> redis_lib.Redis:
    """A client for the job queue (``queue_redis_url`` or ``redis_url``), undecoded, for RQ."""
    url = settings.queue_redis_url or settings.redis_url
    if not url:
        raise ValueError("REDIS_URL is not set")
    return connect(url, timeout_s=max(settings.redis_timeout_s, 30.0), decode_responses=False)


def train_queue(conn: redis_lib.Redis, settings: Settings) -> Queue:
    return Queue(_keys(settings).train_queue(), connection=conn)


def coread_queue(conn: redis_lib.Redis, settings: Settings) -> Queue:
    return Queue(_keys(settings).coread_queue(), connection=conn)


def _keys(settings: Settings) -> Keys:
    return Keys(settings.key_prefix, settings.stream_partitions)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def trigger(
    conn: redis_lib.Redis,
    settings: Settings,
    job_id: str | None = None,
    redis: redis_lib.Redis | None = None,
) -> tuple[str, bool]:
    """Enqueue a training unless one is queued or running: ``(job id, newly enqueued)``.

    ``conn`` is the queue's client; ``redis`` the data's (where the lock and ``train:job`` live;
    default: ``conn``, the usual single-Redis deployment). RQ's job keys are not under
    Paperfeed's prefix, so ids start with it. ``job_id`` (deterministic, e.g. the nightly
    slot's) is not enqueued twice: if a job with that id exists already, its id is returned.
    """
    keys = _keys(settings)
    data = conn if redis is None else redis
    job_id = job_id or f"{settings.key_prefix}-train-{uuid.uuid4().hex[:12]}"
    for _ in range(5):
        current = _text(data.get(keys.train_job()))
        if current is not None:
            if _alive(conn, data, keys, current, settings):
                return current, False
            _delete_if_equal(data, keys.train_job(), current)
            continue
        if Job.exists(job_id, connection=conn):
            return job_id, False
        if not data.set(keys.train_job(), job_id, nx=True, ex=settings.train_timeout_s):
            continue  # another trigger won the race: loop to return its job
        train_queue(conn, settings).enqueue_call(
            run_training_job,
            # the job is pickled into Redis: no secret it does not need travels with it
            kwargs={"settings": dataclasses.replace(settings, admin_token=None)},
            job_id=job_id,
            timeout=settings.train_timeout_s,
            result_ttl=RESULT_TTL_S,
            failure_ttl=RESULT_TTL_S,
            description="retrain the recommender",
            meta={"progress": {"stage": "queued", "fraction": 0.0}},
        )
        log.info("training job %s enqueued", job_id)
        return job_id, True
    raise training.TrainingBusy(_text(data.get(keys.train_job())))


def _alive(
    conn: redis_lib.Redis, data: redis_lib.Redis, keys: Keys, job_id: str, settings: Settings
) -> bool:
    """Whether ``job_id`` (an RQ job or a foreground run) still queues or runs."""
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return bool(data.exists(keys.train_lock()))  # a foreground `paperfeed retrain`
    status = job.get_status()
    if status not in _ALIVE:
        return False
    if status == JobStatus.STARTED and not data.exists(keys.train_lock()):
        # a worker killed mid-run: its lock expired; RQ notices only after the job timeout
        started = job.started_at.timestamp() if job.started_at else 0.0
        return time.time() - started < 2 * settings.train_lock_ttl_s
    return True


def _delete_if_equal(conn: redis_lib.Redis, key: str, value: str) -> None:
    with conn.pipeline() as pipe:
        try:
            pipe.watch(key)
            if _text(pipe.get(key)) == value:
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
        except redis_lib.exceptions.WatchError:
            pass


def job_status(conn: redis_lib.Redis, job_id: str) -> dict[str, Any] | None:
    """What the admin API shows of a job, or None if RQ does not know it.

    ``status`` is ``queued``, ``running`` (with ``progress``), ``finished`` (with ``result``:
    metrics, version, duration) or ``failed`` (with ``error``).
    """
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return None
    status = job.get_status()
    out: dict[str, Any] = {
        "id": job.id,
        "status": _STATUS_NAMES.get(status, "queued"),
        "progress": job.meta.get("progress"),
        "enqueued_at": _iso(job.enqueued_at),
        "started_at": _iso(job.started_at),
        "ended_at": _iso(job.ended_at),
        "result": None,
        "error": None,
    }
    if status == JobStatus.FINISHED:
        out["result"] = job.return_value()
        out["progress"] = {"stage": "done", "fraction": 1.0}
    elif out["status"] == "failed":
        result = job.latest_result()
        text = (result.exc_string if result else None) or status.value
        out["error"] = text.strip().splitlines()[-1][:500]
    return out


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC).isoformat()


def run_training_job(settings: Settings) -> dict[str, Any]:
    """The RQ job: one training under the lock, progress in the job's meta."""
    job = get_current_job()
    job_id = job.id if job is not None else f"local-{uuid.uuid4().hex[:12]}"
    redis = connect(settings.redis_url or "", timeout_s=max(settings.redis_timeout_s, 60.0))
    keys = _keys(settings)
    reporter = MetaProgress(job)
    try:
        with training.training_lock(redis, keys, settings.train_lock_ttl_s, job_id):
            return training.run_training(redis, settings, keys=keys, progress=reporter)
    finally:
        redis.close()


def enqueue_coread(
    conn: redis_lib.Redis, settings: Settings, job_id: str | None = None
) -> tuple[str, bool]:
    """Enqueue a co-reading rebuild unless one waits already: ``(job id, newly enqueued)``.

    One waiting job is enough (it reads the log as it is when it starts); a worker busy with a
    long training therefore finds one rebuild waiting, not one per interval. ``job_id``
    (deterministic, e.g. the clock's slot) is not enqueued twice.
    """
    queue = coread_queue(conn, settings)
    waiting = queue.get_job_ids(0, 1)
    if waiting:
        return waiting[0], False
    job_id = job_id or f"{settings.key_prefix}-coread-{uuid.uuid4().hex[:12]}"
    if Job.exists(job_id, connection=conn):
        return job_id, False
    queue.enqueue_call(
        run_coread_job,
        kwargs={"settings": dataclasses.replace(settings, admin_token=None)},
        job_id=job_id,
        timeout=coreadstore.LOCK_TTL_S,
        result_ttl=COREAD_RESULT_TTL_S,
        failure_ttl=RESULT_TTL_S,
        description="rebuild the co-reading table",
    )
    log.info("co-reading rebuild %s enqueued", job_id)
    return job_id, True


def run_coread_job(settings: Settings) -> dict[str, Any]:
    """The RQ job: one co-reading rebuild, skipped if another process runs one or if the table
    became fresh since the job was enqueued."""
    redis = connect(settings.redis_url or "", timeout_s=max(settings.redis_timeout_s, 60.0))
    keys = _keys(settings)
    try:
        if not coreadstore.due(redis, keys, settings, time.time()):
            return {"skipped": "the table is fresh"}
        return coreadstore.refresh(redis, keys, settings)
    except coreadstore.CoreadBusy:
        return {"skipped": "another rebuild is running"}
    finally:
        redis.close()


class MetaProgress:
    """A progress callback that writes ``{"stage", "fraction"}`` into an RQ job's meta."""

    def __init__(self, job: Job | None, min_interval_s: float = 1.0) -> None:
        self.job = job
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._stage: str | None = None

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if self.job is None:
            return
        if stage == self._stage and now - self._last < self.min_interval_s:
            return
        self._stage, self._last = stage, now
        self.job.meta["progress"] = {"stage": stage, "fraction": round(fraction, 4)}
        try:
            self.job.save_meta()
        except redis_lib.exceptions.RedisError as exc:
            log.warning("could not save job progress: %s", exc)
