"""Administrative regions: the statistical division code tree (province → village)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow
from services.regions.codes import LEVELS

_LEVEL_CHECK = "level IN (" + ", ".join(f"'{level}'" for level in LEVELS) + ")"


class Region(SQLModel, table=True):
    """One division code. `parent_code` has no foreign key on purpose: a file's rows come in any
    order, and retired codes stay (active=false) because old cases still point at them."""

    __tablename__ = "regions"
    __table_args__ = (sa.CheckConstraint(_LEVEL_CHECK, name="level"),)  # -> ck_regions_level

    code: str = Field(primary_key=True, max_length=12)
    name: str = Field(max_length=100)
    level: str = Field(max_length=10)  # province | city | county | town | village
    parent_code: str | None = Field(default=None, max_length=12, index=True)
    active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
