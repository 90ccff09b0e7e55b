"""The limiter: GCRA in process and in Redis, the fallback, keys without identities in clear."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.config import get_settings
from services.ratelimit import (InProcessBackend, Rate, RateLimited, RateLimiter, enforce, enforce_async, get_limiter,
                                parse_rate, reset_limiter)
from services.ratelimit.keys import identity_hash, limit_key
from services.ratelimit.settings import get_rate_limit_settings

REDIS_URL = os.environ.get("ONESTOP_TEST_REDIS_URL")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("text, count, period", [("10/minute", 10, 60), ("5/15minutes", 5, 900), ("100/hour", 100, 3600),
                                                 ("3/s", 3, 1), ("1/day", 1, 86400), (" 7 / 2 hours ", 7, 7200)])
def test_rates_parse(text, count, period):
    assert parse_rate(text) == Rate(count=count, period=period)


@pytest.mark.parametrize("text", ["", "ten/minute", "0/minute", "5/fortnight", "5", "-1/minute", "5/0minutes"])
def test_bad_rates_are_refused(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_in_process_allows_a_burst_then_one_per_interval():
    clock = Clock()
    backend = InProcessBackend(clock=clock)
    rate = Rate(count=3, period=60)
    assert [backend.hit("k", rate).allowed for _ in range(3)] == [True, True, True]
    refused = backend.hit("k", rate)
    assert not refused.allowed and refused.retry_after == pytest.approx(20)
    clock.now += 19.9
    assert not backend.hit("k", rate).allowed
    clock.now += 0.2
    assert backend.hit("k", rate).allowed
    assert backend.hit("other", rate).allowed  # identities are counted apart


def test_in_process_memory_is_bounded():
    backend = InProcessBackend(max_keys=10, clock=Clock())
    rate = Rate(count=1, period=60)
    for index in range(100):
        backend.hit(f"k{index}", rate)
    assert len(backend._tat) == 10
    assert backend.hit("k0", rate).allowed  # forgotten: a full bucket again


def test_keys_carry_a_keyed_hash_never_the_identity():
    identity = "361130198803150516"
    key = limit_key("submit", identity)
    assert identity not in key and key.startswith("onestop:rl:submit:")
    assert identity_hash(identity) == identity_hash(identity) != identity_hash(identity + "x")


class BrokenBackend:
    def hit(self, key, rate):
        raise RedisConnectionError("down")

    def reset(self, key):
        raise RedisConnectionError("down")


def test_a_redis_outage_falls_back_to_counting_in_process(caplog):
    limiter = RateLimiter(BrokenBackend(), fallback=InProcessBackend())
    rate = Rate(count=2, period=60)
    assert [limiter.hit("x", "a", rate).allowed for _ in range(3)] == [True, True, False]
    assert "Redis unavailable" in caplog.text


@pytest.fixture
def limits_on(monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limits", "on")
    reset_limiter()
    yield
    reset_limiter()


def test_enforce_raises_429_with_retry_after_and_off_means_off(monkeypatch, limits_on):
    monkeypatch.setattr(get_rate_limit_settings(), "submit", "2/minute")
    identity = f"principal:test-{uuid.uuid4().hex}"
    enforce("submit", identity)
    enforce("submit", identity)
    with pytest.raises(RateLimited) as raised:
        enforce("submit", identity)
    assert raised.value.status_code == 429 and 1 <= raised.value.retry_after <= 30
    assert raised.value.detail["limit"] == "submit"
    monkeypatch.setattr(get_settings(), "rate_limits", "off")
    for _ in range(10):
        enforce("submit", identity)


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (ONESTOP_TEST_REDIS_URL)")
def test_redis_backend_shares_the_count_between_limiters(limits_on):
    import redis

    from services.ratelimit import RedisBackend

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    first = RateLimiter(RedisBackend(client), fallback=InProcessBackend())
    second = RateLimiter(RedisBackend(redis.Redis.from_url(REDIS_URL, decode_responses=True)), fallback=InProcessBackend())
    rate = Rate(count=3, period=60)
    identity = f"address:{uuid.uuid4().hex}"
    results = [limiter.hit("staff-login", identity, rate).allowed for limiter in (first, second, first, second)]
    assert results == [True, True, True, False]
    key = limit_key("staff-login", identity)
    assert 0 < client.pttl(key) <= 61_000  # the key expires with the bucket
    refused = second.hit("staff-login", identity, rate)
    assert not refused.allowed and 0 < refused.retry_after <= 20.5
    first.reset("staff-login", identity)
    assert second.hit("staff-login", identity, rate).allowed
    assert get_limiter().shared  # the process limiter uses the configured Redis


def test_the_async_enforce_counts_like_the_sync_one(monkeypatch, limits_on):
    """What the API's dependencies call: the same limit, the same count (in Redis when configured,
    else in this process), whichever of the two counted a request."""
    monkeypatch.setattr(get_rate_limit_settings(), "submit", "3/minute")
    identity = f"principal:test-{uuid.uuid4().hex}"

    async def twice() -> None:
        await enforce_async("submit", identity)
        await enforce_async("submit", identity)

    asyncio.run(twice())
    enforce("submit", identity)
    with pytest.raises(RateLimited) as raised:
        asyncio.run(enforce_async("submit", identity))
    assert raised.value.retry_after >= 1 and raised.value.detail["limit"] == "submit"
    monkeypatch.setattr(get_settings(), "rate_limits", "off")
    asyncio.run(enforce_async("submit", identity))


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (ONESTOP_TEST_REDIS_URL)")
def test_the_async_enforce_falls_back_to_this_process_when_redis_is_away(monkeypatch, limits_on, caplog):
    import redis.asyncio as aioredis

    from services.ratelimit import limiter

    monkeypatch.setattr(get_rate_limit_settings(), "submit", "2/minute")
    monkeypatch.setattr(limiter, "async_redis_client",
                        lambda: aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))
    identity = f"principal:test-{uuid.uuid4().hex}"

    async def three() -> list[bool]:
        outcomes = []
        for _ in range(3):
            try:
                await enforce_async("submit", identity)
                outcomes.append(True)
            except RateLimited:
                outcomes.append(False)
        return outcomes

    assert asyncio.run(three()) == [True, True, False]
    assert "Redis unavailable" in caplog.text
