"""Merge the four domain branches (matter versions, case lifecycle, certificate registry,
accounts and engagement) that were written in parallel on top of the core tables.

Revision ID: 20261126_0007
Revises: 20261126_0003, 20261126_0004, 20261126_0005, 20261126_0006
"""

revision = "20261126_0007"
down_revision = ("20261126_0003", "20261126_0004", "20261126_0005", "20261126_0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
