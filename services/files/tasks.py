"""Outbox jobs of the files domain."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.files.service import expire_if_unattached
from services.outbox.service import handler


@handler("files_expire")
def files_expire(session: Session, payload: dict[str, Any]) -> None:
    """A day after an upload: delete it if no case and no consent uses it."""
    expire_if_unattached(session, file_id=str(payload["file_id"]))
