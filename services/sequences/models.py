from sqlmodel import Field

from services.db import SQLModel


class Counter(SQLModel, table=True):
    """Named counters for human-facing numbers (办件编号, certificate serials)."""

    __tablename__ = "counters"
    name: str = Field(primary_key=True, max_length=100)
    value: int = 0
