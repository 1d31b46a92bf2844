"""The training job end to end on the real Redis: publish, gate, lock, jobs, crash safety."""

from __future__ import annotations

import calendar
import dataclasses
import logging
import threading
import time
from typing import Any

import numpy as np
import pytest
from rq import SimpleWorker

from recommender import als, clock, jobs, modelstore, training
from recommender.keys import Keys
from recommender.settings import Settings

pytestmark = pytest.mark.integration

NOW = 1_800_000_000
DAY = 86400


def fill_two_communities(
    redis: Any, keys: Keys, users: int = 80, seed: int = 1, now: float = NOW
) -> None:
    """Users in two groups, each reading papers of its own group over ten days.

    The last day's reads are new papers of the same group, so a model that learnt the groups
    beats chance on the held-out slice.
    """
    rng = np.random.default_rng(seed)
    pipe = redis.pipeline(transaction=False)
    for u in range(users):
        group = u % 2
        papers = rng.choice(np.arange(group, 60, 2), size=14, replace=False)
        for j, p in enumerate(papers):
            ts = int(now - 10 * DAY + j * (DAY // 2) if j < 11 else now - DAY // 2 + j)
            fields = {
                "u": f"user{u}",
                "e": f"e{u}-{j}",
                "k": "open",
                "p": f"arxiv:{p}",
                "ts": ts,
                "s": "arxiv.org",
            }
            pipe.xadd(keys.stream(keys.partition_of(f"user{u}")), fields)
    pipe.execute()


def drop_queue(conn: Any, queue: Any) -> None:
    """Delete the test's queue and every job it ran (RQ's keys are outside our prefix)."""
    for registry in (queue.finished_job_registry, queue.failed_job_registry):
        for job_id in registry.get_job_ids():
            conn.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
        conn.delete(registry.key)
    queue.empty()
    queue.delete(delete_jobs=True)
    conn.srem("rq:queues", queue.key)
    conn.close()


@pytest.fixture
def train_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, als_factors=8, als_iterations=8, holdout_days=1.0)


@pytest.fixture
def keys(train_settings: Settings) -> Keys:
    return Keys(train_settings.key_prefix, train_settings.stream_partitions)


def test_training_publishes_and_reports(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    fill_two_communities(redis_client, keys)
    stages: list[tuple[str, float]] = []
    report = training.run_training(
        redis_client, train_settings, now=NOW, progress=lambda s, f: stages.append((s, f))
    )
    assert report["activated"] and report["gate"] == "first model"
    assert report["trained_at"] == NOW - DAY
    metrics = report["metrics"]
    assert metrics["model"]["users"] > 0 and metrics["active"] is None
    assert metrics["model"]["recall@20"] > metrics["trending"]["recall@20"] * 0.5
    assert {s for s, _ in stages} == {"compact", "fit", "evaluate", "publish"}
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    active = modelstore.load_active(redis_client, keys)
    assert active.version == report["version"]
    assert active.user_factors.shape == (80, 8)
    assert float(redis_client.get(keys.train_last_success())) == NOW


def test_quality_gate_holds_back_a_worse_model(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    fill_two_communities(redis_client, keys)
    good = training.run_training(redis_client, train_settings, now=NOW)
    bad_params = als.TrainParams(factors=2, iterations=1, regularization=1e6)
    bad = training.run_training(redis_client, train_settings, now=NOW, params=bad_params)
    assert bad["metrics"]["active"]["recall@20"] == pytest.approx(
        good["metrics"]["model"]["recall@20"]
    )
    assert not bad["activated"]
    assert bad["gate"].startswith("held back")
    assert modelstore.active_version(redis_client, keys) == good["version"]
    listed = {v["version"]: v for v in modelstore.list_versions(redis_client, keys)}
    assert not listed[bad["version"]]["active"]  # stored, can be activated by hand


def test_quality_gate_rules() -> None:
    active = object()
    metric = lambda r: {"recall@20": r, "ndcg@20": r, "users": 10}  # noqa: E731
    assert training.quality_gate({}, None, 0.1) == (True, "first model")
    ok, _ = training.quality_gate({"model": metric(0.46), "active": metric(0.5)}, active, 0.1)
    assert ok
    ok, why = training.quality_gate({"model": metric(0.44), "active": metric(0.5)}, active, 0.1)
    assert not ok and "held back" in why


def test_crashed_training_leaves_the_active_model(
    redis_client: Any, train_settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_two_communities(redis_client, keys)
    first = training.run_training(redis_client, train_settings, now=NOW)

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise MemoryError("killed")

    monkeypatch.setattr(als, "train", crash)
    with (
        pytest.raises(MemoryError),
        training.training_lock(redis_client, keys, 30, "job-crash"),
    ):
        training.run_training(redis_client, train_settings, now=NOW + DAY)
    assert modelstore.active_version(redis_client, keys) == first["version"]
    assert not redis_client.exists(keys.train_lock())
    assert not redis_client.exists(keys.train_job())


def test_lock_is_single_flight(redis_client: Any, keys: Keys) -> None:
    with training.training_lock(redis_client, keys, 30, "job-a"):
        with (
            pytest.raises(training.TrainingBusy) as busy,
            training.training_lock(redis_client, keys, 30, "job-b"),
        ):
            pass
        assert busy.value.job_id == "job-a"
    with training.training_lock(redis_client, keys, 30, "job-c"):
        pass


def test_lock_is_renewed_while_running(redis_client: Any, keys: Keys) -> None:
    with training.training_lock(redis_client, keys, 0.6, "job-slow"):
        time.sleep(1.5)  # longer than the expiry: the renewer keeps it
        assert redis_client.exists(keys.train_lock())
    assert not redis_client.exists(keys.train_lock())


def test_second_trigger_returns_the_queued_job(redis_client: Any, train_settings: Settings) -> None:
    conn = jobs.connect_queue(train_settings)
    queue = jobs.train_queue(conn, train_settings)
    try:
        first, created = jobs.trigger(conn, train_settings, redis=redis_client)
        assert created
        again, created_again = jobs.trigger(conn, train_settings, redis=redis_client)
        assert (again, created_again) == (first, False)
        assert jobs.job_status(conn, first)["status"] == "queued"
        assert jobs.job_status(conn, "no-such-job") is None
    finally:
        drop_queue(conn, queue)


def test_trigger_while_foreground_run_holds_the_lock(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    conn = jobs.connect_queue(train_settings)
    try:
        with training.training_lock(redis_client, keys, 30, "cli-foreground"):
            assert jobs.trigger(conn, train_settings, redis=redis_client) == (
                "cli-foreground",
                False,
            )
    finally:
        conn.close()


def test_job_runs_on_a_worker_with_progress_and_result(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    fill_two_communities(redis_client, keys, now=time.time())
    conn = jobs.connect_queue(train_settings)
    queue = jobs.train_queue(conn, train_settings)
    try:
        job_id = f"{train_settings.key_prefix}-train-test-1"
        jobs.trigger(conn, train_settings, job_id=job_id, redis=redis_client)
        SimpleWorker([queue], connection=conn).work(burst=True)
        status = jobs.job_status(conn, job_id)
        assert status["status"] == "finished", status
        assert status["result"]["metrics"]["model"]["recall@20"] is not None
        assert status["result"]["duration_s"] > 0
        assert status["progress"] == {"stage": "done", "fraction": 1.0}
        assert modelstore.active_version(redis_client, keys) == status["result"]["version"]
        # the same deterministic id is never enqueued twice
        assert jobs.trigger(conn, train_settings, job_id=job_id, redis=redis_client) == (
            job_id,
            False,
        )
        assert not redis_client.exists(keys.train_job())
    finally:
        drop_queue(conn, queue)


def test_failed_job_reports_its_error(redis_client: Any, train_settings: Settings) -> None:
    conn = jobs.connect_queue(train_settings)  # no events at all: the training fails
    queue = jobs.train_queue(conn, train_settings)
    try:
        job_id, _ = jobs.trigger(conn, train_settings, redis=redis_client)
        SimpleWorker([queue], connection=conn).work(burst=True)
        status = jobs.job_status(conn, job_id)
        assert status["status"] == "failed"
        assert "no events" in status["error"]
        again, created = jobs.trigger(conn, train_settings, redis=redis_client)
        assert created and again != job_id  # a dead job does not block the next one
    finally:
        drop_queue(conn, queue)


# -- the nightly clock --------------------------------------------------------------------------


def utc(*parts: int) -> float:
    return calendar.timegm((*parts, 0)[:6])


def test_clock_catches_up_a_missed_night_once(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    conn = jobs.connect_queue(train_settings)
    queue = jobs.train_queue(conn, train_settings)
    try:
        redis_client.set(keys.train_last_success(), utc(2026, 11, 26, 3, 5))
        # 02:59 on the 27th: the 26th's run happened, the 27th's is not due yet
        assert (
            clock.tick(conn, train_settings, utc(2026, 11, 27, 2, 59), redis=redis_client) is None
        )
        # the clock was down over the night of the 28th and starts at 09:00: catch up now
        started = clock.tick(conn, train_settings, utc(2026, 11, 28, 9, 0), redis=redis_client)
        assert started == f"{train_settings.key_prefix}-nightly-20261128T0300Z"
        # a restart (or a second clock) in the same slot does not enqueue again
        assert (
            clock.tick(conn, train_settings, utc(2026, 11, 28, 9, 1), redis=redis_client) == started
        )
        assert queue.count == 1
        # the run succeeded: nothing until the next night
        queue.empty()
        redis_client.delete(keys.train_job())
        redis_client.set(keys.train_last_success(), utc(2026, 11, 28, 9, 30))
        assert clock.tick(conn, train_settings, utc(2026, 11, 29, 2, 0), redis=redis_client) is None
        nxt = clock.tick(conn, train_settings, utc(2026, 11, 29, 3, 0), redis=redis_client)
        assert nxt == f"{train_settings.key_prefix}-nightly-20261129T0300Z"
    finally:
        drop_queue(conn, queue)


def test_clock_schedule_is_configurable_and_utc(train_settings: Settings) -> None:
    hourly = dataclasses.replace(train_settings, nightly_cron="30 * * * *")
    assert clock.slot(hourly.nightly_cron, utc(2026, 11, 28, 9, 10)) == utc(2026, 11, 28, 8, 30)
    assert clock.next_slot("0 3 * * *", utc(2026, 11, 28, 3, 0)) == utc(2026, 11, 29, 3, 0)


def test_clock_loop_ticks_at_start_and_stops(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    conn = jobs.connect_queue(train_settings)
    queue = jobs.train_queue(conn, train_settings)
    stop = threading.Event()
    ticks: list[float] = []

    def fake_clock() -> float:
        ticks.append(1)
        if len(ticks) >= 2:
            stop.set()
        return utc(2026, 11, 28, 9, 0)

    fill_two_communities(redis_client, keys, users=4)
    try:
        clock.run(conn, train_settings, clock=fake_clock, stop=stop, redis=redis_client)
        assert queue.count == 1  # the start-up catch-up (no success recorded yet)
    finally:
        drop_queue(conn, queue)


def test_clock_skips_a_slot_that_comes_while_the_log_is_empty(
    redis_client: Any, train_settings: Settings, keys: Keys, caplog: Any
) -> None:
    """A fresh install has no events: its first clock tick used to enqueue a training that
    could only fail, with a traceback in the worker's log on every first start."""
    conn = jobs.connect_queue(train_settings)
    queue = jobs.train_queue(conn, train_settings)
    skipped: set[float] = set()
    try:
        with caplog.at_level(logging.INFO, logger="recommender.clock"):
            at = utc(2026, 11, 28, 9, 0)
            assert clock.tick(conn, train_settings, at, redis_client, skipped) is None
            assert clock.tick(conn, train_settings, at + 60, redis_client, skipped) is None
        assert queue.count == 0
        assert skipped == {utc(2026, 11, 28, 3, 0)}
        lines = [r.getMessage() for r in caplog.records if "no events yet" in r.getMessage()]
        assert lines == [
            "no events yet: nothing to train for 2026-11-28T03:00:00+00:00; "
            "the next training is at 2026-11-29T03:00:00+00:00"
        ]
        # events arrive later that day: the running clock leaves the skipped slot alone ...
        fill_two_communities(redis_client, keys, users=4)
        assert clock.tick(conn, train_settings, at + 120, redis_client, skipped) is None
        assert queue.count == 0
        # ... and trains at the next one, as a restarted clock would at once (catch-up)
        restarted = clock.tick(conn, train_settings, at + 180, redis_client, set())
        assert restarted == f"{train_settings.key_prefix}-nightly-20261128T0300Z"
        queue.empty()
        redis_client.delete(keys.train_job())
        nxt = clock.tick(conn, train_settings, utc(2026, 11, 29, 3, 0), redis_client, skipped)
        assert nxt == f"{train_settings.key_prefix}-nightly-20261129T0300Z"
    finally:
        drop_queue(conn, queue)


def test_papers_first_read_in_the_held_out_slice_are_folded_in(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    fill_two_communities(redis_client, keys)
    for u in range(0, 20, 2):
        fields = {
            "u": f"user{u}",
            "e": f"fresh{u}",
            "k": "click",
            "p": "arxiv:fresh",
            "ts": NOW - 3600,
            "s": "arxiv.org",
        }
        redis_client.xadd(keys.stream(keys.partition_of(f"user{u}")), fields)
    report = training.run_training(redis_client, train_settings, now=NOW)
    assert report["fresh_papers"] >= 1
    model = modelstore.load_active(redis_client, keys)
    row = model.item_rows(["arxiv:fresh"])[0]
    assert row >= 0 and np.abs(model.item_factors[row]).sum() > 0


def test_clock_refuses_a_bad_schedule(train_settings: Settings) -> None:
    from recommender.settings import SettingsError

    with pytest.raises(SettingsError):
        clock.check_cron("every night at three")
    clock.check_cron(train_settings.nightly_cron)


def test_reader_erased_during_training_is_zeroed_in_the_new_model(
    redis_client: Any, train_settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender import compaction

    fill_two_communities(redis_client, keys)
    real_compact = compaction.compact

    def compact_then_erase(*args: Any, **kwargs: Any) -> Any:
        out = real_compact(*args, **kwargs)  # user3's events are in the training data now
        compaction.forget_user(redis_client, keys, "user3")
        return out

    monkeypatch.setattr(compaction, "compact", compact_then_erase)
    report = training.run_training(redis_client, train_settings, now=NOW)
    model = modelstore.load(redis_client, keys, report["version"])
    row = model.user_row("user3")
    assert row is not None and not model.user_factors[row].any()
    others = np.delete(model.user_factors, row, axis=0)
    assert np.abs(others).sum(axis=1).min() > 0


def test_training_scrubs_erased_readers_from_older_versions(
    redis_client: Any, train_settings: Settings, keys: Keys
) -> None:
    from recommender import compaction

    fill_two_communities(redis_client, keys)
    first = training.run_training(redis_client, train_settings, now=NOW)["version"]
    # user5 is erased, but the request-time scrub of the stored versions never ran (it failed)
    compaction.forget_user(redis_client, keys, "user5")
    old = modelstore.load(redis_client, keys, first)
    assert old.user_factors[old.user_row("user5")].any()

    second = training.run_training(redis_client, train_settings, now=NOW + 3600)["version"]
    old = modelstore.load(redis_client, keys, first)
    assert not old.user_factors[old.user_row("user5")].any()
    assert modelstore.load(redis_client, keys, second).user_row("user5") is None
    assert training.scrub_erased(redis_client, keys) == 0  # tombstones consumed
