"""PostgreSQL keeps a generic plan for a statement it has prepared (psycopg prepares on the 5th
use), planned without the parameters' values. The clerk's work queue must still walk the partial
index ix_cases_work_queue in order under such a plan; with its states or page size bound as
parameters the planner cannot prove the index applies and sorts all the clerk's cases at the point
on every page instead. PostgreSQL only: SQLite has no plan cache."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.dialects.postgresql import psycopg

from services.cases import repository

WORK_QUEUE_INDEX = "ix_cases_work_queue"


def _generic_plan(connection, statement, values: dict, *, penalise_sorts: bool = True) -> str:
    compiled = statement.compile(dialect=psycopg.dialect(paramstyle="numeric_dollar"))
    arguments = ", ".join(str(values[name]) for name in compiled.positiontup)
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    if penalise_sorts:
        # On a small table a sort of a few rows is rightly the cheapest plan; what matters then is
        # whether the ordered index scan is possible at all without the parameters' values.
        # Penalising sorts makes the planner take it whenever it can, whatever the table's size.
        connection.exec_driver_sql("SET LOCAL enable_sort = off")
    connection.exec_driver_sql(f"PREPARE work_queue_page AS {compiled}")
    try:
        rows = connection.exec_driver_sql(f"EXPLAIN EXECUTE work_queue_page({arguments})").all()
    finally:
        connection.exec_driver_sql("DEALLOCATE work_queue_page")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("after_cursor", [False, True], ids=["first page", "next page"])
def test_the_work_queue_uses_its_index_under_a_generic_plan(engine, seeded, after_cursor):
    if engine.dialect.name != "postgresql":
        pytest.skip("plan caching is PostgreSQL's")
    statement = repository._page("clerk", by_state=False, by_matter=False, by_flag=False, unfinished=True,
                                 sort="deadline", after_cursor=after_cursor, limit=21)
    values = {"v_point": 1, "v_account": 1, "after_due": "'2026-01-05'::date",
              "after_at": "'2026-01-05 08:00:00+00'::timestamptz", "after_id": "'00000000'"}
    with engine.connect() as connection, connection.begin():
        plan = _generic_plan(connection, statement, values)
    # the clerk's own assignments: an ordered scan of the partial index. (The pool branch,
    # `assignee_id IS NULL`, sorts the point's unassigned open cases under any plan: PostgreSQL
    # does not treat IS NULL as an equality that would let it keep the index's order.)
    assert WORK_QUEUE_INDEX in plan, plan
    assert "handling_point_id = $" in plan, plan  # a generic plan indeed: parameters, not their values


def test_the_planner_knows_a_clerks_cases_are_at_their_point(engine, client):
    """On the 10k benchmark the generic plan of a busy clerk's queue (437 open cases) read all of
    them with a bitmap scan and sorted them for every page: taking `handling_point_id = $1` and
    `assignee_id = $2` as independent, PostgreSQL expected 3 rows, and the sort of 3 rows came out
    a hair cheaper than the ordered index scan that stops after a page. Statistics on that
    dependency (migration 20261127_0012) give it the right order of magnitude. Which plan wins
    at such estimates depends on the table's physical layout, so this checks the estimate, on a
    county's worth of cases: every clerk of the demo county with 150 open and 600 finished cases
    at their point. All in one transaction, rolled back (ANALYZE's statistics too)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("plan caching is PostgreSQL's")
    from sqlalchemy import text

    from services.cases.models import Case
    from tests.api.test_cases_lifecycle import new_case

    _citizen, source = new_case(client)  # assigned to the village station's clerk
    columns = [column.name for column in Case.__table__.columns]
    statement = repository._page("clerk", by_state=False, by_matter=False, by_flag=False, unfinished=True,
                                 sort="deadline", after_cursor=False, limit=21)
    with engine.connect() as connection, connection.begin() as transaction:
        def copy_source(state: str, count: int) -> None:
            copied = {"id": "md5(random()::text)", "number": f"'plan-{state}-' || s.id || '-' || n",
                      "handling_point_id": "s.service_point_id", "assignee_id": "s.id", "state": f"'{state}'",
                      "due_date": "current_date + (n % 30)"}
            connection.execute(text(
                f"INSERT INTO cases ({', '.join(columns)}) SELECT {', '.join(copied.get(c, 'c.' + c) for c in columns)} "
                f"FROM generate_series(1, {count}) AS n, cases AS c JOIN staff AS s ON s.role = 'clerk' "
                "WHERE c.id = :source"), {"source": source["id"]})

        copy_source("accepted", 150)
        copy_source("delivered", 600)  # outside the partial index
        connection.exec_driver_sql("ANALYZE cases")
        plan = _generic_plan(connection, statement, {"v_point": source["handling_point"]["id"],
                                                     "v_account": source["assignee"]["id"]}, penalise_sorts=False)
        transaction.rollback()
    own_branch = plan.split("Subquery Scan")[1]  # the clerk's own assignments come first
    estimate = re.search(rf"Index Scan using {WORK_QUEUE_INDEX} on cases \w+ +\(cost=[\d.]+ rows=(\d+)", own_branch)
    assert estimate is not None, plan
    assert int(estimate.group(1)) >= 50, plan  # 150 each; independent columns would say a handful
