"""A small replay of ``paperfeed evaluate`` on a synthetic CSV (no Redis)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from recommender import als, evaluate
from server.cli import main

DAY0 = 1_506_816_000.0  # 2017-10-01T00:00:00Z


def write_log(path, n_users=60, n_items=24, days=3, seed=0, fresh_daily=True) -> None:
    """Two communities reading their own papers; with ``fresh_daily``, new papers every day."""
    rng = np.random.default_rng(seed)
    lines = ["user,item,ts"]
    for day in range(days):
        for u in range(n_users):
            side = u % 2
            for _ in range(rng.integers(1, 4)):
                paper = side * n_items // 2 + rng.integers(0, n_items // 2)
                ts = DAY0 + day * 86400 + rng.uniform(0, 86400)
                batch = day if fresh_daily else 0
                lines.append(f"u{u},d{batch}-p{paper},{ts:.3f}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def log_csv(tmp_path):
    path = tmp_path / "events.csv"
    write_log(path)
    return path


FAST = als.TrainParams(factors=4, iterations=3)


def test_hourly_replay_goes_through_the_shared_train(log_csv, monkeypatch):
    calls = []
    real = als.train

    def spy(*args, **kwargs):
        calls.append(args[4])  # now
        return real(*args, **kwargs)

    monkeypatch.setattr(als, "train", spy)
    config = evaluate.EvalConfig(train=FAST, report_from="2017-10-03")
    result = evaluate.evaluate(log_csv, config)
    assert calls == [DAY0 + 86400, DAY0 + 2 * 86400]  # every midnight with events before it
    assert result.trainings == 2
    out = json.loads(evaluate.to_json(result))
    assert set(out["summary"]) == {"trending", "als", "blend"}
    for metrics in out["summary"].values():
        assert 0 <= metrics["recall@20"] <= 1 and 0 <= metrics["ndcg@20"] <= 1
        assert set(metrics) == {"recall@20", "ndcg@20"}
    assert all(n > 0 for n in out["requests"].values())
    assert out["tuning_days"] == ["2017-10-02"] and out["report_days"] == ["2017-10-03"]
    # Every day's papers are new: ALS can only rank them through the hourly fold-in of papers.
    assert out["summary"]["als"]["ndcg@20"] > 0


def test_replay_builds_the_co_reading_table_as_the_worker_does(log_csv, monkeypatch):
    from recommender import coreading

    tables = []
    real = coreading.build

    def spy(history, recent):
        table = real(history, recent)
        tables.append(table)
        return table

    monkeypatch.setattr(coreading, "build", spy)
    config = evaluate.EvalConfig(train=FAST, coread_half_life_h=6.0)
    result = evaluate.evaluate(log_csv, config)
    assert config.blend.coread_weight > 0  # the product's default blend weighs co-reading
    # one table per hour with requests, so at least one per scored day
    assert result.days and len(tables) >= len(result.days)
    assert all(t.live <= config.coread_live for t in tables)
    assert any(t.counts.nnz for t in tables)
    off = evaluate.EvalConfig(
        train=FAST, blend=dataclasses.replace(config.blend, coread_weight=0.0)
    )
    tables.clear()
    evaluate.evaluate(log_csv, off)
    assert tables == []  # no blend weighs it: no table is built


def test_daily_protocol_and_blend_variants(tmp_path):
    from recommender.ranking import BlendParams

    log_csv = tmp_path / "stable.csv"
    write_log(log_csv, fresh_daily=False)
    variants = (
        BlendParams(personal_weight=0.0, coread_weight=0.0),
        BlendParams(personal_weight=0.0, coread_weight=1.0),
    )
    config = evaluate.EvalConfig(
        protocol="daily", train=FAST, blend_variants=variants, coread_half_life_h=24.0
    )
    result = evaluate.replay(evaluate.load_events(log_csv), config)
    means = result.mean()
    assert set(means) == {"trending", "als", "blend", "blend[0]", "blend[1]"}
    # with no personal weight, the blend is trending (same candidates, same order)
    assert means["blend[0]"]["ndcg@20"] == pytest.approx(means["trending"]["ndcg@20"])
    # the communities are learnable: ALS beats chance on the next day's papers, and what the
    # readers of a user's papers read lifts the user's own community over global trending
    assert means["als"]["ndcg@20"] > 0
    assert means["blend[1]"]["ndcg@20"] > 1.2 * means["trending"]["ndcg@20"]


def test_random_split_reports_the_implicit_check(tmp_path):
    path = tmp_path / "sets.csv"
    rng = np.random.default_rng(1)
    rows = ["user,item,ts"]
    for u in range(80):
        for i in rng.choice(15, 8, replace=False):
            rows.append(f"u{u},{'ab'[u % 2]}{i},0")
    path.write_text("\n".join(rows) + "\n")
    result = evaluate.evaluate(path, evaluate.EvalConfig(split="random", train=FAST))
    check = result.extra["implicit_check"]
    assert check["ours_ndcg"] == pytest.approx(check["implicit_ndcg"], rel=1e-4)
    assert check["ours_pooled_recall"] == pytest.approx(check["implicit_precision"], rel=1e-4)
    assert result.mean()["als"]["users"] == 80


def test_cli_prints_json_and_writes_the_plot(log_csv, tmp_path, capsys):
    plot = tmp_path / "days.png"
    code = main(
        [
            "evaluate",
            "--events",
            str(log_csv),
            "--json",
            "--plot",
            str(plot),
            "--factors",
            "4",
            "--iterations",
            "2",
            "--protocol",
            "daily",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["summary"]) == {"trending", "als", "blend"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_a_file_without_the_columns(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\n1,2\n")
    assert main(["evaluate", "--events", str(bad)]) == 2
    assert "missing column" in capsys.readouterr().err


def test_a_short_trending_half_life_is_rebased_instead_of_overflowing(log_csv):
    # three days at a 3-minute half-life: 2 ** (t / half-life) passes float64's range on day 2
    config = evaluate.EvalConfig(train=FAST, trending_half_life_h=0.05)
    means = evaluate.evaluate(log_csv, config).mean()
    assert 0 < means["trending"]["ndcg@20"] <= 1
