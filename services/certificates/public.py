"""Public checks, no login: a certificate's status by its identifier, and a PDF's verification.

Both are rate limited per client address (services.ratelimit: `public-status`, `public-verify`),
and every check is logged (checklog.py). The status answer is cached in Redis when it is
configured (cache.py), and stays correct the moment a status changes. The hot path (a cached
answer) is one Redis round trip: the limit's script also reads the cached answer and its
generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from functools import lru_cache
from typing import Any

import anyio

from services.certificates import cache, checklog
from services.certificates.identifiers import InvalidCertificateIdentifier, parse_identifier
from services.certificates.settings import get_certificate_settings
from services.errors import NotFound
from services.ratelimit import RateLimited, address_identity, enforce, enforce_async

log = logging.getLogger("onestop.certificates.public")

STATUS_LIMIT = "public-status"
VERIFY_LIMIT = "public-verify"


class UnknownCertificateIdentifier(NotFound):
    code = "certificate_not_found"
    message = "未找到该电子证照"


class MalformedCertificateIdentifier(NotFound):
    """A malformed identifier cannot name any certificate: a 404 like an unknown one, with the
    reason (prefix, parts, check character...) so a person who mistyped it can see where."""

    code = "invalid_certificate_identifier"
    message = "电子证照标识不合法"


@lru_cache(maxsize=65536)
def _checked_identifier(identifier: str) -> str:
    """parse_identifier, remembered for identifiers that are valid (asked about again and
    again); a malformed one raises every time and is never cached."""
    parse_identifier(identifier)
    return identifier


def _lookup(identifier: str) -> tuple[dict[str, Any] | None, str | None]:
    """The registry lookup through the project's (synchronous) engine: SQLite, or a fallback."""
    from services.certificates.service import public_status_by_identifier
    from services.db import get_engine

    with get_engine().connect() as connection:
        return public_status_by_identifier(connection, identifier=identifier)


class _AsyncLookups:
    """A few psycopg AsyncConnections (autocommit, read-only use) of one event loop, for the
    registry lookup of a status cache miss on PostgreSQL. Running the one SELECT on the loop
    costs a quarter of the CPU of handing it to a worker thread and back through SQLAlchemy's
    pool (which also pings each connection it hands out): misses are what a burst of first-time
    QR scans consists of."""

    SIZE = 4

    def __init__(self, conninfo: str, sql: str) -> None:
        self.conninfo, self.sql = conninfo, sql
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(self.SIZE)

    async def fetch(self, identifier: str) -> tuple[dict[str, Any] | None, str | None]:
        import psycopg
        from psycopg.rows import namedtuple_row

        from services.certificates.service import public_answer

        async with self.slots:
            connection = self.idle.pop() if self.idle else None
            try:
                if connection is None or connection.closed:
                    connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True,
                                                                       row_factory=namedtuple_row)
                cursor = await connection.execute(self.sql, {"identifier": identifier})
                row = await cursor.fetchone()
            except BaseException:  # broken, or the request was cancelled mid-query: never reuse it
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()
                raise
            self.idle.append(connection)
        return public_answer(row)


_async_lookups: dict[tuple[int, str], tuple[Any, _AsyncLookups | None]] = {}


def _async_lookups_for_loop() -> _AsyncLookups | None:
    """This event loop's lookups, or None when the database is not PostgreSQL through psycopg."""
    from sqlalchemy.engine import make_url

    from services.config import get_settings

    url = get_settings().resolved_database_url
    loop = asyncio.get_running_loop()
    entry = _async_lookups.get((id(loop), url))
    if entry is None or entry[0] is not loop:
        parsed = make_url(url)
        lookups = None
        if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
            from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

            from services.certificates.service import public_status_sql

            conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            lookups = _AsyncLookups(conninfo, public_status_sql(psycopg_dialect.dialect()))
        for key, (other_loop, _lookups) in list(_async_lookups.items()):
            if other_loop.is_closed():
                del _async_lookups[key]
        entry = _async_lookups[(id(loop), url)] = (loop, lookups)
    return entry[1]


