"""Rate limits (flask-limiter, counters in Redis under ``<prefix>:ratelimit``), all in one table.

Registration is limited per client address; events, recommendations and reads per bearer
token (keyed by a hash of the token, never the token itself) and, more loosely, per address.
A breach is a 429 problem with ``Retry-After``. While Redis is unreachable the limiter lets
requests through to the endpoint, which answers 503 itself.

``POST /v1/events`` is mostly answered by the events lane (:mod:`server.lane`), outside Flask's
request cycle where flask-limiter's decorators cannot reach, so its two limits are
:class:`EventLimits`: the same limits, hit with flask-limiter's own strategy and storage, by
the lane and, for the requests the lane hands to Flask, by a before-request hook; a request is
counted once either way.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, request
from flask_limiter import Limiter
from limits import parse_many

from recommender.settings import Settings, SettingsError
from server.errors import Problem

log = logging.getLogger(__name__)

# endpoint -> (setting holding the limit, key: "token" or "address")
LIMITS: dict[str, tuple[str, str]] = {
    "users.create_user": ("rate_limit_register", "address"),
    "recommendations.get_recommendations": ("rate_limit_reads", "token"),
    "me.history": ("rate_limit_reads", "token"),
    "me.export": ("rate_limit_reads", "token"),
    "me.erase": ("rate_limit_reads", "token"),
    "catalogue.get_trending": ("rate_limit_reads", "token"),
    "catalogue.get_paper": ("rate_limit_reads", "token"),
    # subscribing sends an email to the address given: the registration limit applies
    "email.subscribe": ("rate_limit_register", "token"),
    "email.get_subscription": ("rate_limit_reads", "token"),
    "email.unsubscribe_me": ("rate_limit_reads", "token"),
    "email.confirm": ("rate_limit_register", "address"),
    "email.unsubscribe_page": ("rate_limit_register", "address"),
    "email.one_click_unsubscribe": ("rate_limit_register", "address"),
}
SETTINGS = (
    "rate_limit_register",
    "rate_limit_events",
    "rate_limit_reads",
    "rate_limit_per_address",
)


def address_key(remote_addr: str | None) -> str:
    """The counter key of a client address."""
    return "addr:" + (remote_addr or "unknown")


def client_address() -> str:
    return address_key(request.remote_addr)


def token_key(authorization: str) -> str | None:
    """The counter key of a bearer token (a hash: no token is ever stored), or ``None``."""
    if authorization.lower().startswith("bearer ") and len(authorization) > 7:
        return "tok:" + hashlib.sha256(authorization[7:].strip().encode()).hexdigest()[:24]
    return None


def token_or_address() -> str:
    return token_key(request.headers.get("Authorization", "")) or client_address()


EVENTS_ENDPOINT = "events.post_events"
# environ key: set by the lane when it hit the events limits of a request it hands to Flask
# (value: ``None`` within the limits, else the :class:`Breach`), so Flask does not count it again
EVENTS_COUNTED = "paperfeed.events_limits"
_EVENTS_SCOPE = "events"


@dataclass(frozen=True)
class Breach:
    """A limit the request went over: what it allows, and when to come back."""

    limit: str
    retry_after_s: int

    def problem(self) -> Problem:
        return Problem(429, self.limit, headers={"Retry-After": str(self.retry_after_s)})


class EventLimits:
    """The limits of ``POST /v1/events``: ``rate_limit_events`` per token and
    ``rate_limit_per_address`` per client address, as flask-limiter applies the others."""

    def __init__(self, limiter: Limiter, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self._limiter = limiter
        self._limits = [(item, True) for item in parse_many(settings.rate_limit_events)] + [
            (item, False) for item in parse_many(settings.rate_limit_per_address)
        ]

    def hit(self, authorization: str, remote_addr: str | None) -> Breach | None:
        """Count one request against every limit; the first limit it exceeds, or ``None``."""
        if not self.enabled:
            return None
        address = address_key(remote_addr)
        token = token_key(authorization) or address
        strategy = self._limiter.limiter
        try:
            for item, per_token in self._limits:
                key = token if per_token else address
                if not strategy.hit(item, key, _EVENTS_SCOPE):
                    reset = strategy.get_window_stats(item, key, _EVENTS_SCOPE).reset_time
                    return Breach(str(item), max(1, math.ceil(reset - time.time())))
        except Exception as exc:  # as flask-limiter's swallow_errors: the endpoint answers 503
            log.warning("rate limit store unavailable: %s", type(exc).__name__)
        return None


def init_app(app: Flask, settings: Settings, key_prefix: str) -> Limiter:
    """Attach a limiter to ``app`` and apply :data:`LIMITS` to the registered endpoints."""
    for name in SETTINGS:
        try:
            parse_many(getattr(settings, name))
        except ValueError as exc:
            raise SettingsError(f"PAPERFEED_{name.upper()}: {exc}") from None
    limiter = Limiter(
        key_func=client_address,
        # switched off (PAPERFEED_RATE_LIMITS=0): not attached, so no request pays for its hooks
        app=app if settings.rate_limit_enabled else None,
        enabled=settings.rate_limit_enabled,
        storage_uri=settings.redis_url or "memory://",
        storage_options={
            "socket_timeout": settings.redis_timeout_s,
            "socket_connect_timeout": settings.redis_timeout_s,
            "key_prefix": key_prefix,
        },
        strategy="fixed-window",
        headers_enabled=True,
        swallow_errors=True,
    )
    events = EventLimits(limiter, settings)
    app.extensions["paperfeed"].extras["event_limits"] = events
    if not settings.rate_limit_enabled:
        return limiter
    per_address = settings.rate_limit_per_address
    for endpoint, (setting, key) in LIMITS.items():
        view = app.view_functions.get(endpoint)
        if view is None:
            continue
        key_func = token_or_address if key == "token" else client_address
        view = limiter.limit(getattr(settings, setting), key_func=key_func)(view)
        if key == "token":
            view = limiter.limit(per_address, key_func=client_address)(view)
        app.view_functions[endpoint] = view

    @app.before_request
    def _events_limits() -> None:
        if request.endpoint != EVENTS_ENDPOINT:
            return
        environ = request.environ
        if EVENTS_COUNTED in environ:
            breach = environ[EVENTS_COUNTED]
        else:
            breach = events.hit(environ.get("HTTP_AUTHORIZATION", ""), request.remote_addr)
        if breach is not None:
            raise breach.problem()

    return limiter
