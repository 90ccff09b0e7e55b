"""The clerk's work queue (GET /cases for staff): a point's cases still in progress, assigned to
one clerk or in the pool (assignee NULL), by deadline (cases without one first), read as an
ordered index range instead of sorting the point's open cases on every page.
Partial on the states that end a case in the shipped lifecycle; the expression matches
services.cases.repository's sort key.

Revision ID: 20261126_0010
Revises: 20261126_0007
"""

from alembic import op

revision = "20261126_0010"
down_revision = "20261126_0007"
branch_labels = None
depends_on = None

FINISHED = "('delivered', 'denied', 'not_accepted', 'withdrawn')"


def upgrade() -> None:
    op.execute("CREATE INDEX ix_cases_work_queue ON cases "
               "(handling_point_id, assignee_id, COALESCE(due_date, '1900-01-01'), submitted_at, id) "
               f"WHERE state NOT IN {FINISHED}")


def downgrade() -> None:
    op.execute("DROP INDEX ix_cases_work_queue")
