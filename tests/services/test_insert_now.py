"""services.db.insert_now: rows written at once, outside the unit of work (psycopg's pipeline on
PostgreSQL, Core statements on SQLite), read back exactly as the ORM would have written them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.db import Write, insert_now
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


def test_writes_at_once_report_their_row_counts_and_ignore_what_they_are_told_to(session):
    """write_at_once: an UPDATE carrying a value of its own (attempts + 1), an INSERT of two rows
    and an INSERT … ON CONFLICT DO NOTHING, in order, with each one's row count."""
    from sqlalchemy import bindparam, update

    from services.db import inserting, write_at_once
    from services.outbox.service import adding_jobs

    insert_now(session, OutboxJob(kind="test:at-once", payload={}, dedupe_key="test:at-once:1"))
    table = OutboxJob.__table__
    bump = update(table).where(table.c.dedupe_key == bindparam("key")).values(
        attempts=table.c.attempts + 1, last_error=bindparam("error"))
    counts = write_at_once(
        session,
        Write(bump, [{"key": "test:at-once:1", "error": "第一次"}]),
        Write(bump, [{"key": "test:at-once:none", "error": "x"}]),
        *inserting(OutboxJob(kind="test:at-once", payload={"n": 2}, dedupe_key="test:at-once:2"),
                   OutboxJob(kind="test:at-once", payload={"n": 3}, dedupe_key="test:at-once:3")),
        adding_jobs(session, [OutboxJob(kind="test:at-once", payload={"n": 0}, dedupe_key="test:at-once:1"),
                              OutboxJob(kind="test:at-once", payload={"n": 4}, dedupe_key="test:at-once:4")]))
    assert counts == [1, 0, 2, 1]
    rows = session.execute(select(OutboxJob.dedupe_key, OutboxJob.attempts, OutboxJob.last_error, OutboxJob.payload)
                           .where(OutboxJob.kind == "test:at-once").order_by(OutboxJob.dedupe_key)).all()
    assert [tuple(row) for row in rows] == [("test:at-once:1", 1, "第一次", {}), ("test:at-once:2", 0, None, {"n": 2}),
                                            ("test:at-once:3", 0, None, {"n": 3}), ("test:at-once:4", 0, None, {"n": 4})]


def test_on_a_statement_session_the_writes_are_one_statement_all_or_nothing(engine):
    """write_at_once on a session whose statements each commit (PostgreSQL): the same writes and
    row counts as in a transaction — several rows of an UPDATE with a value of its own, of an
    INSERT and of an INSERT … ON CONFLICT DO NOTHING — as ONE statement, committed as it returns;
    and when one of them breaks a constraint, none of them stays."""
    if engine.dialect.name == "sqlite":
        pytest.skip("PostgreSQL's data-modifying CTEs; SQLite's statement sessions keep their transactions")
    from psycopg.pq import TransactionStatus
    from sqlalchemy import bindparam, delete, update

    from services.db import inserting, statement_session, write_at_once
    from services.outbox.service import adding_jobs

    table = OutboxJob.__table__
    kind = "test:one-statement"
    bump = update(table).where(table.c.dedupe_key == bindparam("key")).values(
        attempts=table.c.attempts + 1, last_error=bindparam("error"))
    try:
        with statement_session(engine) as session:
            write_at_once(session, *inserting(OutboxJob(kind=kind, payload={}, dedupe_key=f"{kind}:1"),
                                              OutboxJob(kind=kind, payload={}, dedupe_key=f"{kind}:2")))
            counts = write_at_once(
                session,
                Write(bump, [{"key": f"{kind}:1", "error": "第一次"}, {"key": f"{kind}:2", "error": "第二次"},
                             {"key": f"{kind}:none", "error": "x"}]),
                *inserting(OutboxJob(kind=kind, payload={"n": 3}, dedupe_key=f"{kind}:3"),
                           OutboxJob(kind=kind, payload={"n": 4}, dedupe_key=f"{kind}:4")),
                adding_jobs(session, [OutboxJob(kind=kind, payload={"n": 0}, dedupe_key=f"{kind}:1"),
                                      OutboxJob(kind=kind, payload={"n": 5}, dedupe_key=f"{kind}:5")]))
            assert counts == [2, 2, 1]
            raw = session.connection().connection.dbapi_connection
            assert raw.info.transaction_status == TransactionStatus.IDLE  # committed: no transaction left open
            with pytest.raises(IntegrityError):  # the second INSERT breaks the unique key: the UPDATE goes too
                write_at_once(session, Write(bump, [{"key": f"{kind}:1", "error": "不会留下"}]),
                              *inserting(OutboxJob(kind=kind, payload={}, dedupe_key=f"{kind}:6"),
                                         OutboxJob(kind=kind, payload={}, dedupe_key=f"{kind}:2")))
        with engine.connect() as connection:  # another connection sees what was committed
            rows = connection.execute(select(table.c.dedupe_key, table.c.attempts, table.c.last_error,
                                             table.c.payload).where(table.c.kind == kind)
                                      .order_by(table.c.dedupe_key)).all()
        assert [tuple(row) for row in rows] == [
            (f"{kind}:1", 1, "第一次", {}), (f"{kind}:2", 1, "第二次", {}), (f"{kind}:3", 0, None, {"n": 3}),
            (f"{kind}:4", 0, None, {"n": 4}), (f"{kind}:5", 0, None, {"n": 5})]
    finally:
        with engine.begin() as connection:
            connection.execute(delete(table).where(table.c.kind == kind))


