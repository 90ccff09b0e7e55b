from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class Notification(SQLModel, table=True):
    """One notice about one case event, and what became of it: sent (WeChat's msgid), refused
    (43101: the user has not subscribed), invalid (47003), no_recipient, skipped (no template
    configured) or failed (another final WeChat error)."""

    __tablename__ = "notifications"
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=160, unique=True)
    case_id: str = Field(foreign_key="cases.id", index=True, max_length=36)
    event: str = Field(max_length=30)
    account_id: int | None = Field(default=None, foreign_key="citizen_accounts.id")
    template_id: str = Field(default="", max_length=64)
    status: str = Field(max_length=12)
    msgid: str | None = Field(default=None, max_length=32)
    errcode: int | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
