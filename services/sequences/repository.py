"""Gap-tolerant counters that are safe under concurrent transactions on both databases."""

from sqlalchemy import text
from sqlmodel import Session


def next_value(session: Session, *, name: str) -> int:
    """Increment and return the counter `name` (created at 1). The row lock taken by the
    upsert serialises concurrent callers until their transactions end."""
    row = session.execute(
        text(
            "INSERT INTO counters (name, value) VALUES (:name, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value"
        ),
        {"name": name},
    ).one()
    return int(row[0])
