"""Who is calling, without a database query on every request (when Redis is configured).

Every authenticated request must check that its token is not revoked and know the caller's
current account (roles, point, jurisdiction, bound subject). Reading the account costs one or two
queries per request — more than the work of a simple read. So each API process keeps the
principals it has resolved, each stamped with its account's *generation*: a random value in
Redis that changes (after commit) whenever something a Principal holds changes — real-name
binding, a staff member's role, point, leave or deactivation (`principal_changed`). The
revocation check and the generation are read in one Redis round trip; a cached principal is used
only while its generation is still the current one, so a change made by any process is seen by
every process at its next request. Without Redis (or while it does not answer), both come from
the database, as before.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import threading
import time
from collections import OrderedDict

import anyio.to_thread
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlmodel import Session

from services.accounts import tokens
from services.accounts.principal import Principal
from services.db import again_if_dropped
from services.ratelimit.connection import ASYNC_TIMEOUT_SECONDS, async_redis_client, redis_client

log = logging.getLogger("onestop.accounts")

GENERATION_PREFIX = "onestop:principal-generation:"
GENERATION_TTL_SECONDS = 24 * 3600  # an idle account's key goes; its next request sets a new one
CACHE_SIZE = 20_000
MAX_AGE_SECONDS = 60.0  # even if a change could not be published to Redis, no copy is older than this

_lock = threading.Lock()
_cache: OrderedDict[str, tuple[str, float, Principal]] = OrderedDict()


def redis_keys(claims: tokens.AccessClaims) -> tuple[str, str]:
    """What resolving this token's principal reads from Redis: its revocation, its account's
    generation. A caller already making a Redis round trip (a rate limit) can read them along."""
    return tokens.REVOKED_PREFIX + claims.jti, GENERATION_PREFIX + claims.principal


async def resolve_principal(session: Session, *, claims: tokens.AccessClaims, load,
                            read: list | None = None) -> Principal:
    """The caller of a verified token: 401 when the token was revoked; `load(session, principal_key=)`
    reads the account when the cached principal is missing or stale. `read`: the values of
    `redis_keys(claims)` when the caller has read them already.

    Async so that the common case — a cached principal still current — costs one Redis round trip
    on the event loop (none when `read` is given) and no hop to a worker thread; the database is
    read in a worker thread."""
    client = async_redis_client()
    if client is not None:
        try:
            if read is None:
                async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
                    # one MGET, not a pipeline: a denylist entry's value is "1", and redis-py's
                    # pipeline machinery costs more CPU than the rest of the check
                    read = await client.mget(*redis_keys(claims))
            revoked, generation = read
        except (RedisError, OSError, TimeoutError) as error:
            log.warning("principal cache: Redis unavailable, asking the database", extra={"error": type(error).__name__})
        else:
            if revoked:
                raise tokens.InvalidToken()
            generation = generation.decode() if generation is not None else None
            cached = _cache.get(claims.principal)
            if (generation is not None and cached is not None and cached[0] == generation
                    and time.monotonic() - cached[1] < MAX_AGE_SECONDS):
                return cached[2]
            return await anyio.to_thread.run_sync(functools.partial(_load_and_remember, session, claims, load, generation))
    return await anyio.to_thread.run_sync(functools.partial(_load_from_database, session, claims, load))


def _load_and_remember(session: Session, claims: tokens.AccessClaims, load, generation: str | None) -> Principal:
    # the request's first statement: on a connection the server dropped, run it again
    principal = again_if_dropped(functools.partial(load, session, principal_key=claims.principal),
                                 session=session)
    if generation is None:
        fresh = secrets.token_hex(8)
        try:
            # NX: if a change set a generation meanwhile, this load may be older than it
            client = redis_client()
            key = GENERATION_PREFIX + claims.principal
            generation = fresh if client is not None and client.set(key, fresh, nx=True,
                                                                    ex=GENERATION_TTL_SECONDS) else None
        except RedisError:
            generation = None
    if generation is not None:
        _remember(claims.principal, generation, principal)
    return principal


def _load_from_database(session: Session, claims: tokens.AccessClaims, load) -> Principal:
    def check_and_load() -> Principal:
        if tokens.is_access_token_revoked(session, jti=claims.jti):
            raise tokens.InvalidToken()
        return load(session, principal_key=claims.principal)

    # the request's first statements: on a connection the server dropped, run them again
    return again_if_dropped(check_and_load, session=session)


def _remember(principal_key: str, generation: str, principal: Principal) -> None:
    with _lock:
        _cache[principal_key] = (generation, time.monotonic(), principal)
        _cache.move_to_end(principal_key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def principal_changed(session: Session, *, principal_key: str) -> None:
    """Call in the transaction that changes what an account's Principal holds: once it commits,
    every process stops using its cached copy."""
    if not session.in_transaction():
        session.begin()  # so that a rollback before any statement still forgets the change
    pending = session.info.setdefault("changed_principals", set())
    if not pending:
        event.listen(session, "after_commit", _publish, once=True)
        event.listen(session, "after_soft_rollback", _forget, once=True)
    pending.add(principal_key)


def _forget(session: Session, _previous_transaction=None) -> None:
    session.info.pop("changed_principals", None)


def _publish(session: Session) -> None:
    changed = session.info.pop("changed_principals", set())
    with _lock:
        for principal_key in changed:
            _cache.pop(principal_key, None)
    client = redis_client()
    if client is None or not changed:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for principal_key in changed:
                pipe.set(GENERATION_PREFIX + principal_key, secrets.token_hex(8), ex=GENERATION_TTL_SECONDS)
            pipe.execute()
    except RedisError as error:
        # other processes may use their cached copy for up to MAX_AGE_SECONDS: say so loudly
        log.error("principal cache: could not publish a change to Redis", extra={"error": type(error).__name__})
