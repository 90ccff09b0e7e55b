"""A clerk's load counts every case not yet decided, review steps included.

Migration 20261128_0013 listed the open states (submitted, correcting, accepted, in_review,
suspended). Matters with review steps (低保's first_review / second_review, 宅基地's
village_review / town_review, 食品经营许可's site_inspection) move their cases through states of
their own, which were not in the list: a clerk with many cases in review looked idle to routing
and got the next submission. The triggers now count a case in any state but the decided ones —
the standard lifecycle's states whose SLA clock is stopped (services.points.models.CLOSED_STATES):
a review step a matter adds later counts without another migration. The counts are taken again.

Revision ID: 20261128_0014
Revises: 20261128_0013
"""

from alembic import op

revision = "20261128_0014"
down_revision = "20261128_0013"
branch_labels = None
depends_on = None

# written out as they are when this runs: tests/services/points/test_clerk_loads.py fails if
# services.points.models.CLOSED_STATES ever differs from what the triggers do
COUNTED = "NOT IN ('approved', 'completed', 'delivered', 'denied', 'not_accepted', 'withdrawn')"
COUNTED_BEFORE = "IN ('submitted', 'correcting', 'accepted', 'in_review', 'suspended')"


def upgrade() -> None:
    _define(COUNTED)


def downgrade() -> None:
    _define(COUNTED_BEFORE)


def _define(counted: str) -> None:
    """(Re)create the triggers of 20261128_0013 with `state <counted>` as the open test, and
    recount (dropping a trigger locks `cases` until the migration commits: nothing changes a case
    in between)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER cases_clerk_loads_update ON cases")
        op.execute(f"""
            CREATE OR REPLACE FUNCTION count_clerk_loads() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP <> 'INSERT' AND OLD.assignee_id IS NOT NULL AND OLD.state {counted} THEN
                UPDATE clerk_loads SET open_cases = open_cases - 1
                 WHERE staff_id = OLD.assignee_id AND service_point_id = OLD.handling_point_id;
              END IF;
              IF TG_OP <> 'DELETE' AND NEW.assignee_id IS NOT NULL AND NEW.state {counted} THEN
                INSERT INTO clerk_loads (staff_id, service_point_id, open_cases)
                VALUES (NEW.assignee_id, NEW.handling_point_id, 1)
                ON CONFLICT (staff_id, service_point_id) DO UPDATE SET open_cases = clerk_loads.open_cases + 1;
              END IF;
              RETURN NULL;
            END $$""")
        op.execute(f"""
            CREATE TRIGGER cases_clerk_loads_update AFTER UPDATE OF state, assignee_id, handling_point_id ON cases
            FOR EACH ROW WHEN (OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
                               OR OLD.handling_point_id IS DISTINCT FROM NEW.handling_point_id
                               OR (OLD.state {counted}) IS DISTINCT FROM (NEW.state {counted}))
            EXECUTE FUNCTION count_clerk_loads()""")
    else:
        for name in ("cases_clerk_loads_update", "cases_clerk_loads_delete", "cases_clerk_loads_insert"):
            op.execute(f"DROP TRIGGER {name}")
        add_new = (f"INSERT INTO clerk_loads (staff_id, service_point_id, open_cases) "
                   f"SELECT NEW.assignee_id, NEW.handling_point_id, 1 "
                   f"WHERE NEW.assignee_id IS NOT NULL AND NEW.state {counted} "
                   f"ON CONFLICT (staff_id, service_point_id) DO UPDATE SET open_cases = open_cases + 1;")
        remove_old = (f"UPDATE clerk_loads SET open_cases = open_cases - 1 "
                      f"WHERE OLD.assignee_id IS NOT NULL AND OLD.state {counted} "
                      f"AND staff_id = OLD.assignee_id AND service_point_id = OLD.handling_point_id;")
        op.execute(f"CREATE TRIGGER cases_clerk_loads_insert AFTER INSERT ON cases BEGIN {add_new} END")
        op.execute(f"CREATE TRIGGER cases_clerk_loads_delete AFTER DELETE ON cases BEGIN {remove_old} END")
        op.execute(f"CREATE TRIGGER cases_clerk_loads_update AFTER UPDATE OF state, assignee_id, handling_point_id "
                   f"ON cases WHEN OLD.assignee_id IS NOT NEW.assignee_id "
                   f"OR OLD.handling_point_id IS NOT NEW.handling_point_id "
                   f"OR (OLD.state {counted}) IS NOT (NEW.state {counted}) BEGIN {remove_old} {add_new} END")
    op.execute("DELETE FROM clerk_loads")
    op.execute(f"INSERT INTO clerk_loads (staff_id, service_point_id, open_cases) "
               f"SELECT assignee_id, handling_point_id, count(*) FROM cases "
               f"WHERE assignee_id IS NOT NULL AND state {counted} GROUP BY assignee_id, handling_point_id")
