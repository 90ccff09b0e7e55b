from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class Subject(SQLModel, table=True):
    """办事主体: a person or an organisation, keyed by the keyed hash of its number.

    The number itself is only stored encrypted; `number_masked` is what people see.
    """

    __tablename__ = "subjects"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=12)
    number_type: str = Field(max_length=40)
    number_hash: str = Field(max_length=64, unique=True)
    number_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    number_masked: str = Field(max_length=24)
    name: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class SubjectRef(NamedTuple):
    """What a new case needs of a subject known without reading its row (a verified citizen's
    own, which their Principal carries)."""

    id: int
    kind: str
    name: str
    number_hash: str
    number_masked: str
