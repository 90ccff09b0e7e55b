"""Queries of the regional figures: the fact of a case (one SQL definition, used by the bulk
build, the incremental refresh and the reconciliation alike), the rollups' upserts, the bulk
build, the lookups the API serves, and the live recomputation from cases (the benchmark's
baseline and the tests' oracle).

Days are submission days in Asia/Shanghai (UTC+8, no daylight saving since 1991).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Date, String, and_, case as when, func, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from services.cases.models import Case
from services.evaluations.models import Evaluation
from services.figures.models import (COUNTER_NAMES, NO_DUE_DATE, UNASSIGNED, CaseFact, PointFigures,
                                     PointOpenFigures, RefreshState, RegionFigures, RegionOpenFigures,
                                     WorkingDayNumber)
from services.points.models import CLOSED_STATES
from services.regions.models import Region

STATE_ROW_ID = 1

# How a case's state counts. Anything not named here (including a matter's review steps) is open.
COMPLETED_STATES = ("approved", "completed", "delivered")
OUTCOME_STATES = {"completed": COMPLETED_STATES, "denied": ("denied",), "not_accepted": ("not_accepted",),
                  "withdrawn": ("withdrawn",)}
# Their states are exactly the decided ones (CLOSED_STATES, imported above; a test checks): what
# is not decided is open, here as in a clerk's load.

FACT_COLUMNS = ("case_id", "region_code", "day", "matter_code", "service_point_id", "staff_id", "state",
                "sla_state", "due_date", "accepted", "working_days", "rating")

# ----------------------------------------------------------------------------- the region keys

# Leading digits of each level's code, and the digits that must not be all zeros for the level
# to be present in a code (DESIGN.md §3: a level can be missing, e.g. 东莞市's towns).
_LEVELS: tuple[tuple[str, int, int], ...] = (("province", 2, 0), ("city", 4, 2), ("county", 6, 4),
                                             ("town", 9, 6), ("village", 12, 9))


def region_chain(code: str) -> list[tuple[str, str, str | None]]:
    """(code, level, parent code) of `code` and of every region above it, root first — by the
    digits, exactly as `subtree_prefix` cuts a subtree: a case counts in region R's row iff its
    region code starts with subtree_prefix(R)."""
    chain: list[tuple[str, str, str | None]] = []
    parent: str | None = None
    for level, length, start in _LEVELS:
        if start and code[start:length].strip("0") == "":
            continue
        ancestor = code[:length] + "0" * (12 - length)
        chain.append((ancestor, level, parent))
        parent = ancestor
    return chain


def _chain_sql(column) -> list[tuple[Any, str, Any, Any]]:
    """region_chain in SQL: (code, level, parent code, condition) per level, for UNION ALL."""
    def prefix(length: int):
        return func.substr(column, 1, length, type_=String(12)).concat("0" * (12 - length)) if length < 12 else column

    def present(length: int, start: int):
        return func.substr(column, start + 1, length - start, type_=String(12)) != "0" * (length - start)

    out = []
    previous: list[tuple[int, int]] = []  # the levels above, nearest last
    for level, length, start in _LEVELS:
        condition = present(length, start) if start else None
        if not previous:
            parent = sa.null()
        elif len(previous) == 1:
            parent = prefix(previous[0][0])
        else:  # the nearest level above that is present (the province always is)
            parent = when(*[(present(l, s), prefix(l)) for l, s in reversed(previous[1:])], else_=prefix(2))
        out.append((prefix(length), level, parent, condition))
        previous.append((length, start))
    return out


# ----------------------------------------------------------------------------- facts

def china_day(session: Session, column):
    """The Asia/Shanghai calendar day of a UTC timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(func.timezone("Asia/Shanghai", column), Date)
    return func.date(column, "+8 hours", type_=Date)  # SQLite keeps naive UTC text


