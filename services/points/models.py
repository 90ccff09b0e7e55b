from datetime import datetime

from sqlalchemy import JSON, Column, Index, String, text
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow

# The decided states: the standard lifecycle's states whose SLA clock is stopped (办结 or ended).
# A case in any other state — a review step a matter adds included — is open: it counts toward
# its assignee's load. The triggers that keep clerk_loads write these out (migration
# 20261128_0014): a change here needs a migration that redefines them
# (tests/services/points/test_clerk_loads.py fails until then).
CLOSED_STATES = ("approved", "completed", "delivered", "denied", "not_accepted", "withdrawn")

STAFF_ROLES = ("clerk", "reviewer", "supervisor", "helper", "admin")
STAFF_STATUSES = ("on_duty", "on_leave")
POINT_LEVELS = ("county", "town", "village")
ROUTING_MODES = ("assign", "pool")


class ServicePoint(SQLModel, table=True):
    """A county 政务服务中心, town 便民服务中心 or village 便民服务站 serving one region subtree."""

    __tablename__ = "service_points"
    __table_args__ = (
        # one active point per region and level (a deactivated one stays for the cases it handled)
        Index("ux_service_points_region_code_level_active", "region_code", "level", unique=True,
              postgresql_where=text("active"), sqlite_where=text("active")),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    level: str = Field(max_length=10)
    region_code: str = Field(max_length=12, index=True)
    address: str = Field(default="", max_length=200)
    hours: str = Field(default="", max_length=100)
    # assign: least-loaded qualified clerk; pool: the case waits to be claimed
    routing_mode: str = Field(default="assign", max_length=10)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ServiceWindow(SQLModel, table=True):
    """A window (counter) of a point and the matter categories it handles (none listed: all)."""

    __tablename__ = "service_windows"
    __table_args__ = (
        # a name is unique among a point's active windows
        Index("ux_service_windows_service_point_id_name_active", "service_point_id", "name", unique=True,
              postgresql_where=text("active"), sqlite_where=text("active")),
    )
    id: int | None = Field(default=None, primary_key=True)
    service_point_id: int = Field(foreign_key="service_points.id", index=True)
    name: str = Field(max_length=20)  # 窗口3, 综合窗口, 社保窗口
    # matter category slugs (workflows: MatterDefinition.category); [] = every category
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))

    def handles(self, category: str | None) -> bool:
        return self.active and categories_take(self.categories, category)


def categories_take(categories: list[str] | None, category: str | None) -> bool:
    """Whether a window listing these matter categories takes one of `category` ([]: every one)."""
    return not categories or category is None or category in categories


class Staff(SQLModel, table=True):
    """A staff account bound to one service point, and so to its jurisdiction."""

    __tablename__ = "staff"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=50)
    role: str = Field(max_length=20)
    service_point_id: int = Field(foreign_key="service_points.id", index=True)
    window_id: int | None = Field(default=None, foreign_key="service_windows.id", index=True)
    # on_duty | on_leave; `active` false is a deactivated account (it can't sign in)
    status: str = Field(default="on_duty", sa_column=Column(String(10), nullable=False, server_default="on_duty"))
    password_hash: str = Field(max_length=200)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ClerkLoad(SQLModel, table=True):
    """A clerk's open cases at a point: what routing balances. Kept by triggers on `cases`
    (migration 20261128_0013), in the statement that changes a case, so no code path can forget
    it; nothing in the application writes it. A (clerk, point) without a row has none."""

    __tablename__ = "clerk_loads"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    service_point_id: int = Field(foreign_key="service_points.id", primary_key=True)
    open_cases: int
