from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class Consent(SQLModel, table=True):
    """One person's consent that one helper applies for one matter on their behalf, once."""

    __tablename__ = "consents"
    id: str = Field(primary_key=True, max_length=36)
    code: str = Field(max_length=8, unique=True)  # shown at the counter; not a secret
    kind: str = Field(max_length=10)  # online | paper
    subject_id: int = Field(foreign_key="subjects.id", index=True)  # the person to be helped
    citizen_account_id: int | None = Field(default=None, foreign_key="citizen_accounts.id")  # online: who consented
    helper_id: int = Field(foreign_key="staff.id", index=True)
    matter_code: str = Field(max_length=64)
    file_id: str | None = Field(default=None, foreign_key="files.id")  # paper: the signed scan
    created_by: str = Field(max_length=40)  # "citizen:12" | "staff:3"
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    case_id: str | None = Field(default=None, foreign_key="cases.id", unique=True)
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # paper consents: pending until the receiving clerk confirms (or rejects) the signed scan
    confirmation: str | None = Field(default=None, max_length=10)  # pending | confirmed | rejected
    confirmed_by: int | None = Field(default=None, foreign_key="staff.id")
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    confirmation_comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
