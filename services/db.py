"""Database engine and sessions. Alembic migrations create the schema; nothing here does.

Every models.py imports `SQLModel` from here so the constraint naming convention is set before
any table is declared.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import psycopg
from sqlalchemy import bindparam, event, func, inspect, literal_column, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import Select
from sqlalchemy.sql.visitors import replacement_traverse
from sqlmodel import Session, SQLModel, create_engine

from services.config import get_settings

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)

__all__ = ["SQLModel", "Session", "get_engine", "without_transactions", "statement_session", "transaction",
           "insert_now", "session_scope", "utcnow", "is_sqlite"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # The default rollback journal, not WAL: every transaction takes the write lock at
            # BEGIN anyway (below), so WAL would add no concurrency, and its shared-memory file
            # was seen deleted under live connections when another process (the CLI, a separate
            # worker) closed the database, failing new connections with SQLITE_IOERR_SHORT_READ.
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection):
            # SQLite upgrades a read transaction to a write one by failing at once
            # (SQLITE_BUSY) when another writer got there first; taking the write lock at
            # BEGIN makes concurrent requests queue instead. PostgreSQL needs none of this.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # psycopg prepares a statement on its 5th use, and after 5 more PostgreSQL keeps one generic
    # plan for it (planned without parameter values) when that plan's estimate is no worse: the
    # hot reads are then planned once, not on every request (planning the work-queue page cost
    # 3 ms, six times its execution). A query whose plan depends on a value the planner must see
    # — a partial index's predicate, a page size — writes that value into the SQL
    # (services/cases/repository.py, services/points/repository.py).
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().resolved_database_url)


@lru_cache
def without_transactions(engine: Engine) -> Engine:
    """The engine of statement sessions (`statement_session`): reads, and changes written in one
    statement. SQLite keeps its transactions (its engine emits its own BEGIN) and its one engine.
    On PostgreSQL, a pool of its own whose connections

    - run each statement on its own (autocommit): under READ COMMITTED every statement takes its
      own snapshot whether or not a transaction wraps it, so the BEGIN and COMMIT around a read
      would be two round trips that change nothing;
    - keep the generic plan of a prepared statement (`plan_cache_mode=force_generic_plan`)
      instead of letting PostgreSQL re-plan it for every set of values when the custom plan's
      estimate comes out cheaper. The reads are written so that their plan does not depend on
      the values (keys, literal page sizes, ranges rather than LIKE patterns); the work-queue
      page was re-planned on every request at 10k cases — planning cost 4-7 ms of database CPU
      for an execution of 0.7 ms, the same plan every time."""
    if engine.dialect.name == "sqlite":
        return engine
    # the URL's own server options (`?options=-c search_path=…`) are kept, not replaced
    options = " ".join(filter(None, [engine.url.query.get("options"), "-c plan_cache_mode=force_generic_plan"]))
    # nothing to roll back on an autocommit connection when it goes back to the pool
    return create_engine(engine.url, pool_size=10, max_overflow=10, isolation_level="AUTOCOMMIT",
                         pool_reset_on_return=None, connect_args={"options": options})


_EACH_STATEMENT_COMMITS = "onestop.each_statement_commits"
_MAIN_ENGINE = "onestop.main_engine"
_WROTE = "onestop.wrote"  # a statement session has written (or tried to): its work must not be run again


def statement_session(engine: Engine) -> Session:
    """A session whose statements each commit on their own on PostgreSQL (`without_transactions`):
    for reads, and for a change written in one statement (`write_guarded`); a change of several
    statements takes `transaction(session)`. On SQLite an ordinary session of the one engine,
    whose owner commits it."""
    statements = without_transactions(engine)
    session = Session(statements, expire_on_commit=False)
    session.info[_EACH_STATEMENT_COMMITS] = statements is not engine
    session.info[_MAIN_ENGINE] = engine
    return session


def each_statement_commits(session: Session) -> bool:
    return session.info.get(_EACH_STATEMENT_COMMITS, False)


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """A session whose writes commit together: `session` itself when it has transactions (its
    owner commits or rolls it back), else — a `statement_session` — a session of its own on the
    main engine, committed when the block ends and rolled back when it raises."""
    if not each_statement_commits(session):
        yield session
        return
    session.info[_WROTE] = True
    with Session(session.info[_MAIN_ENGINE], expire_on_commit=False) as own:
        # what the request noted on its session (services.cases: the certificates it cited) goes along
        own.info.update({key: value for key, value in session.info.items()
                         if key not in (_EACH_STATEMENT_COMMITS, _MAIN_ENGINE)})
        yield own
        own.commit()


def again_if_dropped(work: Callable[[], T], *, session: Session | None = None) -> T:
    """`work()`, run once more when its connection turned out to be one the server had dropped
    (a restart, an idle timeout): SQLAlchemy then discards the pool's connections and the retry
    takes a fresh one, instead of pinging every connection before lending it (a round trip per
    use). With a `session`, it is rolled back in between: only for work that reads, at the start
    of its transaction (the rollback would undo anything written before), or for the work of a
    `statement_session` that has not written yet (`write_at_once`, `write_guarded` and
    `transaction` note that they did: then the error stands). Without one, `work` opens its own
    connection (the case-number counter)."""
    try:
        return work()
    except DBAPIError as error:
        if not error.connection_invalidated or (session is not None and session.info.get(_WROTE)):
            raise
        if session is not None:
            session.rollback()
        return work()


def plain_rows(session: Session, statement, parameters: dict[str, Any] | None = None):
    """The result of a SELECT of columns (not of mapped objects) through the session's
    connection, without the ORM's execution and row loading around it: the same rows, in the
    session's transaction, for 10-15% less CPU per case read."""
    return session.connection().execute(statement, parameters)


