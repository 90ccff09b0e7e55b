"""A small fixed-window rate limiter for the public certificate endpoints.

Redis (INCR + EXPIRE on `onestop:rl:<bucket>:<client hash>:<window start>`) when
`ONESTOP_REDIS_URL` is set, so every API process counts together; an in-process table
otherwise. `ONESTOP_RATE_LIMITS=off` switches it off (load tests on a trusted network). Clients
are identified by a keyed hash of their address, never the address. Self-contained on purpose:
it is meant to be generalised for the rest of the API later.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
from functools import lru_cache

from services.config import get_settings
from services.errors import TooManyRequests
from services.ratelimit.connection import redis_client

log = logging.getLogger("onestop.certificates.ratelimit")

PREFIX = "onestop:rl"


class RateLimited(TooManyRequests):
    code = "rate_limited"
    message = "查询过于频繁，请稍后再试"


def enabled() -> bool:
    return get_settings().rate_limits.strip().lower() not in ("off", "false", "0", "no")


@lru_cache
def _client_key() -> bytes:
    from services.keys import load_or_create_secret

    settings = get_settings()
    return load_or_create_secret(settings, configured=settings.pii_hash_key, filename="pii-hash.key", size=32)


@lru_cache(maxsize=8192)
def client_hash(address: str | None) -> str:
    """Keyed hash (HMAC-SHA256, its own domain) of a client address: what logs and limits use."""
    message = b"onestop/client-address/v1\x00" + (address or "unknown").encode("utf-8")
    return hmac.new(_client_key(), message, hashlib.sha256).hexdigest()


def window(limit_window: int, now: float | None = None) -> tuple[int, int]:
    """(window start, seconds until the next window)."""
    now = time.time() if now is None else now
    start = int(now // limit_window) * limit_window
    return start, max(1, math.ceil(start + limit_window - now))


def redis_key(bucket: str, client: str, start: int) -> str:
    return f"{PREFIX}:{bucket}:{client[:32]}:{start}"


class _LocalCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}

    def hit(self, bucket: str, client: str, start: int) -> int:
        with self._lock:
            if len(self._counts) > 50_000:  # forget finished windows
                for key in [key for key in self._counts if key[2] < start]:
                    del self._counts[key]
            key = (bucket, client, start)
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


_local = _LocalCounter()


def _raise(bucket: str, limit: int, retry_after: int) -> None:
    raise RateLimited(retry_after=retry_after, detail={"limit": limit, "retry_after": retry_after,
                                                       "bucket": bucket})


def check(bucket: str, client: str, *, limit: int, window_seconds: int) -> None:
    """Count one request; raise RateLimited (429, Retry-After) over `limit` per window."""
    if not enabled():
        return
    start, retry_after = window(window_seconds)
    redis = redis_client()
    if redis is None:
        count = _local.hit(bucket, client, start)
    else:
        try:
            pipeline = redis.pipeline(transaction=False)
            key = redis_key(bucket, client, start)
            pipeline.incr(key)
            pipeline.expire(key, window_seconds + 5)
            count = pipeline.execute()[0]
        except Exception:  # noqa: BLE001 - fail open: a Redis outage must not take the checks down
            log.warning("rate limiter unavailable; request allowed", exc_info=True)
            return
    if count > limit:
        _raise(bucket, limit, retry_after)


def check_count(bucket: str, count: int, *, limit: int, window_seconds: int) -> None:
    """For callers that did the INCR themselves (pipelined with other commands)."""
    if count > limit:
        _raise(bucket, limit, window(window_seconds)[1])


def check_local(bucket: str, client: str, *, limit: int, window_seconds: int) -> None:
    if not enabled():
        return
    start, _ = window(window_seconds)
    check_count(bucket, _local.hit(bucket, client, start), limit=limit, window_seconds=window_seconds)


def reset() -> None:
    """Forget every count (tests)."""
    _local.reset()
    redis = redis_client()
    if redis is not None:
        keys = list(redis.scan_iter(match=f"{PREFIX}:*", count=1000))
        if keys:
            redis.delete(*keys)
