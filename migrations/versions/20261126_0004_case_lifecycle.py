"""case lifecycle: suspension, extension and correction on cases; the SLA sweep's marks and
escalations; administrators' calendar days; bundle (一件事) parent cases; list indexes

Revision ID: 20261126_0004
Revises: 20261126_0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "20261126_0004"
down_revision = "20261126_0002"
branch_labels = None
depends_on = None

# (name, columns) of the indexes added to cases
CASE_INDEXES = (
    ("ix_cases_handling_point_id_submitted_at_id", ["handling_point_id", "submitted_at", "id"]),
    ("ix_cases_receiving_point_id_submitted_at_id", ["receiving_point_id", "submitted_at", "id"]),
    ("ix_cases_submitted_at_id", ["submitted_at", "id"]),
    ("ix_cases_sla_state_due_date", ["sla_state", "due_date"]),
    ("ix_cases_sla_flag", ["sla_flag"]),
    ("ix_cases_escalation_level_escalated_at", ["escalation_level", "escalated_at"]),
    ("ix_cases_bundle_case_id", ["bundle_case_id"]),
)


def upgrade() -> None:
    # op.f(): the names are final; the naming convention must not be applied on top of them.
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("working", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=100), server_default="", nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_calendar_days")),
    )
    op.create_table(
        "bundle_cases",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("bundle_code", sa.String(length=64), nullable=False),
        sa.Column("bundle_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("applicant_name", sa.String(length=100), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("created_by_principal", sa.String(length=40), nullable=False),
        sa.Column("outcome_reason", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_bundle_cases_subject_id_subjects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundle_cases")),
        sa.UniqueConstraint("number", name=op.f("uq_bundle_cases_number")),
    )
    op.create_index(op.f("ix_bundle_cases_subject_id"), "bundle_cases", ["subject_id"], unique=False)
    op.create_index(op.f("ix_bundle_cases_created_by_principal"), "bundle_cases", ["created_by_principal"],
                    unique=False)

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_state", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sla_days_left", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sla_legal_days_left", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sla_paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suspend_until", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("extension_days", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("correction_items", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("sla_flag", sa.String(length=10), server_default="ok", nullable=False))
        batch_op.add_column(sa.Column("escalation_level", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("delivery_method", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("bundle_case_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(op.f("fk_cases_bundle_case_id_bundle_cases"), "bundle_cases",
                                    ["bundle_case_id"], ["id"])
        for name, columns in CASE_INDEXES:
            batch_op.create_index(op.f(name), columns, unique=False)

    op.create_table(
        "case_escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=True),
        sa.Column("supervisor_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_escalations_case_id_cases")),
        sa.ForeignKeyConstraint(["service_point_id"], ["service_points.id"],
                                name=op.f("fk_case_escalations_service_point_id_service_points")),
        sa.ForeignKeyConstraint(["supervisor_id"], ["staff.id"], name=op.f("fk_case_escalations_supervisor_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_escalations")),
        sa.UniqueConstraint("case_id", "level", name=op.f("uq_case_escalations_case_id_level")),
    )


def downgrade() -> None:
    op.drop_table("case_escalations")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name, _columns in reversed(CASE_INDEXES):
            batch_op.drop_index(op.f(name))
        batch_op.drop_constraint(op.f("fk_cases_bundle_case_id_bundle_cases"), type_="foreignkey")
        for column in ("bundle_case_id", "delivery_method", "escalated_at", "escalation_level", "sla_flag",
                       "correction_items", "extension_days", "suspend_until", "sla_paused_at",
                       "sla_legal_days_left", "sla_days_left", "previous_state"):
            batch_op.drop_column(column)
    op.drop_index(op.f("ix_bundle_cases_created_by_principal"), table_name="bundle_cases")
    op.drop_index(op.f("ix_bundle_cases_subject_id"), table_name="bundle_cases")
    op.drop_table("bundle_cases")
    op.drop_table("calendar_days")