def records(result) -> list:
    """A result's rows as plain records (named tuples, same attribute names). Reading a column of
    a SQLAlchemy Row by attribute costs about 0.8 µs, of a named tuple 0.03 µs; a case's view
    reads some forty of them, a list page twenty cases' worth (measured: the views of a 20-case
    page took 502 µs from Rows, 199 µs from records, which took 22 µs to make)."""
    make = _record_type(tuple(result.keys()))._make
    return [make(row) for row in result]


@lru_cache(maxsize=128)
def _record_type(names: tuple[str, ...]):
    return namedtuple("Record", names)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session for a job or a CLI command: commits on success, rolls back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


from sqlalchemy import JSON, DateTime, TypeDecorator  # noqa: E402
from sqlalchemy.ext.compiler import compiles  # noqa: E402
from sqlalchemy.sql.functions import FunctionElement  # noqa: E402


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTCDateTime column")
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class json_rows(FunctionElement):
    """Aggregate: the rows' values as a JSON array of arrays, `[]` for none (json_agg on
    PostgreSQL, json_group_array on SQLite). For a one-to-many read as a column of the "one"
    (a correlated subquery) instead of a second query; no order is promised."""

    type = JSON()
    inherit_cache = True
    name = "json_rows"


@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element, compiler, **kw):
    return f"coalesce(json_agg(json_build_array({compiler.process(element.clauses, **kw)})), '[]'::json)"


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element, compiler, **kw):
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


class json_value(FunctionElement):
    """A JSON column as a value inside json_rows: SQLite keeps JSON as text, which its
    json_array would nest as a string."""

    type = JSON()
    inherit_cache = True
    name = "json_value"