def test_a_statement_session_that_wrote_is_not_run_again_on_a_dropped_connection(engine):
    """again_if_dropped runs a statement session's work once more when its connection was
    dropped — unless the session has written: that write committed on its own, and running the
    work again would write it twice. (In a transaction the rollback before the retry undoes it.)"""
    if engine.dialect.name == "sqlite":
        pytest.skip("statement sessions commit each statement on PostgreSQL only")
    from sqlalchemy.exc import DBAPIError

    from services.db import again_if_dropped, statement_session

    dropped = DBAPIError("SELECT 1", None, Exception("server closed the connection"), connection_invalidated=True)
    kind = "test:dropped"
    try:
        for wrote in (False, True):
            runs = []

            def work(session) -> str:
                runs.append(1)
                if len(runs) == 1:
                    if wrote:
                        insert_now(session, OutboxJob(kind=kind, payload={}, dedupe_key=f"{kind}:{uuid4()}"))
                    raise dropped
                return "answered"

            with statement_session(engine) as session:
                if wrote:
                    with pytest.raises(DBAPIError) as raised:
                        again_if_dropped(lambda: work(session), session=session)
                    assert raised.value is dropped and len(runs) == 1
                else:
                    assert again_if_dropped(lambda: work(session), session=session) == "answered"
                    assert len(runs) == 2
    finally:  # the job the session wrote committed on its own
        from sqlalchemy import delete

        with engine.begin() as connection:
            connection.execute(delete(OutboxJob.__table__).where(OutboxJob.__table__.c.kind == kind))


@pytest.mark.parametrize("sessions", ["transaction", "statements"])
def test_a_select_guard_lets_the_writes_through_only_when_it_finds_its_row(engine, sessions):
    """insert_now(…, guard=) with a SELECT as its guard (write_guarded): whether it found its row;
    when it did not, on a statement session neither the INSERTs nor the UPDATE after them are
    written, and in a transaction the caller rolls back what was."""
    from sqlalchemy import bindparam, delete, literal_column, update
    from sqlmodel import Session

    from services.db import statement_session

    table = OutboxJob.__table__
    kind = "test:select-guard"
    present = select(literal_column("1")).where(
        select(table.c.id).where(table.c.dedupe_key == bindparam("g_key")).exists())
    mark = update(table).where(table.c.dedupe_key == bindparam("m_key")).values(last_error=bindparam("m_error"))
    open_session = statement_session if sessions == "statements" else (lambda e: Session(e, expire_on_commit=False))
    try:
        with Session(engine) as session:
            insert_now(session, OutboxJob(kind=kind, payload={}, dedupe_key=f"{kind}:there"))
            session.commit()
        for key, expected in ((f"{kind}:there", True), (f"{kind}:absent", False)):
            with open_session(engine) as session:
                held = insert_now(session, OutboxJob(kind=kind, payload={}, dedupe_key=f"{kind}:new-{expected}"),
                                  then=[Write(mark, [{"m_key": f"{kind}:there", "m_error": f"held {expected}"}])],
                                  guard=Write(present, [{"g_key": key}]))
                assert held is expected
                if held:
                    session.commit()
                else:
                    session.rollback()
        with engine.connect() as connection:
            rows = connection.execute(select(table.c.dedupe_key, table.c.last_error).where(table.c.kind == kind)
                                      .order_by(table.c.dedupe_key)).all()
        assert [tuple(row) for row in rows] == [(f"{kind}:new-True", None), (f"{kind}:there", "held True")]
    finally:
        with engine.begin() as connection:
            connection.execute(delete(table).where(table.c.kind == kind))


def test_new_row_is_the_object_the_constructor_makes_and_joins_the_session_as_loaded(session):
    """services.db.new_row: the same values and defaults as the model's constructor; written by
    insert_now, the one that joins the session is flushed as an UPDATE when changed later."""
    from services.db import new_row, row_of

    moment = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)
    values = dict(kind="test:new-row", payload={"名称": "居住证明"}, dedupe_key="test:new-row:1", run_after=moment,
                  created_at=moment)
    made, constructed = new_row(OutboxJob, **values), OutboxJob(**values)
    assert row_of(made) == row_of(constructed) and made.model_dump() == constructed.model_dump()
    assert made.state == "pending" and made.attempts == 0 and made.id is None  # the model's defaults
    with pytest.raises(TypeError):
        new_row(OutboxJob, kind="test:new-row", no_such_field=1)

    kept = new_row(OutboxJob, id=2_000_000_002, **{**values, "dedupe_key": "test:new-row:kept"})
    insert_now(session, kept, persistent=[kept])
    kept.last_error = "改过"
    session.flush()
    assert session.execute(select(OutboxJob.last_error, OutboxJob.payload).where(OutboxJob.id == 2_000_000_002)
                           ).one() == ("改过", {"名称": "居住证明"})


def test_a_literal_percent_sign_in_a_written_statement_reaches_the_database_as_itself(session):
    """The raw statements go to psycopg with PostgreSQL's own $n placeholders: the `%%` SQLAlchemy
    writes for a literal `%` must become `%` again."""
    from sqlalchemy import bindparam, literal_column, update

    from services.db import write_at_once

    insert_now(session, OutboxJob(kind="test:percent", payload={}, dedupe_key="test:percent:1"))
    table = OutboxJob.__table__
    mark = update(table).where(table.c.dedupe_key == bindparam("key")).values(
        last_error=literal_column("'100%'").concat(bindparam("suffix")))
    assert write_at_once(session, Write(mark, [{"key": "test:percent:1", "suffix": " 完成"}])) == [1]
    assert session.execute(select(OutboxJob.last_error).where(OutboxJob.dedupe_key == "test:percent:1")
                           ).scalar_one() == "100% 完成"
