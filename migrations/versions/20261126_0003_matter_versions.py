"""Matter versions: every shipped or edited matter definition, immutable, with its date of effect.

Revision ID: 20261126_0003
Revises: 20261126_0002
Create Date: 2026-11-26 20:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = "20261126_0003"
down_revision = "20261126_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "matter_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("lifecycle", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_matter_versions"),
        sa.UniqueConstraint("code", "version", name="uq_matter_versions_code_version"),
    )


def downgrade() -> None:
    op.drop_table("matter_versions")
