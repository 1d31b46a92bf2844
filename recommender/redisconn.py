"""Connections to Redis with timeouts set, so that no request ever hangs on a dead server.

``REDIS_URL`` may name a single server (``redis://``, ``rediss://``, ``unix://``) or a Redis
Cluster (``redis+cluster://host:port`` or ``rediss+cluster://...``: any node of the cluster).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")

# What a caller catches to say "Redis is unreachable": connection refused or reset, timeouts,
# a cluster that lost its slots, a server still loading its AOF after a restart.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
)


# Redis answers but refuses writes, by the first word of its error: out of memory (``maxmemory``
# with no eviction), unable to persist (a failed RDB snapshot with ``stop-writes-on-bgsave-error``),
# a replica (connections still on an old primary after a failover), too few replicas for
# ``min-replicas-to-write``. redis-py drops the first word of the first and third.
_REFUSALS = {
    "OOM": "it is out of memory",
    "MISCONF": "it cannot save to disk",
    "READONLY": "it is a read-only replica",
    "NOREPLICAS": "too few replicas are in sync",
}


def refused_write(exc: BaseException) -> str | None:
    """Why Redis refused a write, as words for a person, if ``exc`` is such a refusal; else None.

    A script's error carries the refusal of its first write (nothing of it was written); a
    pipeline's, prefixed by redis-py with the command's number, that of its first refused call.
    """
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return _REFUSALS["OOM"]
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return _REFUSALS["READONLY"]
    if isinstance(exc, redis.exceptions.ResponseError):
        reply = str(exc).rsplit(" of pipeline caused error: ", 1)[-1]
        return _REFUSALS.get(reply.split(" ", 1)[0])
    return None


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def connect(url: str, timeout_s: float = 2.0, decode_responses: bool = True) -> Any:
    """A client for ``url`` whose every call gives up after ``timeout_s`` seconds."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "decode_responses": decode_responses,
        "health_check_interval": 30,
    }
    if is_cluster_url(url):
        plain = url.replace("+cluster", "", 1)
        return RedisCluster.from_url(plain, **options)
    return redis.Redis.from_url(url, retry_on_timeout=False, **options)


def bytes_client(client: Any) -> Any:
    """A new client on ``client``'s server (or Cluster) that replies raw bytes, same timeouts."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node() or client.get_nodes()[0]
        options = client.nodes_manager.connection_kwargs
        return RedisCluster(
            host=node.host,
            port=node.port,
            decode_responses=False,
            socket_timeout=options.get("socket_timeout"),
            socket_connect_timeout=options.get("socket_connect_timeout"),
        )
    source = client.connection_pool
    kwargs = {**source.connection_kwargs, "decode_responses": False}
    pool = source.__class__(connection_class=source.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)
