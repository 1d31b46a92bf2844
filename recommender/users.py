"""Anonymous accounts: an id and a secret bearer token, stored only as a SHA-256 hash.

A token reads ``pf_<user id>_<secret>``: the id lets one look-up find the account, and the
stored hash of the whole token is compared in constant time. Tokens carry 256 random bits, so
a fast hash is enough (no password stretching is needed for secrets nobody chose).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from recommender.keys import Keys

_TOKEN = re.compile(r"pf_([0-9a-f]{32})_[A-Za-z0-9_-]{43}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(redis: Any, keys: Keys, now: float | None = None) -> tuple[str, str]:
    """Register an anonymous user; returns ``(user_id, token)``. The token is not stored."""
    now = time.time() if now is None else now
    user_id = secrets.token_hex(16)
    token = f"pf_{user_id}_{secrets.token_urlsafe(32)}"
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.user(user_id), mapping={"token_hash": hash_token(token), "created": int(now)})
    pipe.zadd(keys.users(), {user_id: int(now)})
    pipe.execute()
    return user_id, token


def token_user(token: str) -> str | None:
    """The user id a well-formed ``token`` names, or ``None``; nothing is looked up, so the
    token may still be wrong (``EventStore.ingest`` with its hash checks it where it writes)."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def authenticate(redis: Any, keys: Keys, token: str) -> str | None:
    """The user id that ``token`` belongs to, or ``None``."""
    user_id = token_user(token)
    if user_id is None:
        return None
    stored = redis.hget(keys.user(user_id), "token_hash")
    if stored is None or not hmac.compare_digest(stored, hash_token(token)):
        return None
    return user_id
