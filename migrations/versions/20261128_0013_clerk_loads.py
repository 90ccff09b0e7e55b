"""Each clerk's open cases at a point, counted as cases change instead of on every submission.

Routing assigns a new case to the least-loaded clerk of its point, so every submission counted
each candidate clerk's open cases. That count was an index-only scan of the clerk's entries in
ix_cases_open_assignee_id_handling_point_id: it grew with the clerk's caseload (5,822 open cases
at the benchmark's town clerk after a few runs: 2.9 ms of PostgreSQL per submission, most of the
submission's database time; 18,115 for one clerk of the 1M database) and read the heap for every
entry whose page autovacuum had not yet marked all-visible.

`clerk_loads` holds the count per (clerk, point), kept by triggers on `cases` in the statement
that changes a case: a new open case, a case leaving or re-entering the open states, a case moved
to another clerk or point, a deleted case. Triggers rather than application code, so that every
path that writes cases (actions, transfers, bundles, seeds, imports, a DBA's UPDATE) keeps it
right, in the same transaction. The open states are written out here as they were when this ran
(services.points.models.OPEN_STATES); tests/services/points/test_clerk_loads.py fails if the two
ever differ. The partial index served only the count and goes.

A submission now updates its clerk's row: submissions to one clerk wait for each other's commit
on that row (one statement each on PostgreSQL: milliseconds).

Revision ID: 20261128_0013
Revises: 20261127_0012
"""

import sqlalchemy as sa
from alembic import op

revision = "20261128_0013"
down_revision = "20261127_0012"
branch_labels = None
depends_on = None

OPEN = "('submitted', 'correcting', 'accepted', 'in_review', 'suspended')"


def upgrade() -> None:
    op.create_table(
        "clerk_loads",
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff.id"), primary_key=True),
        sa.Column("service_point_id", sa.Integer(), sa.ForeignKey("service_points.id"), primary_key=True),
        sa.Column("open_cases", sa.Integer(), nullable=False),
    )
    op.execute(f"INSERT INTO clerk_loads (staff_id, service_point_id, open_cases) "
               f"SELECT assignee_id, handling_point_id, count(*) FROM cases "
               f"WHERE assignee_id IS NOT NULL AND state IN {OPEN} GROUP BY assignee_id, handling_point_id")
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()
    op.drop_index("ix_cases_open_assignee_id_handling_point_id", table_name="cases")


def _postgresql_triggers() -> None:
    op.execute(f"""
        CREATE FUNCTION count_clerk_loads() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP <> 'INSERT' AND OLD.assignee_id IS NOT NULL AND OLD.state IN {OPEN} THEN
            UPDATE clerk_loads SET open_cases = open_cases - 1
             WHERE staff_id = OLD.assignee_id AND service_point_id = OLD.handling_point_id;
          END IF;
          IF TG_OP <> 'DELETE' AND NEW.assignee_id IS NOT NULL AND NEW.state IN {OPEN} THEN
            INSERT INTO clerk_loads (staff_id, service_point_id, open_cases)
            VALUES (NEW.assignee_id, NEW.handling_point_id, 1)
            ON CONFLICT (staff_id, service_point_id) DO UPDATE SET open_cases = clerk_loads.open_cases + 1;
          END IF;
          RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER cases_clerk_loads_insert_delete AFTER INSERT OR DELETE ON cases "
               "FOR EACH ROW EXECUTE FUNCTION count_clerk_loads()")
    # only the updates that change whom a case counts for: a transition between two open states
    # (accept, start_review) or two closed ones calls nothing
    op.execute(f"""
        CREATE TRIGGER cases_clerk_loads_update AFTER UPDATE OF state, assignee_id, handling_point_id ON cases
        FOR EACH ROW WHEN (OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
                           OR OLD.handling_point_id IS DISTINCT FROM NEW.handling_point_id
                           OR (OLD.state IN {OPEN}) IS DISTINCT FROM (NEW.state IN {OPEN}))
        EXECUTE FUNCTION count_clerk_loads()""")


def _sqlite_triggers() -> None:
    add_new = (f"INSERT INTO clerk_loads (staff_id, service_point_id, open_cases) "
               f"SELECT NEW.assignee_id, NEW.handling_point_id, 1 "
               f"WHERE NEW.assignee_id IS NOT NULL AND NEW.state IN {OPEN} "
               f"ON CONFLICT (staff_id, service_point_id) DO UPDATE SET open_cases = open_cases + 1;")
    remove_old = (f"UPDATE clerk_loads SET open_cases = open_cases - 1 "
                  f"WHERE OLD.assignee_id IS NOT NULL AND OLD.state IN {OPEN} "
                  f"AND staff_id = OLD.assignee_id AND service_point_id = OLD.handling_point_id;")
    op.execute(f"CREATE TRIGGER cases_clerk_loads_insert AFTER INSERT ON cases BEGIN {add_new} END")
    op.execute(f"CREATE TRIGGER cases_clerk_loads_delete AFTER DELETE ON cases BEGIN {remove_old} END")
    op.execute(f"CREATE TRIGGER cases_clerk_loads_update AFTER UPDATE OF state, assignee_id, handling_point_id "
               f"ON cases WHEN OLD.assignee_id IS NOT NEW.assignee_id "
               f"OR OLD.handling_point_id IS NOT NEW.handling_point_id "
               f"OR (OLD.state IN {OPEN}) IS NOT (NEW.state IN {OPEN}) BEGIN {remove_old} {add_new} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER cases_clerk_loads_update ON cases")
        op.execute("DROP TRIGGER cases_clerk_loads_insert_delete ON cases")
        op.execute("DROP FUNCTION count_clerk_loads()")
    else:
        for name in ("cases_clerk_loads_update", "cases_clerk_loads_delete", "cases_clerk_loads_insert"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("clerk_loads")
    op.create_index("ix_cases_open_assignee_id_handling_point_id", "cases",
                    ["assignee_id", "handling_point_id", "state"],
                    postgresql_where=sa.text(f"state IN {OPEN}"), sqlite_where=sa.text(f"state IN {OPEN}"))
