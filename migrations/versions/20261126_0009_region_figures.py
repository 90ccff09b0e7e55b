"""regional figures: rollups of cases per region subtree and per service point (counters by
submission day and matter; open cases by state, clock and due date), the folded facts of each
case, numbered working days, the refresh state; indexes the refresh finds changes with

Revision ID: 20261126_0009
Revises: 20261126_0007
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "20261126_0009"
down_revision = "20261126_0007"
branch_labels = None
depends_on = None

COUNTERS = ("received", "accepted", "completed", "denied", "not_accepted", "withdrawn", "open", "completion_cases",
            "completion_working_days", "rated_1", "rated_2", "rated_3", "rated_4", "rated_5")


def _counters() -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in COUNTERS]


def upgrade() -> None:
    # op.f(): the names are final (services/db.py's convention, spelled out).
    op.create_table(
        "figures_regions",
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        *_counters(),
        sa.PrimaryKeyConstraint("region_code", "day", "matter_code", name=op.f("pk_figures_regions")),
    )
    op.create_index(op.f("ix_figures_regions_parent_code_day"), "figures_regions", ["parent_code", "day"])

    op.create_table(
        "figures_points",
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        *_counters(),
        sa.PrimaryKeyConstraint("service_point_id", "day", "matter_code", "staff_id", name=op.f("pk_figures_points")),
    )

    op.create_table(
        "figures_regions_open",
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("sla_state", sa.String(length=12), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        sa.Column("cases", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("region_code", "day", "matter_code", "state", "sla_state", "due_date",
                                name=op.f("pk_figures_regions_open")),
    )
    op.create_index(op.f("ix_figures_regions_open_parent_code_day"), "figures_regions_open", ["parent_code", "day"])

    op.create_table(
        "figures_points_open",
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("sla_state", sa.String(length=12), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("cases", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("service_point_id", "day", "matter_code", "staff_id", "state", "sla_state",
                                "due_date", name=op.f("pk_figures_points_open")),
    )

    op.create_table(
        "figures_case_facts",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("sla_state", sa.String(length=12), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_figures_case_facts")),
    )

    op.create_table(
        "figures_working_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_figures_working_days")),
    )

    state = op.create_table(
        "figures_refresh_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("calendar_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("working_days_from", sa.Date(), nullable=True),
        sa.Column("working_days_to", sa.Date(), nullable=True),
        sa.Column("last_run", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_figures_refresh_state")),
    )
    op.bulk_insert(state, [{"id": 1}])  # never built: the first refresh builds everything

    # What the refresh finds changes with (declared in services/figures/models.py).
    op.create_index("ix_cases_updated_at", "cases", ["updated_at"])
    op.create_index("ix_evaluations_created_at", "evaluations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_created_at", table_name="evaluations")
    op.drop_index("ix_cases_updated_at", table_name="cases")
    for table in ("figures_refresh_state", "figures_working_days", "figures_case_facts", "figures_points_open",
                  "figures_regions_open", "figures_points", "figures_regions"):
        op.drop_table(table)
