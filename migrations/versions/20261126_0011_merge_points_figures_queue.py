"""Merge the three branches written in parallel on top of 0007: service windows (0008), region
figures (0009) and the work-queue index (0010).

Revision ID: 20261126_0011
Revises: 20261126_0008, 20261126_0009, 20261126_0010
"""

revision = "20261126_0011"
down_revision = ("20261126_0008", "20261126_0009", "20261126_0010")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
