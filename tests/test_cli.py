"""The console script: ``paperfeed up`` with its embedded Redis, ``import-papers``, and the
Procfile agreeing with the process table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from recommender.keys import Keys
from recommender.settings import Settings
from server.commands.import_papers import demo_id, import_rows, read_seed
from server.commands.up import process_table
from server.embedded_redis import LOCK_NAME, DataDirInUse, EmbeddedRedis, free_port
from tests.conftest import SHARED_DATA
from tests.helpers import event, wait_for

ROOT = Path(__file__).resolve().parent.parent


def http(method: str, url: str, token: str | None = None, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"{}")


def wait_ready(base: str, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    def ready() -> bool:
        assert proc.poll() is None, "paperfeed up exited early"
        return http("GET", f"{base}/readyz")["status"] == "ready"  # not ready: a 503, an OSError

    wait_for(ready, timeout_s, "the service to become ready", interval_s=0.2)


def start_up(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(PAPERFEED_DATA_DIR=str(data_dir), PORT=str(port), WEB_CONCURRENCY="1")
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "up", "--only", "web"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=40)
    return out


@pytest.mark.slow
def test_up_starts_embedded_redis_persists_and_stops_cleanly(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_up(tmp_path, port)
    try:
        wait_ready(base, proc)
        user = http("POST", f"{base}/v1/users")
        body = {"events": [event(title="Persisted")]}
        assert http("POST", f"{base}/v1/events", user["token"], body) == {
            "accepted": 1,
            "duplicates": 0,
        }
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "embedded Redis at redis://127.0.0.1:" in out
    assert "paperfeed: stopped" in out
    assert "Control socket listening" not in out  # gunicorn's, shared by every gunicorn: off
    aof_dir = tmp_path / "redis" / "appendonlydir"
    assert any(aof_dir.glob("*.aof")), "append-only file missing"
    redis_port = int(out.split("embedded Redis at redis://127.0.0.1:")[1].split("/")[0])
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_port, socket_connect_timeout=1).ping()

    # Start again on the same data directory: the user and their event are still there.
    proc = start_up(tmp_path, port)
    try:
        wait_ready(base, proc)
        history = http("GET", f"{base}/v1/me/history", user["token"])
        assert [e["paper"]["title"] for e in history["events"]] == ["Persisted"]
    finally:
        stop(proc)


def test_embedded_redis_uses_aof(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        # fsync before each reply: with everysec, Redis answers while a slow fsync postpones
        # its write, and a killed Redis lost acknowledged events (bench/fault.py --disk-load)
        assert client.config_get("appendfsync")["appendfsync"] == "always"
        assert Path(client.config_get("dir")["dir"]) == (tmp_path / "redis").resolve()
        client.close()
    with EmbeddedRedis(tmp_path, appendfsync="everysec") as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        client.close()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped by its new parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def holds(pid: int | str, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == str(path) for fd in fds.iterdir())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_embedded_redis_refuses_a_data_dir_another_server_holds(tmp_path):
    """Two servers appending to one AOF would mix their writes: the second start refuses, naming
    the first, and the lock is the server's own, so it outlives the process that started it."""
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        lock = (tmp_path / "redis" / LOCK_NAME).resolve()
        assert holds(first.process.pid, lock)
        assert not holds("self", lock)  # closed here: the lock lives as long as the server
        second = EmbeddedRedis(tmp_path, lock_wait_s=0.3)
        with pytest.raises(DataDirInUse, match=rf"pid {first.process.pid}, port {first.port}\)"):
            second.start()
        assert second.process is None  # no second redis-server was started
        assert redis.Redis(port=first.port).ping()
    finally:
        first.stop()
    second.start()  # free again once the first stopped
    try:
        assert redis.Redis(port=second.port).ping()
    finally:
        second.stop()


