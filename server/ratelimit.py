"""Rate limits (flask-limiter, counters in Redis under ``<prefix>:ratelimit``), all in one table.

Registration is limited per client address; events, recommendations and reads per bearer
token (keyed by a hash of the token, never the token itself) and, more loosely, per address.
A breach is a 429 problem with ``Retry-After``. While Redis is unreachable the limiter lets
requests through to the endpoint, which answers 503 itself.
"""

from __future__ import annotations

import hashlib

from flask import Flask, request
from flask_limiter import Limiter
from limits import parse_many

from recommender.settings import Settings, SettingsError

# endpoint -> (setting holding the limit, key: "token" or "address")
LIMITS: dict[str, tuple[str, str]] = {
    "users.create_user": ("rate_limit_register", "address"),
    "events.post_events": ("rate_limit_events", "token"),
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


def client_address() -> str:
    return "addr:" + (request.remote_addr or "unknown")


def token_or_address() -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer ") and len(header) > 7:
        return "tok:" + hashlib.sha256(header[7:].strip().encode()).hexdigest()[:24]
    return client_address()


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
    return limiter