async def _lookup_on_loop(identifier: str) -> tuple[dict[str, Any] | None, str | None]:
    lookups = _async_lookups_for_loop()
    if lookups is not None:
        try:
            return await lookups.fetch(identifier)
        except Exception:  # noqa: BLE001 - the synchronous engine may still get through
            log.warning("asynchronous registry lookup failed; using the engine", exc_info=True)
    return await anyio.to_thread.run_sync(_lookup, identifier)


def _ttl_seconds() -> int:
    """The configured cache time, but never past the coming midnight (Asia/Shanghai), when a
    certificate may expire."""
    import datetime as dt

    from services.certificates.service import CHINA

    now = dt.datetime.now(CHINA)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=CHINA)
    return max(1, min(get_certificate_settings().certificate_status_cache_seconds,
                      int((midnight - now).total_seconds())))


async def status_json(identifier: str, *, client_address: str | None) -> bytes:
    """The JSON body of GET /public/certificates/{identifier}/status."""
    client = checklog.client_hash(client_address)
    limit_identity = address_identity(client_address)
    try:
        _checked_identifier(identifier)
    except InvalidCertificateIdentifier as error:
        await _counted(limit_identity, client, identifier)
        checklog.record(kind="status", identifier=identifier, certificate_id=None, result="invalid_identifier",
                        client=client)
        raise MalformedCertificateIdentifier(error.message, detail=error.detail) from None

    redis = cache.async_client()
    generation = None
    caching = redis is not None and get_certificate_settings().certificate_status_cache_seconds > 0
    # the limit's script reads the cached answer and its generation along (None: not read there)
    read = await _counted(limit_identity, client, identifier,
                          also_read=(cache.status_key(identifier), cache.generation_key(identifier)) if redis else ())
    if redis is not None and read is None:
        try:
            async with asyncio.timeout(cache.ASYNC_TIMEOUT_SECONDS):
                read = await redis.mget(cache.status_key(identifier), cache.generation_key(identifier))
        except Exception:  # noqa: BLE001 - Redis away or slow: answer from the database
            log.warning("redis unavailable for the status check", exc_info=True)
            redis, caching = None, False
    if read:
        cached, generation = read
        if cached is not None:
            certificate_id, status, body = cache.decode_entry(cached)
            checklog.record(kind="status", identifier=identifier, certificate_id=certificate_id,
                            result=status, client=client)
            return body

    answer, certificate_id = await _lookup_on_loop(identifier)
    if answer is None:
        checklog.record(kind="status", identifier=identifier, certificate_id=None, result="not_found", client=client)
        raise UnknownCertificateIdentifier(detail={"identifier": identifier})
    body = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if caching:
        try:
            async with asyncio.timeout(cache.ASYNC_TIMEOUT_SECONDS):
                await cache.store_if_generation(redis, identifier,
                                                cache.encode_entry(certificate_id, answer["status"], body),
                                                generation=generation, ttl_seconds=_ttl_seconds())
        except Exception:  # noqa: BLE001 - an answer not cached is still an answer
            log.warning("could not cache a certificate status", exc_info=True)
    checklog.record(kind="status", identifier=identifier, certificate_id=certificate_id, result=answer["status"],
                    client=client)
    return body


async def _counted(identity: str, client: str, identifier: str, *,
                   also_read: tuple[str, ...] = ()) -> list | None:
    """Count one status check against the client's limit (429, logged, over it); the values of
    `also_read` when the limit's Redis script read them."""
    try:
        return await enforce_async(STATUS_LIMIT, identity, also_read=also_read)
    except RateLimited:
        checklog.record(kind="status", identifier=identifier, certificate_id=None, result="rate_limited",
                        client=client)
        raise


def check_verify_rate(client_address: str | None) -> str:
    """Count one verification for this client (429 over the limit); returns the client hash."""
    client = checklog.client_hash(client_address)
    try:
        enforce(VERIFY_LIMIT, address_identity(client_address))
    except RateLimited:
        checklog.record(kind="verify", identifier=None, certificate_id=None, result="rate_limited", client=client)
        raise
    return client
