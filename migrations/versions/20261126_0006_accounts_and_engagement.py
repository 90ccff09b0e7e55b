"""accounts and engagement: issued access tokens and staff sign-in attempts (revocation,
lock-out, audit); consents to assisted applications; applicant notifications; 好差评
evaluations and rectifications; files kept by a consent

Revision ID: 20261126_0006
Revises: 20261126_0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "20261126_0006"
down_revision = "20261126_0002"
branch_labels = None
depends_on = None


def _datetime(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # op.f(): the names are final (services/db.py's convention, spelled out).
    op.create_table(
        "issued_access_tokens",
        sa.Column("jti", sa.String(length=36), nullable=False),
        sa.Column("family", sa.String(length=36), nullable=False),
        sa.Column("principal", sa.String(length=40), nullable=False),
        _datetime("issued_at"),
        _datetime("expires_at"),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_issued_access_tokens")),
    )
    op.create_index(op.f("ix_issued_access_tokens_family"), "issued_access_tokens", ["family"], unique=False)
    op.create_index(op.f("ix_issued_access_tokens_principal"), "issued_access_tokens", ["principal"], unique=False)
    op.create_index(op.f("ix_issued_access_tokens_expires_at"), "issued_access_tokens", ["expires_at"], unique=False)

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_key", sa.String(length=32), nullable=False),
        sa.Column("address_key", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        _datetime("at"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_login_attempts_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(op.f("ix_login_attempts_account_key_at"), "login_attempts", ["account_key", "at"], unique=False)
    op.create_index(op.f("ix_login_attempts_address_key_at"), "login_attempts", ["address_key", "at"], unique=False)
    op.create_index(op.f("ix_login_attempts_staff_id"), "login_attempts", ["staff_id"], unique=False)

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kept_by", sa.String(length=60), nullable=True))

    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("citizen_account_id", sa.Integer(), nullable=True),
        sa.Column("helper_id", sa.Integer(), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=36), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        _datetime("created_at"),
        _datetime("expires_at"),
        _datetime("used_at", nullable=True),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        _datetime("revoked_at", nullable=True),
        sa.Column("confirmation", sa.String(length=10), nullable=True),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        _datetime("confirmed_at", nullable=True),
        sa.Column("confirmation_comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_consents_subject_id_subjects")),
        sa.ForeignKeyConstraint(["citizen_account_id"], ["citizen_accounts.id"],
                                name=op.f("fk_consents_citizen_account_id_citizen_accounts")),
        sa.ForeignKeyConstraint(["helper_id"], ["staff.id"], name=op.f("fk_consents_helper_id_staff")),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_consents_file_id_files")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_consents_case_id_cases")),
        sa.ForeignKeyConstraint(["confirmed_by"], ["staff.id"], name=op.f("fk_consents_confirmed_by_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("code", name=op.f("uq_consents_code")),
        sa.UniqueConstraint("case_id", name=op.f("uq_consents_case_id")),
    )
    op.create_index(op.f("ix_consents_subject_id"), "consents", ["subject_id"], unique=False)
    op.create_index(op.f("ix_consents_helper_id"), "consents", ["helper_id"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("event", sa.String(length=30), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("template_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("msgid", sa.String(length=32), nullable=True),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        _datetime("created_at"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_notifications_case_id_cases")),
        sa.ForeignKeyConstraint(["account_id"], ["citizen_accounts.id"],
                                name=op.f("fk_notifications_account_id_citizen_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    op.create_index(op.f("ix_notifications_case_id"), "notifications", ["case_id"], unique=False)

    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("clerk_id", sa.Integer(), nullable=True),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        _datetime("created_at"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_evaluations_case_id_cases")),
        sa.ForeignKeyConstraint(["account_id"], ["citizen_accounts.id"],
                                name=op.f("fk_evaluations_account_id_citizen_accounts")),
        sa.ForeignKeyConstraint(["service_point_id"], ["service_points.id"],
                                name=op.f("fk_evaluations_service_point_id_service_points")),
        sa.ForeignKeyConstraint(["clerk_id"], ["staff.id"], name=op.f("fk_evaluations_clerk_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint("case_id", "round", name=op.f("uq_evaluations_case_id_round")),
    )
    op.create_index(op.f("ix_evaluations_service_point_id_created_at"), "evaluations",
                    ["service_point_id", "created_at"], unique=False)
    op.create_index(op.f("ix_evaluations_clerk_id"), "evaluations", ["clerk_id"], unique=False)
    op.create_index(op.f("ix_evaluations_region_code"), "evaluations", ["region_code"], unique=False)

    op.create_table(
        "rectifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("supervisor_point_id", sa.Integer(), nullable=False),
        sa.Column("supervisor_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        _datetime("created_at"),
        _datetime("completed_at", nullable=True),
        sa.Column("completed_by", sa.Integer(), nullable=True),
        sa.Column("measures", sa.Text(), nullable=True),
        sa.Column("return_visit_method", sa.String(length=10), nullable=True),
        sa.Column("return_visit_summary", sa.Text(), nullable=True),
        sa.Column("applicant_satisfied", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluations.id"],
                                name=op.f("fk_rectifications_evaluation_id_evaluations")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_rectifications_case_id_cases")),
        sa.ForeignKeyConstraint(["service_point_id"], ["service_points.id"],
                                name=op.f("fk_rectifications_service_point_id_service_points")),
        sa.ForeignKeyConstraint(["supervisor_point_id"], ["service_points.id"],
                                name=op.f("fk_rectifications_supervisor_point_id_service_points")),
        sa.ForeignKeyConstraint(["supervisor_id"], ["staff.id"], name=op.f("fk_rectifications_supervisor_id_staff")),
        sa.ForeignKeyConstraint(["completed_by"], ["staff.id"], name=op.f("fk_rectifications_completed_by_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rectifications")),
        sa.UniqueConstraint("evaluation_id", name=op.f("uq_rectifications_evaluation_id")),
    )
    op.create_index(op.f("ix_rectifications_case_id"), "rectifications", ["case_id"], unique=False)
    op.create_index(op.f("ix_rectifications_service_point_id"), "rectifications", ["service_point_id"], unique=False)
    op.create_index(op.f("ix_rectifications_supervisor_point_id"), "rectifications", ["supervisor_point_id"],
                    unique=False)
    op.create_index(op.f("ix_rectifications_state_due_date"), "rectifications", ["state", "due_date"], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ("rectifications", ["ix_rectifications_state_due_date", "ix_rectifications_supervisor_point_id",
                            "ix_rectifications_service_point_id", "ix_rectifications_case_id"]),
        ("evaluations", ["ix_evaluations_region_code", "ix_evaluations_clerk_id",
                         "ix_evaluations_service_point_id_created_at"]),
        ("notifications", ["ix_notifications_case_id"]),
        ("consents", ["ix_consents_helper_id", "ix_consents_subject_id"]),
    ):
        for index in indexes:
            op.drop_index(op.f(index), table_name=table)
        op.drop_table(table)
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("kept_by")
    for index in ("ix_login_attempts_staff_id", "ix_login_attempts_address_key_at", "ix_login_attempts_account_key_at"):
        op.drop_index(op.f(index), table_name="login_attempts")
    op.drop_table("login_attempts")
    for index in ("ix_issued_access_tokens_expires_at", "ix_issued_access_tokens_principal",
                  "ix_issued_access_tokens_family"):
        op.drop_index(op.f(index), table_name="issued_access_tokens")
    op.drop_table("issued_access_tokens")
