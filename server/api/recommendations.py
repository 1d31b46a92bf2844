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

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

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
    again, marked ``stale``; anyone else gets the 503 problem.
    """
    cache = last_served()
    key = (hashlib.sha256((bearer_token() or "").encode()).hexdigest(), args["limit"])
    try:
        answer = recommender().recommend(require_user(), args["limit"])
    except UNAVAILABLE_ERRORS:
        fallback = cache.get(key)
        if fallback is None or time.time() - fallback["served_at"] > STALE_FOR_S:
            raise
        log.warning("redis unavailable: serving a stale list")
        return {**fallback, "stale": True}
    cache.put(key, {**answer, "served_at": time.time()})
    return answer


STALE_FOR_S = 6 * 3600
"""The longest a stale list is served during an outage."""


class LastServed:
    """The last answer per (token digest, limit), oldest evicted first; thread-safe.

    Answers are kept as JSON text, one string each, at most ``size`` of them and ``max_bytes``
    in all (an answer carries up to 100 abstracts). As dicts, 2,000 answers were 120,000 more
    objects for every full garbage collection of the process to walk: pauses over 100 ms,
    which a string (never walked) does not cause.
    """

    def __init__(self, size: int = 10_000, max_bytes: int = 64 << 20) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> dict | None:
        with self._lock:
            text = self._items.get(key)
        return None if text is None else json.loads(text)

    def put(self, key: tuple[str, int], value: dict) -> None:
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(text) - (len(old) if old is not None else 0)
            self._items[key] = text
            while self._items and (len(self._items) > self.size or self._bytes > self.max_bytes):
                self._bytes -= len(self._items.popitem(last=False)[1])


def last_served() -> LastServed:
    st = state()
    found = st.extras.get("last_served")
    if found is None:
        found = st.extras["last_served"] = LastServed()
    return found