def fact_select(session: Session, *, case_ids: Sequence[str] | None = None):
    """SELECT of the facts (FACT_COLUMNS) of all cases, or of `case_ids`. Working days come from
    figures_working_days, which must cover the acceptance and closing days (ensure_working_days)."""
    accepted_day, closed_day = china_day(session, Case.accepted_at), china_day(session, Case.closed_at)
    on_accept = sa.orm.aliased(WorkingDayNumber, name="wd_accepted")
    on_close = sa.orm.aliased(WorkingDayNumber, name="wd_closed")
    latest = select(Evaluation.case_id, func.max(Evaluation.round).label("round")).group_by(Evaluation.case_id)
    if case_ids is not None:
        latest = latest.where(Evaluation.case_id.in_(case_ids))
    latest = latest.subquery("latest_round")
    rating = sa.orm.aliased(Evaluation, name="rating")
    query = (
        select(Case.id.label("case_id"), Case.region_code, china_day(session, Case.submitted_at).label("day"),
               Case.matter_code, Case.handling_point_id.label("service_point_id"),
               func.coalesce(Case.assignee_id, UNASSIGNED).label("staff_id"), Case.state, Case.sla_state,
               Case.due_date, when((Case.accepted_at.is_not(None), True), else_=False).label("accepted"),
               when((and_(Case.accepted_at.is_not(None), Case.closed_at.is_not(None)),
                     on_close.ordinal - on_accept.ordinal), else_=None).label("working_days"),
               rating.level.label("rating"))
        .select_from(Case)
        .outerjoin(on_accept, on_accept.day == accepted_day)
        .outerjoin(on_close, on_close.day == closed_day)
        .outerjoin(latest, latest.c.case_id == Case.id)
        .outerjoin(rating, and_(rating.case_id == latest.c.case_id, rating.round == latest.c.round)))
    if case_ids is not None:
        query = query.where(Case.id.in_(case_ids))
    return query


def normalise_fact(row: Any) -> tuple:
    """A fact as a comparable tuple in FACT_COLUMNS order (SQLite gives 0/1 for booleans)."""
    values = list(row)
    index = FACT_COLUMNS.index("accepted")
    values[index] = bool(values[index])
    return tuple(values)


def read_new_facts(session: Session, *, case_ids: Sequence[str]) -> dict[str, tuple]:
    return {row[0]: normalise_fact(row) for row in session.execute(fact_select(session, case_ids=case_ids))}


def read_stored_facts(session: Session, *, case_ids: Sequence[str]) -> dict[str, tuple]:
    columns = [getattr(CaseFact, name) for name in FACT_COLUMNS]
    return {row[0]: normalise_fact(row)
            for row in session.execute(select(*columns).where(CaseFact.case_id.in_(case_ids)))}


def save_facts(session: Session, *, facts: Iterable[tuple]) -> None:
    rows = [dict(zip(FACT_COLUMNS, fact)) for fact in facts]
    if rows:
        statement = _upsert(session, CaseFact.__table__, ["case_id"])
        statement = statement.on_conflict_do_update(
            index_elements=["case_id"], set_={name: statement.excluded[name] for name in FACT_COLUMNS[1:]})
        session.execute(statement, rows)


def delete_facts(session: Session, *, case_ids: Sequence[str]) -> None:
    if case_ids:
        session.execute(sa.delete(CaseFact).where(CaseFact.case_id.in_(case_ids)))


def changed_case_ids(session: Session, *, since: datetime) -> list[str]:
    """Cases updated, or rated, at or after `since` (indexes on updated_at and created_at)."""
    cases = select(Case.id.label("id")).where(Case.updated_at >= since)
    rated = select(Evaluation.case_id.label("id")).where(Evaluation.created_at >= since)
    return sorted({row[0] for row in session.execute(sa.union(cases, rated))})


def drifted_case_ids(session: Session) -> list[str]:
    """Cases whose fact computed now differs from the stored one, or that have none; and stored
    facts whose case is gone. One pass over cases and facts, in the database."""
    now = fact_select(session).subquery("now")
    stored = CaseFact.__table__
    differs = [now.c[name].is_distinct_from(stored.c[name]) for name in FACT_COLUMNS[1:]]
    drifted = select(now.c.case_id).select_from(now.outerjoin(stored, stored.c.case_id == now.c.case_id)).where(
        sa.or_(stored.c.case_id.is_(None), *differs))
    gone = select(stored.c.case_id).where(~sa.exists().where(Case.id == stored.c.case_id))
    return sorted({row[0] for row in session.execute(sa.union(drifted, gone))})


