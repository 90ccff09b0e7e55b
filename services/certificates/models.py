from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow

STATUS_LABELS = {
    "valid": "有效",
    "suspended": "暂扣",
    "annulled": "撤销",
    "cancelled": "注销",
    "expired": "失效",
    "revoked": "吊销",
}


class Certificate(SQLModel, table=True):
    """电子证照 registry entry. One per case and certificate type (the unique constraint is what
    makes issuing exactly-once under crashes and racing workers)."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("case_id", "cert_type"),)
    id: str = Field(primary_key=True, max_length=36)
    identifier: str = Field(max_length=120, unique=True)
    cert_type: str = Field(max_length=64)
    type_code: str = Field(max_length=21)
    type_name: str = Field(max_length=100)
    case_id: str = Field(foreign_key="cases.id")
    holder_subject_id: int = Field(foreign_key="subjects.id")
    holder_hash: str = Field(max_length=64, index=True)
    holder_masked: str = Field(max_length=24)
    issuer_name: str = Field(max_length=100)
    issuer_code: str = Field(max_length=18)
    serial: str = Field(max_length=40)
    status: str = Field(default="valid", max_length=12)
    issued_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    valid_from: date
    valid_until: date | None = None
    storage_key: str = Field(max_length=200)
    pdf_sha256: str = Field(max_length=64)
    content_sha256: str = Field(max_length=64)
    fields: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
