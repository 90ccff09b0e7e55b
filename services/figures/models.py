"""Rollup tables of the regional figures.

Each case is folded in once as a *fact* (`figures_case_facts`: the few columns the figures read,
as they were when last folded). A fact contributes to:

* `figures_regions` — one row per (region, submission day, matter) for the case's region and
  every region above it (village, town, county, city, province: the digits of the code say which,
  as `subtree_prefix` does), with counters: received, accepted, outcomes, open, working days to
  completion, ratings by level;
* `figures_points` — one row per (handling point, day, matter, assignee) with the same counters;
* `figures_regions_open` / `figures_points_open` — the open cases now, by state, clock and due
  date (due soon and overdue depend on the day they are asked, so the due date is kept, not a flag).

A refresh folds in the cases changed since a watermark: the difference between a case's new fact
and its stored one is added to the rows it touches, so the rollups always equal the sum of the
stored facts. `figures_working_days` numbers the working days so that working days between two
dates is a subtraction inside SQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, SmallInteger
from sqlmodel import Field

from services.cases.models import Case
from services.db import SQLModel, UTCDateTime
from services.evaluations.models import Evaluation

# The due date of an open case whose clock is not running (nothing can be due or overdue).
NO_DUE_DATE = date(9999, 12, 31)
# `staff_id` of a case nobody is assigned to (waiting in the point's pool).
UNASSIGNED = 0

# The refresh finds what changed since its watermark with these (they belong to the cases and
# evaluations tables; declared here because only the figures read them).
Index("ix_cases_updated_at", Case.__table__.c.updated_at)
Index("ix_evaluations_created_at", Evaluation.__table__.c.created_at)


def _count() -> Any:
    return Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})


class Counters(SQLModel):
    """What one case adds to a row of figures_regions or figures_points."""

    received: int = _count()
    accepted: int = _count()  # ever accepted (受理), whatever happened next
    completed: int = _count()  # approved, completed or delivered (准予 / 办结)
    denied: int = _count()  # 不予许可
    not_accepted: int = _count()  # 不予受理
    withdrawn: int = _count()  # 撤回
    open: int = _count()  # anything else: still being worked on
    completion_cases: int = _count()  # completed cases with both an acceptance and a closing time
    completion_working_days: int = _count()  # their working days from acceptance to the decision, summed
    rated_1: int = _count()  # the case's latest rating, by level (1 非常不满意 … 5 非常满意)
    rated_2: int = _count()
    rated_3: int = _count()
    rated_4: int = _count()
    rated_5: int = _count()


COUNTER_NAMES: tuple[str, ...] = tuple(Counters.model_fields)


class RegionFigures(Counters, table=True):
    """Cases of applicants in a region's subtree submitted on one day (Asia/Shanghai), one matter."""

    __tablename__ = "figures_regions"
    __table_args__ = (Index("ix_figures_regions_parent_code_day", "parent_code", "day"),)
    region_code: str = Field(primary_key=True, max_length=12)
    day: date = Field(primary_key=True)
    matter_code: str = Field(primary_key=True, max_length=64)
    level: str = Field(max_length=10)
    parent_code: str | None = Field(default=None, max_length=12)


class PointFigures(Counters, table=True):
    """Cases a service point handles, submitted on one day, one matter, by assignee (0: the pool)."""

    __tablename__ = "figures_points"
    service_point_id: int = Field(primary_key=True)
    day: date = Field(primary_key=True)
    matter_code: str = Field(primary_key=True, max_length=64)
    staff_id: int = Field(primary_key=True)


class RegionOpenFigures(SQLModel, table=True):
    """Open cases now, of a region's subtree, by submission day, matter, state, clock and due date
    (NO_DUE_DATE unless the clock runs)."""

    __tablename__ = "figures_regions_open"
    __table_args__ = (Index("ix_figures_regions_open_parent_code_day", "parent_code", "day"),)
    region_code: str = Field(primary_key=True, max_length=12)
    day: date = Field(primary_key=True)
    matter_code: str = Field(primary_key=True, max_length=64)
    state: str = Field(primary_key=True, max_length=20)
    sla_state: str = Field(primary_key=True, max_length=12)
    due_date: date = Field(primary_key=True)
    level: str = Field(max_length=10)
    parent_code: str | None = Field(default=None, max_length=12)
    cases: int = _count()


class PointOpenFigures(SQLModel, table=True):
    """Open cases now of a service point, by day, matter, assignee, state, clock and due date."""

    __tablename__ = "figures_points_open"
    service_point_id: int = Field(primary_key=True)
    day: date = Field(primary_key=True)
    matter_code: str = Field(primary_key=True, max_length=64)
    staff_id: int = Field(primary_key=True)
    state: str = Field(primary_key=True, max_length=20)
    sla_state: str = Field(primary_key=True, max_length=12)
    due_date: date = Field(primary_key=True)
    cases: int = _count()


class CaseFact(SQLModel, table=True):
    """A case as it was when last folded into the rollups."""

    __tablename__ = "figures_case_facts"
    case_id: str = Field(primary_key=True, max_length=36)
    region_code: str = Field(max_length=12)
    day: date  # submission day, Asia/Shanghai
    matter_code: str = Field(max_length=64)
    service_point_id: int
    staff_id: int  # UNASSIGNED when nobody is
    state: str = Field(max_length=20)
    sla_state: str = Field(max_length=12)
    due_date: date | None = None
    accepted: bool
    working_days: int | None = None  # acceptance → decision, for cases with both times
    rating: int | None = Field(default=None, sa_type=SmallInteger)  # the latest round's level


class WorkingDayNumber(SQLModel, table=True):
    """Working days numbered in order: working days in (a, b] = ordinal(b) - ordinal(a)."""

    __tablename__ = "figures_working_days"
    day: date = Field(primary_key=True)
    ordinal: int


class RefreshState(SQLModel, table=True):
    """The one row (id 1) saying how fresh the rollups are; its row lock serialises refreshes."""

    __tablename__ = "figures_refresh_state"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    # Every change committed before this moment is in the rollups (None: never built).
    watermark: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    refreshed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    rebuilt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    reconciled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    calendar_fingerprint: str | None = Field(default=None, max_length=64)
    working_days_from: date | None = None
    working_days_to: date | None = None
    last_run: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
