"""certificate registry: GB/T 36903 metadata and status bookkeeping on certificates; status
history, usage log, third-party grants and the public check log

Revision ID: 20261126_0005
Revises: 20261126_0002
Create Date: 2026-11-26

Hand-written; runs on SQLite and PostgreSQL. The new certificates columns are nullable or have
a server default, so rows issued before this revision (and bulk loaders that do not name these
columns) stay valid. Downgrade drops the columns with a plain ALTER TABLE ... DROP COLUMN
(SQLite >= 3.35): no table rebuild, so rows referencing certificates are untouched.
"""
from alembic import op
import sqlalchemy as sa

revision = "20261126_0005"
down_revision = "20261126_0002"
branch_labels = None
depends_on = None

NEW_COLUMNS = (
    ("number", sa.String(length=64), {}),
    ("holder_code_type", sa.String(length=3), {"server_default": "111", "nullable": False}),
    ("holder_name_masked", sa.String(length=100), {}),
    ("jurisdiction_code", sa.String(length=12), {}),
    ("signer_fingerprint", sa.String(length=64), {}),
    ("status_changed_at", sa.DateTime(timezone=True), {}),
    ("status_reason", sa.Text(), {}),
)
CERTIFICATE_INDEXES = (
    ("ix_certificates_holder_subject_id_issued_at", ["holder_subject_id", "issued_at"]),
    ("ix_certificates_status_valid_until", ["status", "valid_until"]),
    ("ix_certificates_pdf_sha256", ["pdf_sha256"]),
)


def upgrade() -> None:
    # op.f(): the names are final; the naming convention must not be applied on top of them.
    for name, type_, options in NEW_COLUMNS:
        op.add_column("certificates", sa.Column(name, type_, nullable=options.get("nullable", True),
                                                server_default=options.get("server_default")))
    for name, columns in CERTIFICATE_INDEXES:
        op.create_index(op.f(name), "certificates", columns, unique=False)

    op.create_table(
        "certificate_status_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.String(length=36), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=True),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.id"],
                                name=op.f("fk_certificate_status_events_certificate_id_certificates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_status_events")),
    )
    op.create_index(op.f("ix_certificate_status_events_certificate_id"), "certificate_status_events",
                    ["certificate_id"], unique=False)

    op.create_table(
        "certificate_usages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.String(length=36), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=300), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.id"],
                                name=op.f("fk_certificate_usages_certificate_id_certificates")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_certificate_usages_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_usages")),
    )
    op.create_index(op.f("ix_certificate_usages_certificate_id_created_at"), "certificate_usages",
                    ["certificate_id", "created_at"], unique=False)

    op.create_table(
        "certificate_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("certificate_id", sa.String(length=36), nullable=False),
        sa.Column("grantee", sa.String(length=200), nullable=False),
        sa.Column("grantee_code", sa.String(length=18), nullable=True),
        sa.Column("purpose", sa.String(length=300), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("use_count", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificates.id"],
                                name=op.f("fk_certificate_grants_certificate_id_certificates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_grants")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_certificate_grants_token_hash")),
    )
    op.create_index(op.f("ix_certificate_grants_certificate_id"), "certificate_grants", ["certificate_id"],
                    unique=False)

    op.create_table(
        "certificate_public_checks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("identifier", sa.String(length=120), nullable=True),
        sa.Column("certificate_id", sa.String(length=36), nullable=True),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_public_checks")),
    )
    op.create_index(op.f("ix_certificate_public_checks_certificate_id_created_at"), "certificate_public_checks",
                    ["certificate_id", "created_at"], unique=False)
    op.create_index(op.f("ix_certificate_public_checks_created_at"), "certificate_public_checks",
                    ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_certificate_public_checks_created_at"), table_name="certificate_public_checks")
    op.drop_index(op.f("ix_certificate_public_checks_certificate_id_created_at"),
                  table_name="certificate_public_checks")
    op.drop_table("certificate_public_checks")
    op.drop_index(op.f("ix_certificate_grants_certificate_id"), table_name="certificate_grants")
    op.drop_table("certificate_grants")
    op.drop_index(op.f("ix_certificate_usages_certificate_id_created_at"), table_name="certificate_usages")
    op.drop_table("certificate_usages")
    op.drop_index(op.f("ix_certificate_status_events_certificate_id"), table_name="certificate_status_events")
    op.drop_table("certificate_status_events")
    for name, _columns in reversed(CERTIFICATE_INDEXES):
        op.drop_index(op.f(name), table_name="certificates")
    for name, _type, _options in reversed(NEW_COLUMNS):
        op.execute(f"ALTER TABLE certificates DROP COLUMN {name}")