def day_span(session: Session, *, case_ids: Sequence[str] | None = None) -> tuple[date | None, date | None]:
    """The earliest acceptance day and the latest closing day (of `case_ids`, or of all cases)."""
    query = select(func.min(china_day(session, Case.accepted_at)), func.max(china_day(session, Case.closed_at)))
    if case_ids is not None:
        query = query.where(Case.id.in_(case_ids))
    first, last = session.execute(query).one()
    return _as_date(first), _as_date(last)


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def write_working_days(session: Session, *, first: date, last: date, is_working_day) -> None:
    """Number the days first..last: ordinal(d) = working days in (first, d]."""
    session.execute(sa.delete(WorkingDayNumber))
    rows, ordinal, day = [], 0, first
    while day <= last:
        if day != first and is_working_day(day):
            ordinal += 1
        rows.append({"day": day, "ordinal": ordinal})
        day += timedelta(days=1)
    session.execute(sa.insert(WorkingDayNumber), rows)


# ----------------------------------------------------------------------------- the refresh state

def lock_state(session: Session, *, wait: bool = True) -> RefreshState | None:
    """The state row, locked for the rest of the transaction (refreshes run one at a time).
    None when `wait` is False and another refresh holds it. SQLite: BEGIN IMMEDIATE already
    serialises writers."""
    query = select(RefreshState).where(RefreshState.id == STATE_ROW_ID)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(nowait=False, skip_locked=not wait)
    state = session.execute(query).scalars().first()
    if state is None and wait:  # a database migrated without the row (should not happen): add it
        state = RefreshState(id=STATE_ROW_ID)
        session.add(state)
        session.flush()
    return state


def read_state(session: Session) -> RefreshState | None:
    return session.get(RefreshState, STATE_ROW_ID)


# ----------------------------------------------------------------------------- rollup upserts

TABLES = {
    "regions": (RegionFigures.__table__, ("region_code", "day", "matter_code"), ("level", "parent_code"),
                COUNTER_NAMES, "received"),
    "points": (PointFigures.__table__, ("service_point_id", "day", "matter_code", "staff_id"), (),
               COUNTER_NAMES, "received"),
    "regions_open": (RegionOpenFigures.__table__,
                     ("region_code", "day", "matter_code", "state", "sla_state", "due_date"), ("level", "parent_code"),
                     ("cases",), "cases"),
    "points_open": (PointOpenFigures.__table__,
                    ("service_point_id", "day", "matter_code", "staff_id", "state", "sla_state", "due_date"), (),
                    ("cases",), "cases"),
}


def _upsert(session: Session, table, index_elements: list[str]):
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def apply_deltas(session: Session, *, name: str, deltas: dict[tuple, tuple[tuple, dict[str, int]]]) -> int:
    """Add each key's counter deltas to its row (created if missing); then delete the rows a
    negative delta emptied. `deltas`: key -> (extra column values, {counter: delta})."""
    table, keys, extras, counters, size = TABLES[name]
    if not deltas:
        return 0
    rows = []
    shrunk = []
    for key, (extra, changes) in deltas.items():
        row = dict(zip(keys, key)) | dict(zip(extras, extra))
        row.update({counter: changes.get(counter, 0) for counter in counters})
        rows.append(row)
        if changes.get(size, 0) < 0:
            shrunk.append(dict(zip(keys, key)))
    statement = _upsert(session, table, list(keys))
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={**{counter: table.c[counter] + statement.excluded[counter] for counter in counters},
              **{extra: statement.excluded[extra] for extra in extras}})
    session.execute(statement, rows)
    if shrunk:
        condition = and_(*[table.c[key] == sa.bindparam(f"k_{key}") for key in keys], table.c[size] <= 0)
        session.execute(sa.delete(table).where(condition),
                        [{f"k_{key}": row[key] for key in keys} for row in shrunk])
    return len(rows)


# ----------------------------------------------------------------------------- the bulk build

