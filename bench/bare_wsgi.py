"""The ceiling for ``bench/ingest.py``: a bare WSGI callable doing the same Redis writes.

No Flask, no marshmallow, no logging or metrics: it parses the JSON and canonicalises each paper
id exactly as the real app does (with the same per-process cache of canonical ids), then calls
the same ``EventStore.ingest`` with the token's hash, which authenticates the token in the call
that stores the batch, as the app's events lane does. Comparing the real app with this
under the same gunicorn and load gives the cost of the framework, validation and observability.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from recommender.keys import Keys
from recommender.paperid import canonical_paper_id
from recommender.redisconn import connect
from recommender.settings import Settings
from recommender.store import Event, EventStore, IngestResult, TokenRefused
from recommender.users import hash_token, token_user

_settings = Settings.from_env()
_redis = connect(_settings.redis_url or "redis://127.0.0.1:6379/0", _settings.redis_timeout_s)
_keys = Keys(_settings.key_prefix, _settings.stream_partitions)
_store = EventStore(_redis, _settings, _keys)
# as server.schemas does: hot papers arrive over and over
_canonical_id = functools.lru_cache(maxsize=65_536)(canonical_paper_id)


def events_of(body: dict[str, Any]) -> list[Event]:
    """The body's events, trusted as they come (no validation: this is the ceiling)."""
    events = []
    for ev in body["events"]:
        paper = ev["paper"]
        events.append(
            Event(
                id=ev["id"],
                kind=ev["type"],
                paper_id=_canonical_id(paper.get("id") or paper["url"]),
                ts=int(ev["ts"]),
                site=ev["site"],
                title=paper.get("title"),
            )
        )
    return events


def ingest(authorization: str, body: dict[str, Any]) -> IngestResult | None:
    """Store ``body``'s events for the bearer of ``authorization``; ``None``: a wrong token."""
    token = authorization[7:]
    user_id = token_user(token)
    if user_id is None:
        return None
    try:
        return _store.ingest(user_id, events_of(body), token_hash=hash_token(token))
    except TokenRefused:
        return None


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length))
    result = ingest(environ.get("HTTP_AUTHORIZATION", ""), body)
    if result is None:
        start_response("401 Unauthorized", [("Content-Type", "application/json")])
        return [b"{}"]
    out = json.dumps({"accepted": result.accepted, "duplicates": result.duplicates}).encode()
    start_response("202 Accepted", [("Content-Type", "application/json")])
    return [out]
