"""The process's Redis client, when ONESTOP_REDIS_URL is set (one pool per URL)."""

from __future__ import annotations

import threading

import redis

from services.config import get_settings

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


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
