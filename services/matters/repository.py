"""Queries on stored matter versions."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, text
from sqlmodel import Session, select

from services.matters.models import MatterVersion


def current_version(session: Session, *, code: str, today: date) -> MatterVersion | None:
    """The version in force: the highest version number whose effective_from has come."""
    return session.exec(select(MatterVersion).where(MatterVersion.code == code, MatterVersion.effective_from <= today)
                        .order_by(MatterVersion.version.desc()).limit(1)).first()


def exact_version(session: Session, *, code: str, version: int) -> MatterVersion | None:
    return session.exec(select(MatterVersion).where(MatterVersion.code == code,
                                                    MatterVersion.version == version)).first()


def latest_version(session: Session, *, code: str) -> MatterVersion | None:
    """The highest version, in force or not."""
    return session.exec(select(MatterVersion).where(MatterVersion.code == code)
                        .order_by(MatterVersion.version.desc()).limit(1)).first()


def latest_shipped_version(session: Session, *, code: str) -> MatterVersion | None:
    """The highest version that came from the shipped file (not an administrator's edit)."""
    return session.exec(select(MatterVersion).where(MatterVersion.code == code, MatterVersion.created_by.is_(None))
                        .order_by(MatterVersion.version.desc()).limit(1)).first()


def versions(session: Session, *, code: str) -> list[MatterVersion]:
    return list(session.exec(select(MatterVersion).where(MatterVersion.code == code)
                             .order_by(MatterVersion.version)))


def current_versions(session: Session, *, today: date) -> list[MatterVersion]:
    """The version in force of every matter that has one, in code order."""
    newest = (select(MatterVersion.code, func.max(MatterVersion.version).label("version"))
              .where(MatterVersion.effective_from <= today).group_by(MatterVersion.code).subquery())
    return list(session.exec(select(MatterVersion).join(
        newest, (MatterVersion.code == newest.c.code) & (MatterVersion.version == newest.c.version))
        .order_by(MatterVersion.code)))


def stored_codes(session: Session) -> set[str]:
    return set(session.exec(select(MatterVersion.code).distinct()))


def lock_catalogue(session: Session) -> None:
    """Serialise catalogue writers (start-up syncs of several processes, concurrent edits) for
    the rest of the transaction. SQLite already holds the write lock from BEGIN IMMEDIATE."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('onestop:matter_versions'))"))
