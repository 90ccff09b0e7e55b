"""Counters: numbers unique under concurrency; case numbers do not make a county's submissions
wait for each other."""

from __future__ import annotations

import threading

from sqlmodel import Session

from services.db import get_engine
from services.sequences.repository import next_value, take_value


def test_next_value_counts_from_one_in_the_callers_transaction(seeded):
    with Session(get_engine()) as session:
        first = next_value(session, name="test:next-value")
        assert next_value(session, name="test:next-value") == first + 1
        session.rollback()
    with Session(get_engine()) as session:  # rolled back with the transaction: no gap
        assert next_value(session, name="test:next-value") == first
        session.commit()


def test_take_value_does_not_wait_for_an_open_transaction(seeded):
    """On PostgreSQL the number is committed at once: a second request takes the next one while
    the first request's transaction is still open (under next_value it would wait for it)."""
    engine = get_engine()
    if engine.dialect.name == "sqlite":  # one writer at a time there: taken in the caller's transaction
        with Session(engine) as session:
            first = take_value(session, name="test:take-value")
            assert take_value(session, name="test:take-value") == first + 1
        return
    with Session(engine) as holding:
        first = take_value(holding, name="test:take-value")
        taken: list[int] = []

        def other_request() -> None:
            with Session(engine) as session:
                taken.append(take_value(session, name="test:take-value"))
                session.commit()

        thread = threading.Thread(target=other_request)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive() and taken == [first + 1]
        holding.rollback()  # a failed request leaves a gap, never a duplicate
    with Session(engine) as session:
        assert take_value(session, name="test:take-value") == first + 2


def test_take_value_is_unique_under_concurrent_callers(seeded):
    engine = get_engine()
    values: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            with Session(engine) as session:
                value = take_value(session, name="test:take-value-concurrent")
                session.commit()
            with lock:
                values.append(value)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(values) == 40 and len(set(values)) == 40


def test_take_value_survives_connections_the_database_dropped(seeded):
    """The counter pool pings no connection before use: a connection the server closed (a
    restart) fails once, is discarded, and the number is taken on a fresh one."""
    engine = get_engine()
    if engine.dialect.name == "sqlite":
        return  # taken in the caller's transaction there: no pool of its own
    from sqlalchemy import text

    with Session(engine) as session:
        first = take_value(session, name="test:dropped")
        with engine.connect() as admin:  # what a restart does to the counter pool's connections
            ended = admin.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle' "
                "AND query LIKE 'INSERT INTO counters%'")).scalar_one()
        assert ended >= 1
        assert take_value(session, name="test:dropped") > first


def test_counter_commits_do_not_wait_for_the_disk(seeded):
    """The county's submissions share one counter row: its commits skip the WAL flush (the case's
    own commit flushes it), or the row would stay locked through a disk flush per number."""
    from sqlalchemy import text

    from services.sequences.repository import _counter_engine

    engine = get_engine()
    if engine.dialect.name == "sqlite":
        return  # taken in the caller's transaction there
    with _counter_engine(engine).connect() as connection:
        assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    with engine.connect() as connection:  # the cases' own commits still wait for the disk
        assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
