"""Outbox jobs of the SLA clock: the periodic sweep (it schedules its own next run) and the
escalation notice to a supervisor."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlmodel import Session

from services.db import utcnow
from services.outbox.models import OutboxJob
from services.outbox.service import handler
from services.sla.settings import get_sla_settings
from services.db import insert_ignoring_conflicts
from services.sla.sweep import run_sweep

log = logging.getLogger("onestop.sla")
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def schedule_sweep(session: Session, *, now: datetime | None = None, next_slot: bool = False) -> datetime:
    """Make sure a sweep job exists for the current interval slot (or the next one). The slot
    is the job's dedupe key, so any number of workers or processes calling this add one job.
    Call it when a worker starts; each sweep then schedules the next. Returns the slot's time."""
    now = now or utcnow()
    interval = timedelta(minutes=get_sla_settings().sweep_interval_minutes)
    slot = math.floor((now - EPOCH) / interval) + (1 if next_slot else 0)
    at = EPOCH + slot * interval
    session.execute(insert_ignoring_conflicts(session, OutboxJob.__table__, index_elements=["dedupe_key"]),
                    [{"kind": "sla_sweep", "payload": {"slot": at.isoformat()}, "dedupe_key": f"sla_sweep:{at.isoformat()}",
                      "state": "pending", "attempts": 0, "run_after": at, "created_at": now}])
    return at


def schedule_periodic(session: Session) -> None:
    """Called when a worker starts (services.outbox.registry): the sweep then reschedules itself."""
    schedule_sweep(session)


@handler("sla_sweep")
def sla_sweep_job(session: Session, payload: dict[str, Any]) -> None:
    report = run_sweep(session)
    schedule_sweep(session, next_slot=True)
    if report.escalated[1] or report.escalated[2]:
        log.warning("cases escalated", extra={"report": report.as_dict()})


@handler("notify_escalation")
def notify_escalation_job(session: Session, payload: dict[str, Any]) -> None:
    """The supervisor's notice. Staff have no WeChat channel yet: the notice is the log line
    and the escalation itself, which the supervisor sees in GET /figures/escalations."""
    log.warning("escalation notice", extra={"level": payload.get("level"),
                                            "service_point_id": payload.get("service_point_id"),
                                            "supervisor_id": payload.get("supervisor_id"),
                                            "cases": len(payload.get("case_ids") or [])})
