"""PostgreSQL keeps a generic plan for a statement it has prepared (psycopg prepares on the 5th
use), planned without the parameters' values. The clerk's work queue must still walk the partial
index ix_cases_work_queue in order under such a plan; with its states or page size bound as
parameters the planner cannot prove the index applies and sorts all the clerk's cases at the point
on every page instead. PostgreSQL only: SQLite has no plan cache."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects.postgresql import psycopg

from services.cases import repository

WORK_QUEUE_INDEX = "ix_cases_work_queue"


def _generic_plan(connection, statement, values: dict) -> str:
    compiled = statement.compile(dialect=psycopg.dialect(paramstyle="numeric_dollar"))
    arguments = ", ".join(str(values[name]) for name in compiled.positiontup)
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    # On a small table a sort of a few rows is rightly the cheapest plan; what matters is whether
    # the ordered index scan is possible at all without the parameters' values. Penalising sorts
    # makes the planner take it whenever it can, whatever the table's size.
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