def counter_sql(facts) -> dict[str, Any]:
    """What one fact adds to each counter, in SQL (service.counters_of is the same in Python)."""
    completed = facts.c.state.in_(COMPLETED_STATES)
    timed = and_(completed, facts.c.working_days.is_not(None))
    one = lambda condition: when((condition, 1), else_=0)  # noqa: E731
    return {
        "received": literal(1),
        "accepted": one(facts.c.accepted.is_(True)),
        **{outcome: one(facts.c.state.in_(states)) for outcome, states in OUTCOME_STATES.items()},
        "open": one(facts.c.state.not_in(CLOSED_STATES)),
        "completion_cases": one(timed),
        "completion_working_days": when((timed, facts.c.working_days), else_=0),
        **{f"rated_{level}": one(facts.c.rating == level) for level in range(1, 6)},
    }


def _due_key(facts):
    return when((and_(facts.c.sla_state == "running", facts.c.due_date.is_not(None)), facts.c.due_date),
                else_=literal(NO_DUE_DATE, Date))  # no CAST: SQLite would make it the number 9999


def clear_rollups(session: Session) -> None:
    for table in (RegionFigures, PointFigures, RegionOpenFigures, PointOpenFigures, CaseFact):
        session.execute(sa.delete(table))


def bulk_build(session: Session) -> dict[str, int]:
    """Facts of every case, then every rollup from the facts, in SQL (the tables must be empty)."""
    fact_table = CaseFact.__table__
    columns = fact_select(session).subquery("f")
    session.execute(sa.insert(fact_table).from_select(list(FACT_COLUMNS), select(*[columns.c[n] for n in FACT_COLUMNS])))
    facts = fact_table
    counts = counter_sql(facts)
    open_cases = facts.c.state.not_in(CLOSED_STATES)

    # regions: village-level sums first, then each present level of the chain, summed again
    base = (select(facts.c.region_code, facts.c.day, facts.c.matter_code,
                   *[func.sum(expression).label(name) for name, expression in counts.items()])
            .group_by(facts.c.region_code, facts.c.day, facts.c.matter_code).cte("base"))
    _insert_chain(session, RegionFigures.__table__, base, ("day", "matter_code"), COUNTER_NAMES)

    points = (select(facts.c.service_point_id, facts.c.day, facts.c.matter_code, facts.c.staff_id,
                     *[func.sum(expression).label(name) for name, expression in counts.items()])
              .group_by(facts.c.service_point_id, facts.c.day, facts.c.matter_code, facts.c.staff_id))
    session.execute(sa.insert(PointFigures.__table__).from_select(
        ["service_point_id", "day", "matter_code", "staff_id", *counts], points))

    due = _due_key(facts).label("due_date")
    open_base = (select(facts.c.region_code, facts.c.day, facts.c.matter_code, facts.c.state, facts.c.sla_state, due,
                        func.count().label("cases"))
                 .where(open_cases)
                 .group_by(facts.c.region_code, facts.c.day, facts.c.matter_code, facts.c.state, facts.c.sla_state, due)
                 .cte("open_base"))
    _insert_chain(session, RegionOpenFigures.__table__, open_base,
                  ("day", "matter_code", "state", "sla_state", "due_date"), ("cases",))

    point_due = _due_key(facts)
    open_points = (select(facts.c.service_point_id, facts.c.day, facts.c.matter_code, facts.c.staff_id,
                          facts.c.state, facts.c.sla_state, point_due.label("due_date"), func.count().label("cases"))
                   .where(open_cases)
                   .group_by(facts.c.service_point_id, facts.c.day, facts.c.matter_code, facts.c.staff_id,
                             facts.c.state, facts.c.sla_state, point_due))
    session.execute(sa.insert(PointOpenFigures.__table__).from_select(
        ["service_point_id", "day", "matter_code", "staff_id", "state", "sla_state", "due_date", "cases"], open_points))
    return {name: session.execute(select(func.count()).select_from(TABLES[name][0])).scalar_one() for name in TABLES} | {
        "facts": session.execute(select(func.count()).select_from(fact_table)).scalar_one()}


def _insert_chain(session: Session, table, base, group_columns: tuple[str, ...], sums: tuple[str, ...]) -> None:
    parts = []
    for code, level, parent, condition in _chain_sql(base.c.region_code):
        part = select(code.label("region_code"), sa.literal_column(f"'{level}'", String(10)).label("level"),
                      sa.cast(parent, String(12)).label("parent_code"),
                      *[base.c[name] for name in group_columns], *[base.c[name] for name in sums])
        parts.append(part.where(condition) if condition is not None else part)
    expanded = union_all(*parts).subquery("expanded")
    keys = ["region_code", "level", "parent_code", *group_columns]
    query = select(*[expanded.c[name] for name in keys], *[func.sum(expanded.c[name]).label(name) for name in sums]) \
        .group_by(*[expanded.c[name] for name in keys])
    session.execute(sa.insert(table).from_select([*keys, *sums], query))


