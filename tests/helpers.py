"""Small builders shared by the tests (not fixtures)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def event(
    paper: str | dict[str, Any] = "arxiv:2401.12345",
    kind: str = "open",
    ts: float | None = None,
    site: str = "arxiv.org",
    **paper_fields: Any,
) -> dict[str, Any]:
    """One wire-format event; ``paper`` is an id/URL string or a full paper object."""
    if isinstance(paper, str):
        key = "url" if paper.startswith("http") else "id"
        paper = {key: paper, **paper_fields}
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "paper": paper,
        "ts": int(time.time() if ts is None else ts),
        "site": site,
    }


def post(client: Any, user: dict[str, Any], *events: dict[str, Any]) -> Any:
    return client.post("/v1/events", json={"events": list(events)}, headers=user["auth"])


def keys_under(redis: Any, prefix: str) -> list[str]:
    return sorted(redis.scan_iter(match=f"{prefix}:*", count=1000))


def mentions(redis: Any, key: str, needle: str) -> bool:
    """Whether ``needle`` appears in the key's name or anywhere in its value."""
    if needle in key:
        return True
    kind = redis.type(key)
    if kind == "string":
        values = [redis.get(key)]
    elif kind == "hash":
        values = [x for kv in redis.hgetall(key).items() for x in kv]
    elif kind == "zset":
        values = [m for m, _ in redis.zrange(key, 0, -1, withscores=True)]
    elif kind == "set":
        values = list(redis.smembers(key))
    elif kind == "list":
        values = redis.lrange(key, 0, -1)
    elif kind == "stream":
        values = [v for _, fields in redis.xrange(key) for kv in fields.items() for v in kv]
    else:
        values = []
    return any(needle in str(v) for v in values)


def tails(logs: Path, lines: int = 40) -> str:
    """The last ``lines`` of each process's log (``logs/*.log``), for a failure's message."""
    return "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        for log in sorted(logs.glob("*.log"))
    )


def wait_for(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    logs: Path | None = None,
    interval_s: float = 0.5,
) -> None:
    """Poll ``predicate`` until it holds (an ``OSError`` counts as not yet); fail after
    ``timeout_s`` naming ``what``, with the tails of the logs in ``logs`` if given."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{tails(logs)}" if logs else ""))
