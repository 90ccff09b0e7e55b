"""The limiter: GCRA (the generic cell rate algorithm, a token bucket stored as one timestamp
per identity). A named rate of N per period allows a burst of N, then one request every
period/N; a refused request is told exactly when the next one will pass (Retry-After).

Backends: Redis (one Lua script, atomic, on Redis's own clock, so every API process on every
machine shares one count) or in-process (the zero-setup demo; bounded memory). When Redis fails
the limiter falls back to the in-process backend and logs it: a Redis outage must not take
sign-in down with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from redis.exceptions import NoScriptError, RedisError

from services.config import get_settings
from services.errors import TooManyRequests
from services.ratelimit.connection import ASYNC_TIMEOUT_SECONDS, async_redis_client, redis_client
from services.ratelimit.keys import limit_key
from services.ratelimit.settings import Rate, get_rate_limit_settings

log = logging.getLogger("onestop.ratelimit")


class RateLimited(TooManyRequests):
    code = "rate_limited"
    message = "请求过于频繁，请稍后再试"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until the next request would pass (0 when allowed)


class Backend(Protocol):
    def hit(self, key: str, rate: Rate) -> Decision: ...
    def reset(self, key: str) -> None: ...


class InProcessBackend:
    """GCRA in a dict, behind a lock; the least recently used identities are forgotten first
    once `max_keys` are held (a forgotten identity starts with a full bucket)."""

    def __init__(self, *, max_keys: int = 100_000, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._tat: OrderedDict[str, float] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def hit(self, key: str, rate: Rate) -> Decision:
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(key, now), now)
            new_tat = tat + rate.interval
            allow_at = new_tat - rate.period
            if now < allow_at:
                self._tat.move_to_end(key)
                return Decision(False, allow_at - now)
            self._tat[key] = new_tat
            self._tat.move_to_end(key)
            while len(self._tat) > self._max_keys:
                self._tat.popitem(last=False)
            return Decision(True, 0.0)

    def reset(self, key: str) -> None:
        with self._lock:
            self._tat.pop(key, None)


# KEYS[1] the identity's key; ARGV[1] interval (s), ARGV[2] period (s). Redis's clock, so
# processes on machines with skewed clocks agree. Returns {allowed, retry_after_ms, read}: `read`
# the values of KEYS[2..] (MGET), which a caller reads along to save itself a round trip.
_GCRA = """
local read = {}
if #KEYS > 1 then read = redis.call('MGET', unpack(KEYS, 2, #KEYS)) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {0, math.ceil((allow_at - now) * 1000), read}
end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, 0, read}
"""


class RedisBackend:
    def __init__(self, client) -> None:
        self._client = client
        self._script = client.register_script(_GCRA)

    def hit(self, key: str, rate: Rate) -> Decision:
        allowed, retry_ms, _ = self._script(keys=[key], args=[repr(rate.interval), repr(rate.period)])
        return Decision(bool(int(allowed)), int(retry_ms) / 1000.0)

    def reset(self, key: str) -> None:
        self._client.delete(key)


_GCRA_SHA = hashlib.sha1(_GCRA.encode()).hexdigest()


async def _hit_on_loop(key: str, rate: Rate, also_read: tuple[str, ...]) -> tuple[Decision, list] | None:
    """The Redis backend's hit through the event loop's own client (None without Redis), with
    the values of the keys `also_read`: the same script, by its SHA, loaded into Redis the first
    time Redis does not know it."""
    client = async_redis_client()
    if client is None:
        return None
    arguments = (1 + len(also_read), key, *also_read, repr(rate.interval), repr(rate.period))
    async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
        try:
            allowed, retry_ms, read = await client.evalsha(_GCRA_SHA, *arguments)
        except NoScriptError:
            allowed, retry_ms, read = await client.eval(_GCRA, *arguments)
    return Decision(bool(int(allowed)), int(retry_ms) / 1000.0), read


class RateLimiter:
    """Named limits over a backend, with the in-process fallback for Redis outages."""

    def __init__(self, backend: Backend | None, *, fallback: InProcessBackend) -> None:
        self._backend = backend
        self._fallback = fallback

    @property
    def shared(self) -> bool:
        return self._backend is not None

    def hit(self, name: str, identity: str, rate: Rate | None = None) -> Decision:
        """Count one request of `identity` under the limit `name` (its configured rate unless
        `rate` is given)."""
        rate = rate or get_rate_limit_settings().rate(name)
        key = limit_key(name, identity)
        if self._backend is not None:
            try:
                return self._backend.hit(key, rate)
            except RedisError as error:
                log.warning("rate limiter: Redis unavailable, counting in this process",
                            extra={"error": type(error).__name__, "limit": name})
        return self._fallback.hit(key, rate)

    async def hit_async(self, name: str, identity: str, *, also_read: tuple[str, ...] = ()
                        ) -> tuple[Decision, list | None]:
        """`hit` for async callers: with Redis, one round trip on the event loop (no worker
        thread), which also reads the Redis keys `also_read` (their values, or None when the
        count was not kept in Redis); in-process, a dictionary update."""
        rate = get_rate_limit_settings().rate(name)
        key = limit_key(name, identity)
        if self._backend is not None:
            try:
                answer = await _hit_on_loop(key, rate, also_read)
                if answer is not None:
                    return answer
            except (RedisError, OSError, TimeoutError) as error:
                log.warning("rate limiter: Redis unavailable, counting in this process",
                            extra={"error": type(error).__name__, "limit": name})
        return self._fallback.hit(key, rate), None

    def reset(self, name: str, identity: str) -> None:
        key = limit_key(name, identity)
        if self._backend is not None:
            try:
                self._backend.reset(key)
            except RedisError:
                pass
        self._fallback.reset(key)


@lru_cache
def _limiter_for(redis_url: str | None) -> RateLimiter:
    client = redis_client() if redis_url else None
    fallback = InProcessBackend(max_keys=get_rate_limit_settings().memory_max_keys)
    return RateLimiter(RedisBackend(client) if client is not None else None, fallback=fallback)


def get_limiter() -> RateLimiter:
    """The process's limiter for the configured Redis (or none)."""
    return _limiter_for(get_settings().redis_url)


def reset_limiter() -> None:
    """Forget the process's limiter (tests; a changed configuration)."""
    _limiter_for.cache_clear()


def limits_enabled() -> bool:
    return get_settings().rate_limits.strip().lower() not in ("off", "false", "0", "no")


def enforce(name: str, identity: str, *, message: str | None = None) -> None:
    """Count one request and raise RateLimited (429, Retry-After) when over the limit; a no-op
    when ONESTOP_RATE_LIMITS=off."""
    if not limits_enabled():
        return
    _refuse_if_over(get_limiter().hit(name, identity), name, message)


async def enforce_async(name: str, identity: str, *, message: str | None = None,
                        also_read: tuple[str, ...] = ()) -> list | None:
    """`enforce` for the event loop: what the API's rate-limit dependencies call, so that a
    limited route costs no extra hop to a worker thread. Returns the values of the Redis keys
    `also_read`, read in the same round trip, or None when they were not (no Redis, limits off)."""
    if not limits_enabled():
        return None
    decision, read = await get_limiter().hit_async(name, identity, also_read=also_read)
    _refuse_if_over(decision, name, message)
    return read


def _refuse_if_over(decision: Decision, name: str, message: str | None) -> None:
    if not decision.allowed:
        retry_after = max(1, math.ceil(decision.retry_after))
        raise RateLimited(message or f"请求过于频繁，请 {retry_after} 秒后再试", retry_after=retry_after,
                          detail={"limit": name, "retry_after": retry_after})
