"""The process's Redis clients, when ONESTOP_REDIS_URL is set: a thread-safe one for sync code
(one pool per URL) and one per event loop for async code."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import redis

from services.config import get_settings

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}
_async_clients: dict[tuple[int, str], tuple[Any, Any]] = {}  # (id(loop), url) -> (loop, client)


def redis_client() -> redis.Redis | None:
    """A shared client (thread-safe, pooled) or None when Redis is not configured. Calls fail
    fast (1 s) so a Redis outage degrades a request instead of hanging it."""
    url = get_settings().redis_url
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                              health_check_interval=30, decode_responses=True)
                _clients[url] = client
    return client


ASYNC_TIMEOUT_SECONDS = 2.0


def async_redis_client():
    """A redis.asyncio.Redis bound to the running event loop (None without Redis): a
    connection pool belongs to one loop, and test clients run several loops. Replies are bytes.

    Without a socket timeout of its own: redis-py then wraps every command's send in
    `asyncio.wait_for`, a new task each time (~15% of the CPU of a cached status answer).
    Callers bound each use with `asyncio.timeout(ASYNC_TIMEOUT_SECONDS)` instead; a command
    cancelled by it disconnects its connection (redis-py does so on any interruption)."""
    url = get_settings().redis_url
    if not url:
        return None
    loop = asyncio.get_running_loop()
    entry = _async_clients.get((id(loop), url))
    if entry is None or entry[0] is not loop:
        import redis.asyncio as aioredis

        for key, (other_loop, _client) in list(_async_clients.items()):
            if other_loop.is_closed():
                del _async_clients[key]
        entry = (loop, aioredis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=2))
        _async_clients[(id(loop), url)] = entry
    return entry[1]
