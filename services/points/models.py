from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class ServicePoint(SQLModel, table=True):
    """A county 政务服务中心, town 便民服务中心 or village 便民服务站 serving one region subtree."""

    __tablename__ = "service_points"
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


class Staff(SQLModel, table=True):
    """A staff account bound to one service point, and so to its jurisdiction."""

    __tablename__ = "staff"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=50)
    role: str = Field(max_length=20)
    service_point_id: int = Field(foreign_key="service_points.id", index=True)
    window: str | None = Field(default=None, max_length=20)
    password_hash: str = Field(max_length=200)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
