"""services.db.insert_now: rows written at once, outside the unit of work (psycopg's pipeline on
PostgreSQL, Core statements on SQLite), read back exactly as the ORM would have written them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.db import insert_now
from services.outbox.models import OutboxJob


def test_rows_of_several_shapes_read_back_as_written(session):
    moment = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    kept = OutboxJob(id=2_000_000_001, kind="test:insert-now", payload={"名称": "居住证明", "items": [1, {"a": None}]},
                     dedupe_key="test:insert-now:kept", run_after=moment)
    plain = OutboxJob(kind="test:insert-now", payload={}, dedupe_key=None, locked_until=moment, last_error="x")
    insert_now(session, kept, plain, persistent=[kept])

    rows = sorted(session.execute(select(OutboxJob.dedupe_key, OutboxJob.payload, OutboxJob.run_after,
                                         OutboxJob.locked_until, OutboxJob.last_error, OutboxJob.id)
                                  .where(OutboxJob.kind == "test:insert-now")).all(),
                  key=lambda row: row.dedupe_key is None)  # the kept one first
    assert [row[:5] for row in rows] == [
        ("test:insert-now:kept", {"名称": "居住证明", "items": [1, {"a": None}]}, moment, None, None),
        (None, {}, plain.run_after, moment, "x")]
    assert rows[1].id is not None and plain.id is None  # the database numbered it

    # the persistent one is the session's, as if loaded: a change to it is flushed as an UPDATE
    assert kept in session and plain not in session
    kept.state = "done"
    session.flush()
    assert session.execute(select(OutboxJob.state).where(OutboxJob.dedupe_key == "test:insert-now:kept")
                           ).scalar_one() == "done"


def test_an_object_without_its_key_cannot_join_the_session(session):
    with pytest.raises(ValueError):
        insert_now(session, unnumbered := OutboxJob(kind="test:insert-now"), persistent=[unnumbered])


def test_a_broken_constraint_is_sqlalchemys_integrity_error(session):
    insert_now(session, OutboxJob(kind="test:insert-now", dedupe_key="test:insert-now:twice"))
    with pytest.raises(IntegrityError):
        insert_now(session, OutboxJob(kind="test:insert-now", dedupe_key="test:insert-now:twice"))