# ----------------------------------------------------------------------------- lookups the API serves
#
# Built once per shape (which filters are given) with bind parameters, so a request pays for
# neither building nor compiling them. A region and its direct children come back from one
# query (`region_code = :region OR parent_code = :region`: two index scans, one result).

def _filters(table, shape: tuple[bool, bool, bool]) -> list:
    has_from, has_to, has_matter = shape
    conditions = []
    if has_from:
        conditions.append(table.c.day >= sa.bindparam("day_from", type_=Date))
    if has_to:
        conditions.append(table.c.day <= sa.bindparam("day_to", type_=Date))
    if has_matter:
        conditions.append(table.c.matter_code == sa.bindparam("matter_code", type_=String(64)))
    return conditions


def _params(day_from: date | None, day_to: date | None, matter_code: str | None) -> tuple[tuple, dict]:
    shape = (day_from is not None, day_to is not None, matter_code is not None)
    params = {"day_from": day_from, "day_to": day_to, "matter_code": matter_code}
    return shape, {name: value for name, value in params.items() if value is not None}


@lru_cache(maxsize=64)
def _counters_statement(scope: str, shape: tuple[bool, bool, bool]):
    """Summed counters per region (scope "region": the region and its children) or per staff
    member of a point (scope "point")."""
    if scope == "region":
        table = RegionFigures.__table__
        key = table.c.region_code
        where = sa.or_(table.c.region_code == sa.bindparam("region"), table.c.parent_code == sa.bindparam("region"))
    else:
        table = PointFigures.__table__
        key = table.c.staff_id
        where = table.c.service_point_id == sa.bindparam("point")
    return (select(key, *[func.sum(table.c[name]) for name in COUNTER_NAMES])
            .where(where, *_filters(table, shape)).group_by(key))


@lru_cache(maxsize=64)
def _open_statement(scope: str, shape: tuple[bool, bool, bool]):
    """Open cases per (region or staff member, state): count, overdue, due soon, paused."""
    if scope == "region":
        table = RegionOpenFigures.__table__
        key = table.c.region_code
        where = sa.or_(table.c.region_code == sa.bindparam("region"), table.c.parent_code == sa.bindparam("region"))
    else:
        table = PointOpenFigures.__table__
        key = table.c.staff_id
        where = table.c.service_point_id == sa.bindparam("point")
    running = table.c.sla_state == "running"
    today, soon = sa.bindparam("today", type_=Date), sa.bindparam("soon", type_=Date)
    return (select(key, table.c.state, func.sum(table.c.cases),
                   func.sum(when((and_(running, table.c.due_date < today), table.c.cases), else_=0)),
                   func.sum(when((and_(running, table.c.due_date >= today, table.c.due_date <= soon), table.c.cases),
                                 else_=0)),
                   func.sum(when((table.c.sla_state == "paused", table.c.cases), else_=0)))
            .where(where, *_filters(table, shape)).group_by(key, table.c.state))


def region_and_children(session: Session, *, region_code: str) -> tuple[Region | None, list[Region]]:
    """The region and its direct children (inactive ones too), in one query."""
    rows = session.execute(select(Region).where(
        sa.or_(Region.code == region_code, Region.parent_code == region_code)).order_by(Region.code)).scalars().all()
    region = next((row for row in rows if row.code == region_code), None)
    return region, [row for row in rows if row.code != region_code]


def regions_by_code(session: Session, *, codes: Iterable[str]) -> dict[str, Region]:
    codes = list(codes)
    if not codes:
        return {}
    return {row.code: row for row in session.execute(select(Region).where(Region.code.in_(codes))).scalars()}


def _read_counters(session: Session, statement, params: dict) -> dict[Any, dict[str, int]]:
    return {row[0]: {name: int(value or 0) for name, value in zip(COUNTER_NAMES, row[1:])}
            for row in session.execute(statement, params)}


