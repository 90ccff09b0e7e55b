from datetime import date, datetime

from sqlalchemy import Column, String
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class CalendarDay(SQLModel, table=True):
    """An administrator's word on one day: a working day or not. Overrides the statutory
    calendar (chinesecalendar), e.g. next year's holidays published each November."""

    __tablename__ = "calendar_days"
    day: date = Field(primary_key=True)
    working: bool
    note: str = Field(default="", sa_column=Column(String(100), nullable=False, server_default=""))
    updated_by: str = Field(max_length=40)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