@compiles(json_value)
def _json_value(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(json_value, "sqlite")
def _json_value_sqlite(element, compiler, **kw):
    return f"json({compiler.process(element.clauses, **kw)})"


class Write(NamedTuple):
    """One statement of `write_at_once`: a Core INSERT, UPDATE or DELETE built once (it is
    compiled once per statement object and set of row keys), and its rows of parameters."""

    statement: Any
    rows: list[dict[str, Any]]


def write_at_once(session: Session, *writes: Write) -> list[int]:
    """Run the writes in order in the session's transaction, at once: on PostgreSQL straight
    through psycopg in one round trip (a pipeline), elsewhere one Core execution each; on a
    `statement_session`, as one statement (`_one_statement`: none of them stays if one fails).
    Returns each write's row count. A broken constraint raises SQLAlchemy's IntegrityError, as a
    flush would; on PostgreSQL the writes after it were not run, and the transaction must be
    rolled back either way."""
    if each_statement_commits(session):  # then one statement: all or nothing without a transaction
        return _write_in_one_statement(session, writes, guarded=False)
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [_count_of(connection.execute(write.statement, write.rows[0] if len(write.rows) == 1 else write.rows),
                          write.statement) for write in writes]
    raw = connection.connection.dbapi_connection  # psycopg's, inside this session's transaction
    cursors = []
    try:
        with raw.pipeline():
            for write in writes:
                sql, names, defaults, adapters = _raw_statement(write.statement, tuple(write.rows[0]),
                                                                connection.dialect)
                cursor = psycopg.RawCursor(raw)
                cursors.append(cursor)
                cursor.executemany(sql, [[adapt(row.get(name, defaults.get(name)))
                                          for name, adapt in zip(names, adapters)] for row in write.rows])
    except psycopg.IntegrityError as error:
        raise IntegrityError(str(error), None, error) from error
    finally:
        counts = [cursor.rowcount for cursor in cursors]
        for cursor in cursors:
            cursor.close()
    return counts


def _count_of(result, statement) -> int:
    # a SELECT's rowcount is -1 in sqlite3: its rows are counted instead
    return len(result.all()) if isinstance(statement, Select) else result.rowcount


def write_guarded(session: Session, guard: Write, *then: Write) -> bool:
    """`guard` and the writes that belong to it: whether the guard held. The guard is an UPDATE
    of at most one row (a version check: it holds when it changed its row) or a SELECT of at most
    one row, which it finds when its condition holds (`FOR UPDATE` inside it keeps the rows it
    checked as they are until the writes commit).

    On a `statement_session` (PostgreSQL), one statement (`_one_statement`) in which the writes
    run only if the guard held: nothing at all is written when it did not. In a transaction, all
    of them in one round trip (`write_at_once`); when the guard did not hold, the caller must
    roll back what the others wrote. A broken constraint raises SQLAlchemy's IntegrityError
    either way."""
    if not each_statement_commits(session):
        return write_at_once(session, guard, *then)[0] == 1
    return _write_in_one_statement(session, (guard, *then), guarded=True)[0] == 1


def _write_in_one_statement(session: Session, writes: tuple[Write, ...], *, guarded: bool) -> list[int]:
    session.info[_WROTE] = True  # before the attempt: a statement that reached the server may have committed
    connection = session.connection()
    shape = tuple((write.statement, tuple(write.rows[0]), len(write.rows)) for write in writes)
    sql, names, defaults, adapters = _one_statement(shape, guarded, connection.dialect)
    values = {}
    for index, write in enumerate(writes):
        for number, row in enumerate(write.rows):
            values.update({f"w{index}_{number}_{key}": value for key, value in row.items()})
    raw = connection.connection.dbapi_connection
    try:
        with psycopg.RawCursor(raw) as cursor:
            cursor.execute(sql, [adapt(values.get(name, defaults.get(name))) for name, adapt in zip(names, adapters)])
            counts = iter(cursor.fetchone())
    except psycopg.IntegrityError as error:
        raise IntegrityError(str(error), None, error) from error
    return [sum(next(counts) for _ in write.rows) for write in writes]


@lru_cache(maxsize=256)
def _one_statement(shape: tuple, guarded: bool, dialect):
    """Writes as ONE statement, each row a data-modifying CTE (`w<write>_<row>`), answering each
    CTE's row count: WITH w0_0 AS (INSERT … RETURNING 1), w1_0 AS (UPDATE … RETURNING 1), …
    SELECT (SELECT count(*) FROM w0_0), …. Atomic without a transaction around it, in one round
    trip. `guarded`: the first write is an UPDATE or a SELECT (write_guarded) the others depend
    on — each INSERT selects its row FROM it, each UPDATE or DELETE runs only if it EXISTS, so
    none runs unless it found or changed its row. Built and compiled once per shape."""
    ctes, guard = [], None
    for index, (statement, keys, rows) in enumerate(shape):
        for number in range(rows):
            name = f"w{index}_{number}"
            if isinstance(statement, Insert):
                row = select(*(bindparam(f"{name}_{key}", type_=statement.table.c[key].type) for key in keys))
                if guard is not None:
                    row = row.select_from(guard)
                write = statement.from_select(list(keys), row, include_defaults=False)
            else:  # an UPDATE, DELETE or SELECT with named parameters: each row's get names of their own
                write = replacement_traverse(statement, {}, lambda element, name=name: bindparam(
                    f"{name}_{element.key}", type_=element.type)
                    if isinstance(element, BindParameter) and not element.unique and element.key in keys else None)
                if guard is not None:
                    write = write.where(select(literal_column("1")).select_from(guard).exists())
            if isinstance(write, Select):
                if not (guarded and index == 0):
                    raise ValueError("a SELECT in one statement is only its guard")
                ctes.append(write.cte(name))
            else:
                ctes.append(write.returning(literal_column("1")).cte(name))
            if guarded and index == 0:
                guard = ctes[-1]
    final = select(*(select(func.count()).select_from(cte).scalar_subquery() for cte in ctes))
    return _raw_statement(final.add_cte(*ctes), (), dialect)


def insert_now(session: Session, *objects: SQLModel, persistent: Iterable[SQLModel] = (),
               then: Iterable[Write] = (), guard: Write | None = None) -> bool:
    """INSERT new objects' rows at once, without the unit of work: on the request path the ORM's
    flush costs several times the statements themselves (`write_at_once`: one round trip on
    PostgreSQL). Tables are written in the order their first object comes; a broken constraint
    raises SQLAlchemy's IntegrityError, as a flush would. An autoincrement key an object leaves
    empty stays empty on it. `persistent`: those of the objects (keys set) that then join the
    session as if just loaded, so that a later change to them is flushed as an UPDATE; the
    others stay outside it, plain records of what was written. `then`: more writes to run after
    the inserts, in the same round trip. `guard`: the condition they are written under
    (write_guarded); returns whether it held — if not, nothing joins the session, and in a
    transaction the caller must roll back."""
    persistent = list(persistent)
    for obj in persistent:
        if None in inspect(obj).mapper.primary_key_from_instance(obj):
            raise ValueError("only an object with its primary key set can join the session after insert_now")
    writes = [*inserting(*objects), *then]
    if guard is None:
        write_at_once(session, *writes)
    elif not write_guarded(session, guard, *writes):
        return False
    for obj in persistent:
        make_transient_to_detached(obj)
        session.add(obj)
    return True


def inserting(*objects: SQLModel) -> list[Write]:
    """The INSERTs of new objects' rows (one write per table and set of columns, in the order the
    tables first come), for write_at_once."""
    by_shape: dict = {}
    for obj in objects:
        row = row_of(obj)
        by_shape.setdefault((type(obj).__table__, tuple(row)), []).append(row)
    return [Write(_plain_insert(table), rows) for (table, _), rows in by_shape.items()]


def new_row(model: type[M], **values: Any) -> M:
    """A new object of a table model, for insert_now: the values given and the model's defaults,
    set straight into the object instead of one by one through SQLModel's constructor, whose
    pydantic and SQLAlchemy events per attribute cost a Case (37 columns) ~150 µs of a
    submission's CPU; this, a tenth. The object has no change history: insert_now writes it
    from its values, and one that joins the session looks just loaded, as insert_now makes it
    anyway. Not for an object to be added to a session and flushed."""
    defaults, factories, names = _defaults_of(model)
    unknown = values.keys() - names
    if unknown:
        raise TypeError(f"{model.__name__} has no field {sorted(unknown)}")
    obj = model.__mapper__.class_manager.new_instance()  # what a load makes: state, no __init__
    obj.__dict__.update(defaults)
    obj.__dict__.update({name: factory() for name, factory in factories if name not in values})
    obj.__dict__.update(values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


@lru_cache(maxsize=None)
def _defaults_of(model: type[SQLModel]) -> tuple[dict[str, Any], tuple, frozenset[str]]:
    defaults, factories = {}, []
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            factories.append((name, field.default_factory))
        elif not field.is_required():
            if not isinstance(field.default, (type(None), bool, int, float, str)):
                raise TypeError(f"{model.__name__}.{name}: a mutable default would be shared")
            defaults[name] = field.default
    return defaults, tuple(factories), frozenset(model.model_fields)


def row_of(obj: SQLModel) -> dict[str, Any]:
    """An object's column values for an INSERT, without an autoincrement key left empty."""
    return {column.key: getattr(obj, column.key) for column in type(obj).__table__.columns
            if not (column.primary_key and getattr(obj, column.key) is None)}


@lru_cache(maxsize=64)
def _plain_insert(table):
    return table.insert()


_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")  # psycopg's dialect writes %(name)s, and %% for a literal %


@lru_cache(maxsize=256)
def _raw_statement(statement, keys: tuple[str, ...], dialect):
    """The statement as PostgreSQL itself takes it ($1, $2, … placeholders, for psycopg's
    RawCursor), the parameter name of each, the values of the parameters the statement carries
    itself (`version + 1`), and each one's conversion. An INSERT names only the columns its rows
    have. With its own placeholders psycopg sends the text as it is: with `%s` it parses it on
    every execution when it has more than 50 parameters, as a submission's one statement has
    (2 % of a submission's CPU)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if isinstance(statement, Insert) else None)
    names: list[str] = []

    def placeholder(match: re.Match) -> str:
        if match.group(1) is None:
            return "%"
        names.append(match.group(1))
        return f"${len(names)}"

    sql = _PYFORMAT.sub(placeholder, compiled.string)
    return (sql, tuple(names),
            {name: value for name, value in compiled.params.items() if value is not None},
            [_raw_adapter(compiled.binds[name].type, dialect) for name in names])


def _raw_adapter(column_type, dialect):
    # the conversion SQLAlchemy itself applies on binding: JSON into psycopg's Json, a
    # TypeDecorator's checks (UTCDateTime refuses naive datetimes), nothing for plain values
    convert = column_type.dialect_impl(dialect).bind_processor(dialect)
    return convert or (lambda value: value)


def insert_ignoring_conflicts(session: Session, table, *, index_elements: list[str]):
    """INSERT … ON CONFLICT (index_elements) DO NOTHING for this session's database."""
    return _insert_ignoring_conflicts(session.get_bind().dialect.name == "postgresql", table, tuple(index_elements))


@lru_cache(maxsize=64)
def _insert_ignoring_conflicts(on_postgresql: bool, table, index_elements: tuple[str, ...]):
    # built once per table (statements are immutable): every transition enqueues its notice
    dialect = postgresql if on_postgresql else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