def _read_open(session: Session, statement, params: dict) -> dict[Any, dict]:
    out: dict[Any, dict] = {}
    for key, state, count, overdue, due_soon, paused in session.execute(statement, params):
        bucket = out.setdefault(key, {"by_state": {}, "overdue": 0, "due_soon": 0, "paused": 0})
        bucket["by_state"][state] = bucket["by_state"].get(state, 0) + int(count or 0)
        bucket["overdue"] += int(overdue or 0)
        bucket["due_soon"] += int(due_soon or 0)
        bucket["paused"] += int(paused or 0)
    return out


def region_counters(session: Session, *, region_code: str, day_from: date | None, day_to: date | None,
                    matter_code: str | None) -> dict[str, dict[str, int]]:
    """{region code: summed counters} of the region and of each of its direct children that has rows."""
    shape, params = _params(day_from, day_to, matter_code)
    return _read_counters(session, _counters_statement("region", shape), {"region": region_code, **params})


def region_open(session: Session, *, region_code: str, day_from: date | None, day_to: date | None,
                matter_code: str | None, today: date, soon: date) -> dict[str, dict]:
    """{region code: {"by_state", "overdue", "due_soon", "paused"}} of the region and its children."""
    shape, params = _params(day_from, day_to, matter_code)
    return _read_open(session, _open_statement("region", shape),
                      {"region": region_code, "today": today, "soon": soon, **params})


def point_counters(session: Session, *, service_point_id: int, day_from: date | None, day_to: date | None,
                   matter_code: str | None) -> dict[int, dict[str, int]]:
    """{staff id (UNASSIGNED: the pool): summed counters} of a point."""
    shape, params = _params(day_from, day_to, matter_code)
    return _read_counters(session, _counters_statement("point", shape), {"point": service_point_id, **params})


def point_open(session: Session, *, service_point_id: int, day_from: date | None, day_to: date | None,
               matter_code: str | None, today: date, soon: date) -> dict[int, dict]:
    shape, params = _params(day_from, day_to, matter_code)
    return _read_open(session, _open_statement("point", shape),
                      {"point": service_point_id, "today": today, "soon": soon, **params})


# ----------------------------------------------------------------------------- live, from cases

def live_region_figures(session: Session, *, region_code: str, child_prefix_length: int | None,
                        day_from: date | None, day_to: date | None, matter_code: str | None, today: date,
                        soon: date, prefix: str) -> dict[str, Any]:
    """The same figures computed from the cases themselves (no rollup): one GROUP BY over the
    subtree's cases (region_code LIKE prefix%) with their latest rating, grouped by the child
    region's digits. What serving without rollups would cost; also the tests' oracle.
    Working days still come from figures_working_days (ensure_working_days first)."""
    facts = fact_select(session).where(Case.region_code.startswith(prefix))
    submitted = china_day(session, Case.submitted_at)
    if day_from is not None:
        facts = facts.where(submitted >= day_from)
    if day_to is not None:
        facts = facts.where(submitted <= day_to)
    if matter_code is not None:
        facts = facts.where(Case.matter_code == matter_code)
    f = facts.subquery("f")
    counts = counter_sql(f)
    group = (func.substr(f.c.region_code, 1, child_prefix_length, type_=String(12))
             if child_prefix_length else literal(""))
    running = f.c.sla_state == "running"
    open_case = f.c.state.not_in(CLOSED_STATES)
    rows = session.execute(select(
        group.label("child"), *[func.sum(expression).label(name) for name, expression in counts.items()],
        func.sum(when((and_(open_case, running, f.c.due_date < today), 1), else_=0)),
        func.sum(when((and_(open_case, running, f.c.due_date >= today, f.c.due_date <= soon), 1), else_=0)),
        func.sum(when((and_(open_case, f.c.sla_state == "paused"), 1), else_=0)),
    ).group_by(group)).all()
    out: dict[str, Any] = {}
    for row in rows:
        values = {name: int(value or 0) for name, value in zip(COUNTER_NAMES, row[1:1 + len(COUNTER_NAMES)])}
        overdue, due_soon, paused = (int(value or 0) for value in row[1 + len(COUNTER_NAMES):])
        out[row[0]] = {**values, "overdue": overdue, "due_soon": due_soon, "paused": paused}
    return out
