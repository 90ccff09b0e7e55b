from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class MatterVersion(SQLModel, table=True):
    """One immutable version of a matter: its definition and the lifecycle it resolved to.

    The shipped YAML files become versions when they change (`created_by` empty); an
    administrator's edit is a version too. A case records the version it started with and keeps it.
    """

    __tablename__ = "matter_versions"
    __table_args__ = (UniqueConstraint("code", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64)
    version: int
    effective_from: date
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    lifecycle: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str | None = Field(default=None, max_length=40)  # a staff principal; empty: the shipped file
