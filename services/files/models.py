from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class StoredFile(SQLModel, table=True):
    """An uploaded material. The bytes live in storage under `storage_key`.

    A file is attached to a case (`case_id`) or kept by something else that refers to it
    (`kept_by`, e.g. "consent:<id>" for the scan of a signed paper consent); a file that is
    neither a day after its upload is deleted."""

    __tablename__ = "files"
    id: str = Field(primary_key=True, max_length=36)
    sha256: str = Field(max_length=64)
    size: int
    content_type: str = Field(max_length=50)
    storage_key: str = Field(max_length=200)
    uploader: str = Field(max_length=40, index=True)  # "citizen:12" or "staff:3"
    case_id: str | None = Field(default=None, foreign_key="cases.id", index=True)
    kept_by: str | None = Field(default=None, max_length=60)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
