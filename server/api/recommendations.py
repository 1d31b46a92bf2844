"""``GET /v1/recommendations``: "trending for you" for the caller (see :mod:`recommender.serving`).

The per-process :class:`~recommender.serving.Recommender` is created on the first request (never
at import) and kept in the app state; it swaps to a newly activated model by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from recommender import compaction
from recommender.keys import Keys
from recommender.redisconn import UNAVAILABLE_ERRORS
from recommender.serving import Recommender
from server.auth import bearer_token, require_user
from server.schemas import PaperOut, ProblemOut
from server.state import state

log = logging.getLogger(__name__)
blp = Blueprint("recommendations", __name__, url_prefix="/v1", description="Trending for you")


class RecommendationArgs(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class RecommendationOut(Schema):
    paper = fields.Nested(PaperOut, required=True)
    score = fields.Float(required=True)
    reason = fields.String(
        required=True,
        metadata={"description": '"because you read <title>" or "trending now"'},
    )


class RecommendationsOut(Schema):
    items = fields.List(fields.Nested(RecommendationOut), required=True)
    personalised = fields.Boolean(
        required=True, metadata={"description": "False: global trending (cold start)."}
    )
    model_version = fields.String(allow_none=True, required=True)
    stale = fields.Boolean(
        metadata={
            "description": "True while the data store is unreachable: the last list served "
            "to this token by this process, from `served_at` (Unix seconds)."
        }
    )
    served_at = fields.Float()


def recommender() -> Recommender:
    """The app's recommender (one per process, created lazily)."""
    st = state()
    found = st.extras.get("recommender")
    if found is None:
        found = st.extras["recommender"] = Recommender(
            st.redis, st.settings, keys=st.keys, store=st.store
        )
    return found


@blp.route("/recommendations", methods=["GET"])
@blp.arguments(RecommendationArgs(), location="query")
@blp.response(200, RecommendationsOut())
@blp.alt_response(401, schema=ProblemOut, description="Missing or invalid token")
@blp.alt_response(422, schema=ProblemOut, description="Bad limit")
def get_recommendations(args: dict) -> dict:
    """Papers trending now, ranked for the caller; what they opened or dismissed is left out.

    While Redis is unreachable, a caller this process served recently gets that last list
    again, marked ``stale``; anyone else gets the 503 problem. No process serves an erased
    user's list (see :class:`LastServed`).
    """
    st = state()
    cache = last_served()
    key = (hashlib.sha256((bearer_token() or "").encode()).hexdigest(), args["limit"])
    started = time.time()
    try:
        user_id = require_user()  # reads Redis too: an outage here also falls back
        answer = recommender().recommend(user_id, args["limit"])
    except UNAVAILABLE_ERRORS:
        fallback = cache.fallback(key, started, time.time())
        if fallback is None:
            raise
        log.warning("redis unavailable: serving a stale list")
        return {**fallback, "stale": True}
    now = time.time()
    cache.sync_erasures(st.redis, st.keys, now)
    cache.put(key, erased_digest(user_id), {**answer, "served_at": now})
    return answer


STALE_FOR_S = 6 * 3600
"""The longest a stale list is served during an outage."""

ERASURES_EVERY_S = 1.0
"""How often (at most) a web process reads the erasures that other processes announced."""

ERASURES_GRACE_S = 30.0
"""A process serves stale lists only if it read the erasures this recently before it first
failed to reach Redis: a process that sat idle before the outage may have missed some."""

ERASURES_OVERLAP_S = 60.0
"""Each read of the erasures goes back this far before the previous one (clocks of web hosts
may differ a little; dropping a list twice is harmless)."""


def erased_digest(user_id: str) -> str:
    """What an erasure announcement names: a digest of the user id, never the id itself."""
    return compaction.tombstone(user_id.encode())


def announce_erasure(redis: Any, keys: Keys, user_id: str, now: float) -> None:
    """Tell every web process to drop ``user_id``'s last lists from its outage cache.

    Called before the erasure itself, so a failed erasure that the user retries announces
    again (an announcement for a user who stays is harmless: a list is dropped). The
    announcements are kept ``STALE_FOR_S``, as long as any stale list may be served.
    """
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(keys.served_erasures(), {erased_digest(user_id): now})
    pipe.zremrangebyscore(keys.served_erasures(), "-inf", now - STALE_FOR_S)
    pipe.execute()


