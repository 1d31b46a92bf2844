"""Anonymous accounts: an id and a secret bearer token, stored only as a SHA-256 hash.

A token reads ``pf_<user id>_<secret>``: the id lets one look-up find the account, and the
stored hash of the whole token is compared in constant time. Tokens carry 256 random bits, so
a fast hash is enough (no password stretching is needed for secrets nobody chose).

An account is *active* while its hash exists and no erasure has begun (``EventStore.erase``
marks it ``erasing`` first, deletes it last). Writes that could create a user's keys outside
ingestion (which checks in its own script) go through :func:`while_active`, which checks in the
same script as the write, so none lands after an erasure began and none outlives it.
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

# Lua for the scripts that write a user's keys (here, the ingest scripts, the email's
# confirmation): whether the account refuses a write. It does unless the user's hash holds a
# token hash and no erasure has begun, and (given token_hash, nil for any) holds that one. The
# stored and the sent values are SHA-256 digests, so comparing them with == tells a timer
# nothing it could use to build a token.
ACCOUNT_REFUSES_LUA = """
local function account_refuses(user_hash, token_hash)
  local held = redis.call('HMGET', user_hash, 'token_hash', 'erasing')
  return not held[1] or held[2] ~= false or (token_hash ~= nil and held[1] ~= token_hash)
end
"""

# KEYS[1] the user's hash, KEYS[2] a key of the same user (hash tag {u:<id>}); ARGV[1] a command,
# then its arguments after the key. Runs the command only while the account is active.
_WHILE_ACTIVE_LUA = (
    ACCOUNT_REFUSES_LUA
    + """
if account_refuses(KEYS[1], nil) then return {0} end
return {1, redis.call(ARGV[1], KEYS[2], unpack(ARGV, 2))}
"""
)


class AccountGone(Exception):
    """The user's account no longer exists, or its erasure has begun: nothing was written."""


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


def while_active(redis: Any, keys: Keys, user_id: str, command: str, key: str, *args: Any) -> Any:
    """``command key *args`` (``key`` one of the user's own keys) run only while the user's
    account is active, checked in the same script; its reply, or :class:`AccountGone`."""
    ran = redis.eval(_WHILE_ACTIVE_LUA, 2, keys.user(user_id), key, command, *args)
    if not ran[0]:
        raise AccountGone(user_id)
    return ran[1] if len(ran) > 1 else None


def active(redis: Any, keys: Keys, user_id: str, token_hash: str | None = None) -> bool:
    """Whether the account exists, its erasure has not begun and (with ``token_hash``) it holds
    that token. A look-up, for writes that cannot check in their own script because they go to
    another hash slot: checked before such a write, or after it (and the write taken back)."""
    held, erasing = redis.hmget(keys.user(user_id), ["token_hash", "erasing"])
    if held is None or erasing is not None:
        return False
    return token_hash is None or hmac.compare_digest(held, token_hash)


def authenticate(redis: Any, keys: Keys, token: str) -> str | None:
    """The user id that ``token`` belongs to, or ``None``."""
    user_id = token_user(token)
    if user_id is None:
        return None
    stored = redis.hget(keys.user(user_id), "token_hash")
    if stored is None or not hmac.compare_digest(stored, hash_token(token)):
        return None
    return user_id
