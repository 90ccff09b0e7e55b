"""Outbox jobs of the notifications domain."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.notifications.service import JOB_KIND, send_case_notice
from services.outbox.service import handler


@handler(JOB_KIND)
def notify_case_event(session: Session, payload: dict[str, Any]) -> None:
    """Send the applicant the WeChat subscribe message for one case event (payload: case_id,
    event, dedupe)."""
    case_id, event = str(payload["case_id"]), str(payload["event"])
    send_case_notice(session, case_id=case_id, event=event, dedupe=str(payload.get("dedupe") or f"notify:{case_id}:{event}"))