def forget_erased(user_id: str, now: float) -> None:
    """Before ``DELETE /v1/me`` erases ``user_id``: announce it to every web process and drop
    the user's lists from this one's outage cache (if it has one)."""
    st = state()
    announce_erasure(st.redis, st.keys, user_id, now)
    served = st.extras.get("last_served")
    if served is not None:
        served.forget([erased_digest(user_id)])


class LastServed:
    """The last answer per (token digest, limit), oldest evicted first; thread-safe.

    Answers are kept as JSON text, one string each, at most ``size`` of them and ``max_bytes``
    in all (an answer carries up to 100 abstracts). As dicts, 2,000 answers were 120,000 more
    objects for every full garbage collection of the process to walk: pauses over 100 ms,
    which a string (never walked) does not cause.

    An erased user's lists leave every process's cache: the erasing process drops them at once
    (:meth:`forget`); the others on their next read of the erasures (:meth:`sync_erasures`, at
    most every ``ERASURES_EVERY_S`` while they serve). :meth:`fallback` serves nothing while
    that read is older than ``ERASURES_GRACE_S`` at the start of the outage.
    """

    def __init__(self, size: int = 10_000, max_bytes: int = 64 << 20) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.erasures_every_s = ERASURES_EVERY_S
        self.erasures_grace_s = ERASURES_GRACE_S
        self._items: OrderedDict[tuple[str, int], tuple[str, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._erasures_read_at: float | None = None  # when the last read of them succeeded
        self._failing_since: float | None = None  # start of the first failure since a success

    def get(self, key: tuple[str, int]) -> dict | None:
        with self._lock:
            held = self._items.get(key)
        return None if held is None else json.loads(held[1])

    def put(self, key: tuple[str, int], user_digest: str, value: dict) -> None:
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._failing_since = None
            old = self._items.pop(key, None)
            self._bytes += len(text) - (len(old[1]) if old is not None else 0)
            self._items[key] = (user_digest, text)
            while self._items and (len(self._items) > self.size or self._bytes > self.max_bytes):
                self._bytes -= len(self._items.popitem(last=False)[1][1])

    def forget(self, user_digests: Iterable[str]) -> int:
        """Drop every list of these users (digests from :func:`erased_digest`); how many."""
        wanted = set(user_digests)
        with self._lock:
            gone = [key for key, (digest, _) in self._items.items() if digest in wanted]
            for key in gone:
                self._bytes -= len(self._items.pop(key)[1])
        return len(gone)

    def fallback(self, key: tuple[str, int], started: float, now: float) -> dict | None:
        """The answer to serve while Redis is unreachable, or ``None`` (answer 503); ``started``:
        when the request that failed to reach Redis began."""
        with self._lock:
            if self._failing_since is None:
                self._failing_since = started
            read_at = self._erasures_read_at
            if read_at is None or self._failing_since - read_at > self.erasures_grace_s:
                return None
        answer = self.get(key)
        if answer is None or now - answer["served_at"] > STALE_FOR_S:
            return None
        return answer

    def sync_erasures(self, redis: Any, keys: Keys, now: float) -> None:
        """Read the erasures announced since the last read (at most every ``erasures_every_s``)
        and drop those users' lists. A failed read is left for the next request."""
        read_at = self._erasures_read_at
        if read_at is not None and now - read_at < self.erasures_every_s:
            return
        since = "-inf" if read_at is None else read_at - ERASURES_OVERLAP_S
        try:
            digests = redis.zrangebyscore(keys.served_erasures(), since, "+inf")
        except UNAVAILABLE_ERRORS:
            log.warning("redis unavailable: the erasures are read at the next request")
            return
        if digests:
            self.forget(digests)
        self._erasures_read_at = now


def last_served() -> LastServed:
    """The app's outage cache (one per process)."""
    st = state()
    found = st.extras.get("last_served")
    if found is None:
        found = st.extras["last_served"] = LastServed()
    return found
