"""The helpers of the public endpoints: the status cache's generation guard (Redis), the check
log's background writer, the rate limiter's windows."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlmodel import Session, select

from services.certificates import cache, checklog
from services.certificates.models import CertificatePublicCheck
from tests.support import suite_redis


@pytest.fixture
def redis():
    client = suite_redis()
    if client is None:
        pytest.skip("no Redis configured (ONESTOP_TEST_REDIS_URL)")
    return client


def test_a_reader_that_read_before_a_change_cannot_cache_the_old_answer(redis):
    identifier = f"test-{uuid.uuid4().hex}"

    async def scenario() -> tuple[bool, bool]:
        client = cache.async_client()
        generation = await client.get(cache.generation_key(identifier))  # the reader, before its database read
        cache.invalidate_status([identifier])  # a writer commits a change meanwhile
        stale = await cache.store_if_generation(client, identifier, b"old", generation=generation, ttl_seconds=60)
        generation = await client.get(cache.generation_key(identifier))  # the next reader
        fresh = await cache.store_if_generation(client, identifier, b"new", generation=generation, ttl_seconds=60)
        await client.aclose()
        return stale, fresh

    stale, fresh = asyncio.run(scenario())
    assert (stale, fresh) == (False, True)
    assert redis.get(cache.status_key(identifier)) == b"new"
    cache.invalidate_status([identifier])
    assert redis.get(cache.status_key(identifier)) is None
    assert 0 < redis.ttl(cache.generation_key(identifier)) <= cache.GENERATION_TTL


def test_cache_entries_round_trip():
    entry = cache.encode_entry("id-1", "valid", b'{"a":"\\n"}')
    assert cache.decode_entry(entry) == ("id-1", "valid", b'{"a":"\\n"}')


def test_the_check_log_is_written_in_the_background(engine, seeded):
    marker = f"bg-{uuid.uuid4().hex}"
    checklog.record(kind="status", identifier=marker, certificate_id=None, result="not_found", client="0" * 64)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Session(engine) as session:
            row = session.exec(select(CertificatePublicCheck).where(CertificatePublicCheck.identifier == marker)).first()
        if row is not None:
            break
        time.sleep(0.2)
    assert row is not None and row.result == "not_found" and row.kind == "status"


def test_the_check_log_keeps_a_keyed_hash_of_the_client_never_its_address():
    assert checklog.client_hash("10.0.0.1") == checklog.client_hash("10.0.0.1") != checklog.client_hash("10.0.0.2")
    assert "10.0.0.1" not in checklog.client_hash("10.0.0.1") and len(checklog.client_hash("10.0.0.1")) == 64


def test_the_registry_lookup_on_the_event_loop_agrees_with_the_engine(client, engine, monkeypatch):
    """A status cache miss reads the registry on the event loop (psycopg, PostgreSQL) or through
    the engine in a thread (SQLite, or when the loop's connection fails): the same answer."""
    from services.certificates import public
    from tests.services.certificates.support import issued_residence_certificate

    identifier = issued_residence_certificate(client, name="孙丽")[2]["identifier"]
    unknown = identifier[:-1] + ("0" if identifier[-1] != "0" else "1")
    expected = public._lookup(identifier)
    assert expected[0]["identifier"] == identifier and expected[0]["status"] == "valid"

    async def on_loop(*identifiers):
        assert (public._async_lookups_for_loop() is not None) == (engine.dialect.name == "postgresql")
        return [await public._lookup_on_loop(value) for value in identifiers]

    assert asyncio.run(on_loop(identifier, unknown, identifier)) == [expected, (None, None), expected]

    async def broken(self, identifier):
        raise OSError("connection refused")

    monkeypatch.setattr(public._AsyncLookups, "fetch", broken)
    assert asyncio.run(on_loop(identifier)) == [expected]
