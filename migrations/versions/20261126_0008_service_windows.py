"""service windows: a point's counters and the matter categories each handles; staff bound to a
window and on duty or on leave; one active point per region and level; an index of open
assignments for the least-loaded-clerk count

The free-text `staff.window` becomes rows of `service_windows` (one per point and name, every
category) and `staff.window_id`; the downgrade writes the names back.

Revision ID: 20261126_0008
Revises: 20261126_0007
Create Date: 2026-11-26
"""
from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa

revision = "20261126_0008"
down_revision = "20261126_0007"
branch_labels = None
depends_on = None

OPEN_STATES_SQL = "state IN ('submitted', 'correcting', 'accepted', 'in_review', 'suspended')"


@contextmanager
def _sqlite_foreign_keys_off():
    """SQLite alters `staff` by copying it to a new table and dropping the old one (batch mode);
    with foreign keys enforced, that drop fails as soon as a case or an event points at a staff
    row. The pragma only changes outside a transaction, so the transaction is closed around it,
    and the references are checked before they are enforced again. PostgreSQL: nothing to do."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    raw = bind.connection.driver_connection
    if raw.in_transaction:
        raw.execute("COMMIT")
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute("BEGIN IMMEDIATE")
    try:
        yield
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken by the migration: {broken[:10]}")
    except BaseException:
        raw.execute("ROLLBACK")
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("BEGIN IMMEDIATE")  # what the surrounding migration transaction rolls back
        raise
    raw.execute("COMMIT")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("BEGIN IMMEDIATE")


def upgrade() -> None:
    bind = op.get_bind()
    duplicates = bind.execute(sa.text(
        "SELECT region_code, level, COUNT(*) FROM service_points WHERE active "
        "GROUP BY region_code, level HAVING COUNT(*) > 1")).all()
    if duplicates:
        raise RuntimeError("more than one active service point for the same region and level; deactivate all but "
                           f"one of each before upgrading: {[tuple(row[:2]) for row in duplicates]}")

    # op.f(): the names are final; the naming convention must not be applied on top of them.
    op.create_table(
        "service_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["service_point_id"], ["service_points.id"],
                                name=op.f("fk_service_windows_service_point_id_service_points")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_windows")),
    )
    op.create_index(op.f("ix_service_windows_service_point_id"), "service_windows", ["service_point_id"])
    op.create_index(op.f("ux_service_windows_service_point_id_name_active"), "service_windows",
                    ["service_point_id", "name"], unique=True,
                    postgresql_where=sa.text("active"), sqlite_where=sa.text("active"))

    with _sqlite_foreign_keys_off(), op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(length=10), server_default="on_duty", nullable=False))
        batch_op.create_index(op.f("ix_staff_window_id"), ["window_id"], unique=False)
        batch_op.create_foreign_key(op.f("fk_staff_window_id_service_windows"), "service_windows",
                                    ["window_id"], ["id"])

    # Each point's window names become windows handling every category.
    named = bind.execute(sa.text('SELECT DISTINCT service_point_id, "window" FROM staff WHERE "window" IS NOT NULL '
                                 'AND "window" <> \'\' ORDER BY service_point_id, "window"')).all()
    windows = sa.table("service_windows", sa.column("service_point_id", sa.Integer()),
                       sa.column("name", sa.String()), sa.column("categories", sa.JSON()),
                       sa.column("active", sa.Boolean()), sa.column("created_at", sa.DateTime(timezone=True)))
    if named:
        now = bind.execute(sa.select(sa.func.current_timestamp())).scalar_one()
        op.bulk_insert(windows, [{"service_point_id": point_id, "name": name, "categories": [], "active": True,
                                  "created_at": now} for point_id, name in named])
        bind.execute(sa.text(
            "UPDATE staff SET window_id = (SELECT w.id FROM service_windows w "
            'WHERE w.service_point_id = staff.service_point_id AND w.name = staff."window") '
            'WHERE "window" IS NOT NULL AND "window" <> \'\''))

    with _sqlite_foreign_keys_off(), op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("window")

    op.create_index(op.f("ux_service_points_region_code_level_active"), "service_points", ["region_code", "level"],
                    unique=True, postgresql_where=sa.text("active"), sqlite_where=sa.text("active"))
    # `state` too, though only open states are in it: SQLite then answers the count from the index alone
    op.create_index(op.f("ix_cases_open_assignee_id_handling_point_id"), "cases",
                    ["assignee_id", "handling_point_id", "state"],
                    postgresql_where=sa.text(OPEN_STATES_SQL), sqlite_where=sa.text(OPEN_STATES_SQL))


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index(op.f("ix_cases_open_assignee_id_handling_point_id"), table_name="cases")
    op.drop_index(op.f("ux_service_points_region_code_level_active"), table_name="service_points")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window", sa.String(length=20), nullable=True))
    bind.execute(sa.text('UPDATE staff SET "window" = '
                         '(SELECT w.name FROM service_windows w WHERE w.id = staff.window_id) '
                         "WHERE window_id IS NOT NULL"))
    with _sqlite_foreign_keys_off(), op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_staff_window_id_service_windows"), type_="foreignkey")
        batch_op.drop_index(op.f("ix_staff_window_id"))
        batch_op.drop_column("status")
        batch_op.drop_column("window_id")
    op.drop_index(op.f("ux_service_windows_service_point_id_name_active"), table_name="service_windows")
    op.drop_index(op.f("ix_service_windows_service_point_id"), table_name="service_windows")
    op.drop_table("service_windows")
