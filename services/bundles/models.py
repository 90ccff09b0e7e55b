from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class BundleCase(SQLModel, table=True):
    """一件事一次办: the parent of the cases one bundle submission created (one per matter).
    Completed when every child is completed, failed as soon as one is denied or not accepted."""

    __tablename__ = "bundle_cases"
    id: str = Field(primary_key=True, max_length=36)
    number: str = Field(max_length=32, unique=True)
    bundle_code: str = Field(max_length=64)
    bundle_version: int
    state: str = Field(max_length=20)  # in_progress | completed | failed | withdrawn
    version: int = 1
    subject_id: int = Field(foreign_key="subjects.id", index=True)
    subject_hash: str = Field(max_length=64)
    applicant_name: str = Field(max_length=100)
    region_code: str = Field(max_length=12)
    form: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by_principal: str = Field(max_length=40, index=True)
    outcome_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    submitted_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
