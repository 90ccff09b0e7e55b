"""The per-process principal cache: a change committed anywhere (real-name binding, deactivation)
is seen at the caller's next request in every process sharing the Redis; without Redis, or while
it does not answer, every request reads the account from the database."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlmodel import Session, select

from services.accounts import principal_cache, tokens
from services.accounts.principal_cache import principal_changed
from services.accounts.service import load_principal
from services.db import get_engine
from services.points.models import Staff

REDIS_URL = os.environ.get("ONESTOP_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs Redis (ONESTOP_TEST_REDIS_URL)")


def resolve_principal(session, **arguments):
    """One request's resolution (each on a fresh event loop, as the test client's are)."""
    return asyncio.run(principal_cache.resolve_principal(session, **arguments))


class CountingLoader:
    def __init__(self):
        self.calls = 0

    def __call__(self, session, *, principal_key):
        self.calls += 1
        return load_principal(session, principal_key=principal_key)


def _claims(principal_key: str) -> tokens.AccessClaims:
    token, _, _ = tokens.new_access_token(principal=principal_key, roles=("clerk",), family="f")
    return tokens.decode_access_token(token)


def _a_clerk(seeded) -> Staff:
    with Session(get_engine()) as session:
        return session.exec(select(Staff).where(Staff.role == "clerk", Staff.active.is_(True))).first()


@needs_redis
def test_cached_until_a_change_is_committed_then_reloaded_everywhere(seeded):
    clerk = _a_clerk(seeded)
    claims, load = _claims(f"staff:{clerk.id}"), CountingLoader()
    principal_cache._cache.clear()  # earlier tests' requests by this clerk may have cached it
    with Session(get_engine()) as session:
        first = resolve_principal(session, claims=claims, load=load)
        again = resolve_principal(session, claims=claims, load=load)
    assert again == first and load.calls == 1  # the second request read no account row

    with Session(get_engine()) as session:  # a change in this process: published after commit
        staff = session.get(Staff, clerk.id)
        staff.display_name = staff.display_name + "（改）"
        session.add(staff)
        principal_changed(session, principal_key=f"staff:{clerk.id}")
        assert resolve_principal(session, claims=claims, load=load).name == first.name  # not committed yet
        session.commit()
    with Session(get_engine()) as session:
        assert resolve_principal(session, claims=claims, load=load).name == first.name + "（改）"
    calls = load.calls

    import redis  # another process's change: only the generation in Redis moves
    redis.Redis.from_url(REDIS_URL).set(principal_cache.GENERATION_PREFIX + f"staff:{clerk.id}", "other-process")
    with Session(get_engine()) as session:
        resolve_principal(session, claims=claims, load=load)
    assert load.calls == calls + 1

    with Session(get_engine()) as session:  # put the name back, and deactivate: the next request is a 401
        staff = session.get(Staff, clerk.id)
        staff.display_name, staff.active = first.name, False
        session.add(staff)
        principal_changed(session, principal_key=f"staff:{clerk.id}")
        session.commit()
    try:
        with Session(get_engine()) as session, pytest.raises(tokens.InvalidToken):
            resolve_principal(session, claims=claims, load=load)
    finally:
        with Session(get_engine()) as session:
            staff = session.get(Staff, clerk.id)
            staff.active = True
            session.add(staff)
            principal_changed(session, principal_key=f"staff:{clerk.id}")
            session.commit()


@needs_redis
def test_a_rolled_back_change_publishes_nothing(seeded):
    import redis

    clerk = _a_clerk(seeded)
    key = principal_cache.GENERATION_PREFIX + f"staff:{clerk.id}"
    with Session(get_engine()) as session:
        resolve_principal(session, claims=_claims(f"staff:{clerk.id}"), load=load_principal)
    before = redis.Redis.from_url(REDIS_URL).get(key)
    with Session(get_engine()) as session:
        principal_changed(session, principal_key=f"staff:{clerk.id}")
        session.rollback()
        session.commit()  # a later commit of the same session publishes nothing either
    assert redis.Redis.from_url(REDIS_URL).get(key) == before


def test_without_redis_every_request_reads_the_account(seeded, monkeypatch):
    monkeypatch.setattr(principal_cache, "async_redis_client", lambda: None)
    clerk = _a_clerk(seeded)
    claims, load = _claims(f"staff:{clerk.id}"), CountingLoader()
    with Session(get_engine()) as session:
        for _ in range(3):
            resolve_principal(session, claims=claims, load=load)
    assert load.calls == 3


def test_a_revoked_token_is_refused_whatever_is_cached(seeded):
    clerk = _a_clerk(seeded)
    claims = _claims(f"staff:{clerk.id}")
    with Session(get_engine()) as session:
        resolve_principal(session, claims=claims, load=load_principal)
        tokens.revoke_access_token(session, claims=claims)
        session.commit()
    with Session(get_engine()) as session, pytest.raises(tokens.InvalidToken):
        resolve_principal(session, claims=claims, load=load_principal)


class _Hanging:
    """A Redis that accepts the connection and never answers; counts the commands the caller's
    own timeout cut off."""

    hung = cut_off = 0

    async def mget(self, *_keys):
        type(self).hung += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            type(self).cut_off += 1
            raise


class _Refusing(_Hanging):
    async def mget(self, *_keys):
        raise ConnectionError("connection refused")


@pytest.mark.parametrize("redis_double", [_Hanging, _Refusing])
def test_a_hanging_or_refusing_redis_falls_back_to_the_database(seeded, monkeypatch, redis_double):
    monkeypatch.setattr(principal_cache, "async_redis_client", redis_double)
    monkeypatch.setattr(principal_cache, "ASYNC_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(redis_double, "hung", 0)
    monkeypatch.setattr(redis_double, "cut_off", 0)
    clerk = _a_clerk(seeded)
    claims, load = _claims(f"staff:{clerk.id}"), CountingLoader()
    with Session(get_engine()) as session:
        assert resolve_principal(session, claims=claims, load=load).account_id == clerk.id
        tokens.revoke_access_token(session, claims=claims)
        session.commit()
    with Session(get_engine()) as session, pytest.raises(tokens.InvalidToken):  # the database's denylist
        resolve_principal(session, claims=claims, load=load)
    assert load.calls == 1
    # a hanging Redis was given up on by the timeout both times, not waited out
    assert redis_double.cut_off == redis_double.hung == (2 if redis_double is _Hanging else 0)
