"""The clerk's work queue keeps its ordered index scan under a generic plan.

The reads' pool keeps generic plans (services.db.without_transactions), planned without the
parameters' values. For `handling_point_id = $1 AND assignee_id = $2` PostgreSQL multiplies the
two columns' selectivities as if they were independent, estimates a handful of rows, and prefers
a bitmap scan of every open case of the clerk with a sort on top to the ordered scan of
ix_cases_work_queue that stops after a page: measured on the 10k benchmark (a clerk with 437 open
cases), 1.39 ms against 0.27 ms for the whole list statement. An assignee works at one point:
statistics on that dependency let the planner see it.

PostgreSQL only (SQLite has neither extended statistics nor a plan cache).

Revision ID: 20261127_0012
Revises: 20261126_0011
"""

from alembic import op

revision = "20261127_0012"
down_revision = "20261126_0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS st_cases_point_assignee (dependencies) ON handling_point_id, assignee_id "
                   "FROM cases")
        op.execute("ANALYZE cases")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS st_cases_point_assignee")
