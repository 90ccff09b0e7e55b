from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class Evaluation(SQLModel, table=True):
    """One rating of a case by its applicant: round 1, and round 2 after a rectification."""

    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("case_id", "round"),
        Index("ix_evaluations_service_point_id_created_at", "service_point_id", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", max_length=36)
    round: int = 1
    level: int  # 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    account_id: int = Field(foreign_key="citizen_accounts.id")
    # snapshots at the time of rating, so figures stay right after a transfer
    service_point_id: int = Field(foreign_key="service_points.id")
    clerk_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    region_code: str = Field(max_length=12, index=True)
    matter_code: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class Rectification(SQLModel, table=True):
    """整改: opened by a 不满意 or 非常不满意 rating, for the supervisor of the handling point (or
    of the nearest point above that has one), with a deadline in working days; closed with the
    measures taken and a return visit (回访) to the applicant."""

    __tablename__ = "rectifications"
    __table_args__ = (Index("ix_rectifications_state_due_date", "state", "due_date"),)
    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluations.id", unique=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=36)
    service_point_id: int = Field(foreign_key="service_points.id", index=True)  # the handling point
    supervisor_point_id: int = Field(foreign_key="service_points.id", index=True)
    supervisor_id: int | None = Field(default=None, foreign_key="staff.id")
    state: str = Field(default="open", max_length=10)  # open | done
    due_date: date
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    completed_by: int | None = Field(default=None, foreign_key="staff.id")
    measures: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    return_visit_method: str | None = Field(default=None, max_length=10)  # phone | visit | wechat | sms
    return_visit_summary: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    applicant_satisfied: bool | None = None
