"""Gap-tolerant counters that are safe under concurrent transactions on both databases."""

import threading

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

_UPSERT_SQL = ("INSERT INTO counters (name, value) VALUES (%(name)s, 1) "  # psycopg's own placeholder
               "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value")
_UPSERT = text(_UPSERT_SQL.replace("%(name)s", ":name"))  # the same through SQLAlchemy (SQLite too)

# Counters taken outside the caller's transaction use a small pool of their own: a request that
# holds its main connection and waits for a counter connection can then never wait on another
# request doing the same (each counter connection is held for one statement only).
COUNTER_POOL_SIZE = 4
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()

# Counter transactions do not wait for their WAL flush. Every submission of a county takes the
# same counter row, so with synchronous commits that row stayed locked through one disk flush per
# number and the county's submissions queued on it (Lock:transactionid and IO:WALSync waits on
# the upsert under load). Safe to skip: a number is used by a case whose own commit does wait,
# and a flush writes every WAL record before its own, so a durable case has a durable counter.
# A crash can only lose values that no durable case used, and the counter then gives them again.
_WITHOUT_WAITING_FOR_THE_DISK = {"options": "-c synchronous_commit=off"}


def next_value(session: Session, *, name: str) -> int:
    """Increment and return the counter `name` (created at 1) in the caller's transaction. The
    row lock taken by the upsert serialises concurrent callers until their transactions end."""
    return int(session.execute(_UPSERT, {"name": name}).one()[0])


def take_value(session: Session, *, name: str) -> int:
    """Increment and return the counter `name` in a transaction of its own, committed at once.

    For numbers many requests take at the same time (a county's case numbers of the day): under
    `next_value` every submission of the county would wait for the one before it to commit. A
    number taken by a request that then fails is skipped, a gap, as with any database sequence.
    SQLite serialises its writers on the whole database anyway (and a second connection would
    wait for the caller's own write lock), so there the number comes from the caller's transaction."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        return next_value(session, name=name)
    engine = _counter_engine(bind.engine)
    try:
        return _upsert_alone(engine, name)
    except _ConnectionDropped:
        # a connection the database dropped (a restart) is found here rather than pinged before
        # every number; at worst the lost attempt had counted: a gap
        return _upsert_alone(engine, name)


class _ConnectionDropped(Exception):
    pass


def _upsert_alone(engine: Engine, name: str) -> int:
    # The driver's connection straight from the pool, in autocommit (the upsert is its own
    # transaction): SQLAlchemy's Connection and Result around this one statement cost as much
    # CPU as the round trip itself (89 against 45 µs per number, measured), on every submission.
    connection = engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT_SQL, {"name": name})
            return int(cursor.fetchone()[0])
    except psycopg.OperationalError as error:
        if not connection.dbapi_connection.closed:
            raise
        connection.invalidate()
        engine.dispose(close=False)  # the pool's other connections went with it: take fresh ones
        raise _ConnectionDropped() from error
    finally:
        connection.close()  # back to the pool (a no-op for an invalidated one)


def _counter_engine(bind: Engine) -> Engine:
    key = bind.url.render_as_string(hide_password=False)
    engine = _engines.get(key)
    if engine is None:
        from sqlalchemy import create_engine

        with _engines_lock:
            engine = _engines.get(key)
            if engine is None:
                # AUTOCOMMIT: one round trip per number, not three (BEGIN, the upsert, COMMIT)
                engine = create_engine(bind.url, pool_size=COUNTER_POOL_SIZE, max_overflow=0, pool_timeout=10,
                                       isolation_level="AUTOCOMMIT", connect_args=_WITHOUT_WAITING_FOR_THE_DISK)
                _engines[key] = engine
    return engine
