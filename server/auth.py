"""Bearer-token authentication for user endpoints and the admin API.

``require_user()`` returns the caller's user id or raises a 401 problem; user tokens are looked
up by the id they embed and compared by hash in constant time (:mod:`recommender.users`).
``POST /v1/events`` also passes the token's hash to ``EventStore.ingest``, which checks the
account again in the call that stores the batch (the events lane relies on that check alone).
``require_admin()`` compares the admin token from the environment in constant time: no token is
401, any other token (a user's included) is 403, and with no admin token configured the admin
API answers 403 to everyone.
"""

from __future__ import annotations

import hmac

from flask import g, request

from recommender import users
from server.errors import Problem
from server.state import state

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="paperfeed"'}


def parse_bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or ``None``."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_token() -> str | None:
    """The current request's bearer token, or ``None``."""
    return parse_bearer(request.headers.get("Authorization", ""))


def require_user() -> str:
    """The authenticated user's id (cached on ``g`` for the request)."""
    if getattr(g, "user_id", None):
        return g.user_id
    token = bearer_token()
    if token is None:
        raise Problem(401, "send Authorization: Bearer <token>", headers=CHALLENGE)
    st = state()
    user_id = users.authenticate(st.redis, st.keys, token)
    if user_id is None:
        raise invalid_token()
    g.user_id = user_id
    return user_id


def invalid_token() -> Problem:
    """The 401 for a bearer token that no account holds."""
    return Problem(
        401,
        "the token is not valid (revoked, erased or mistyped)",
        headers=CHALLENGE,
        kind="invalid-token",
    )


def require_admin() -> None:
    token = bearer_token()
    if token is None:
        raise Problem(401, "send Authorization: Bearer <admin token>", headers=CHALLENGE)
    expected = state().settings.admin_token
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Problem(403, "this token may not use the admin API")