def read_until(proc: subprocess.Popen, *needles: str, timeout_s: float = 10) -> str:
    """``proc``'s output up to the line holding the last of ``needles`` not yet seen."""
    seen, lines = set(), []
    deadline = time.monotonic() + timeout_s
    while len(seen) < len(needles) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        seen.update(n for n in needles if n in line)
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_up_takes_its_redis_and_web_with_it(tmp_path):
    """``kill -9`` of ``paperfeed up`` used to leave its Redis and gunicorn running, the port
    taken and a second ``up`` starting a second Redis on the same AOF. Now both children stop
    cleanly by themselves, and the next ``up`` starts on the same data at once."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_up(tmp_path, port)
    try:
        wait_ready(base, proc)
        out = read_until(proc, "embedded Redis at", "started web (pid")
        user = http("POST", f"{base}/v1/users")
        body = {"events": [event(title="Survives kill -9")]}
        assert http("POST", f"{base}/v1/events", user["token"], body)["accepted"] == 1
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    redis_port = int(out.split("embedded Redis at redis://127.0.0.1:")[1].split("/")[0])
    redis_pid = int((tmp_path / "redis" / LOCK_NAME).read_text().split()[0])
    web_pid = int(out.split("started web (pid ")[1].split(")")[0])
    deadline = time.monotonic() + 30
    while (alive(redis_pid) or alive(web_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(redis_pid), "the embedded Redis outlived paperfeed up"
    assert not alive(web_pid), "gunicorn outlived paperfeed up"
    assert "ready to exit, bye bye" in (tmp_path / "redis" / "redis.log").read_text()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_port, socket_connect_timeout=1).ping()

    proc = start_up(tmp_path, port)
    try:
        wait_ready(base, proc, timeout_s=10)  # under the 15 s a held lock would be waited for
        history = http("GET", f"{base}/v1/me/history", user["token"])
        assert [e["paper"]["title"] for e in history["events"]] == ["Survives kill -9"]
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out


@pytest.mark.slow
def test_up_stops_and_says_why_when_its_redis_dies(tmp_path):
    """A dead embedded Redis (a full disk ends one that fsyncs before every reply) left ``up``
    serving 503s, saying nothing."""
    port = free_port()
    proc = start_up(tmp_path, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        os.kill(int((tmp_path / "redis" / LOCK_NAME).read_text().split()[0]), signal.SIGKILL)
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "paperfeed: redis exited with -9; stopping" in out
    assert f"paperfeed: the end of {(tmp_path / 'redis' / 'redis.log').resolve()}:" in out
    assert "paperfeed: stopped" in out


def test_up_says_in_one_line_why_its_redis_cannot_start(tmp_path):
    (tmp_path / "file").write_text("")
    proc = start_up(tmp_path / "file" / "data", free_port())  # a data directory under a file
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert out.startswith("paperfeed up: [Errno 20] Not a directory:"), out
    assert "Traceback" not in out


def test_procfile_matches_process_table():
    lines = (ROOT / "Procfile").read_text().strip().splitlines()
    procfile = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines}
    assert set(process_table()) <= set(procfile)
    assert procfile["web"] == "gunicorn -c python:server.gunicorn_conf server.wsgi:app"


def test_cli_rejects_bad_settings():
    env = {**os.environ, "PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "up"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "PORT='not-a-port'" in result.stderr


def test_import_seed_catalogue(app, client):
    path = Path(SHARED_DATA, "seed-trending-papers", "trending-papers.txt")
    rows = list(read_seed(path))
    assert len(rows) == 276
    assert rows[0]["title"] == "Does Joint Training Really Help Cascaded Speech Translation?"
    store = app.extensions["paperfeed"].store
    assert import_rows(store, iter(rows), readers=5) == 276
    paper = client.get(f"/v1/papers/{demo_id(rows[0]['title'])}")
    # demo ids are not reader-facing ids, so they are looked up in the store directly
    assert paper.status_code == 404
    stored = store.paper(demo_id(rows[0]["title"]))
    assert stored["abstract"].startswith("Currently, in speech translation")
    trending = client.get("/v1/trending?limit=5").get_json()
    assert trending["total"] == 276
    assert trending["items"][0]["paper"]["title"]


def paperfeed(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """``paperfeed ARGS`` as its own process, on the test's Redis and key prefix."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "PAPERFEED_KEY_PREFIX": settings.key_prefix,
    }
    if settings.queue_redis_url:
        env["PAPERFEED_QUEUE_REDIS_URL"] = settings.queue_redis_url
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_jsonl_via_cli(tmp_path, settings, redis_client):
    path = tmp_path / "papers.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "https://arxiv.org/abs/1905.02244v5",
                "title": "Searching for MobileNetV3",
                "abstract": "We present...",
                "authors": ["Andrew Howard"],
            }
        )
        + "\n"
    )
    result = paperfeed(settings, "import-papers", str(path))
    assert result.returncode == 0, result.stderr
    assert "imported 1 papers" in result.stdout
    stored = redis_client.hgetall(f"{settings.key_prefix}:{{p:arxiv:1905.02244}}:paper")
    assert stored["title"] == "Searching for MobileNetV3"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    result = paperfeed(settings, "import-papers", str(bad))
    assert result.returncode == 1
    assert "bad.jsonl:1: not JSON" in result.stderr


def test_clock_carries_an_earlier_versions_trending_views_over(settings, redis_client):
    # Before 2026-11-28 the page's views were sorted sets; `paperfeed clock` moves them into
    # the papers' entries as it starts (here with --once, the night's training already done).
    keys = Keys(settings.key_prefix)
    day_set, day_epoch = keys.legacy_trending_view("day")
    now = time.time()
    redis_client.zadd(day_set, {"arxiv:2401.00001": 4.0})
    redis_client.set(day_epoch, now)
    redis_client.zadd(keys.trending(), {"arxiv:2401.00001": 1.0})
    redis_client.set(keys.train_last_success(), now)
    result = paperfeed(settings, "clock", "--once")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "not due"
    assert not redis_client.exists(day_set, day_epoch)
    entry = redis_client.hgetall(keys.paper("arxiv:2401.00001"))
    assert float(entry["tr:day"]) == pytest.approx(
        4.0 * 2 ** (-(float(entry["tr_at"]) - now) / 43200)
    )
