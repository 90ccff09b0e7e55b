"""Outbox jobs of the regional figures: the refresh every ONESTOP_FIGURES_REFRESH_SECONDS and the
daily reconciliation at ONESTOP_FIGURES_RECONCILE_HOUR (Asia/Shanghai). Each run schedules the
next; the slot is the job's dedupe key, so any number of workers add one job per slot."""

from __future__ import annotations

import logging
import math
from datetime import datetime, time, timedelta, timezone
from typing import Any

from sqlmodel import Session

from services.db import utcnow
from services.figures.service import reconcile, refresh
from services.figures.settings import get_figures_settings
from services.outbox.models import OutboxJob
from services.outbox.service import handler
from services.db import insert_ignoring_conflicts
from services.sla.calendar import CHINA

log = logging.getLogger("onestop.figures")
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _add_job(session: Session, *, kind: str, at: datetime, now: datetime) -> None:
    session.execute(insert_ignoring_conflicts(session, OutboxJob.__table__, index_elements=["dedupe_key"]),
                    [{"kind": kind, "payload": {"slot": at.isoformat()}, "dedupe_key": f"{kind}:{at.isoformat()}",
                      "state": "pending", "attempts": 0, "run_after": at, "created_at": now}])


def schedule_refresh(session: Session, *, now: datetime | None = None, next_slot: bool = False) -> datetime:
    """Make sure a refresh job exists for the current interval slot (or the next). Returns its time."""
    now = now or utcnow()
    interval = timedelta(seconds=get_figures_settings().refresh_seconds)
    slot = math.floor((now - EPOCH) / interval) + (1 if next_slot else 0)
    at = EPOCH + slot * interval
    _add_job(session, kind="figures_refresh", at=at, now=now)
    return at


def schedule_reconcile(session: Session, *, now: datetime | None = None) -> datetime:
    """Make sure a reconciliation job exists for the next reconcile hour (China time)."""
    now = now or utcnow()
    local = now.astimezone(CHINA)
    at = datetime.combine(local.date(), time(get_figures_settings().reconcile_hour), tzinfo=CHINA)
    if at <= local:
        at += timedelta(days=1)
    at = at.astimezone(timezone.utc)
    _add_job(session, kind="figures_reconcile", at=at, now=now)
    return at


def schedule_periodic(session: Session) -> None:
    """Called when a worker starts (services.outbox.registry)."""
    schedule_refresh(session)
    schedule_reconcile(session)


@handler("figures_refresh")
def figures_refresh_job(session: Session, payload: dict[str, Any]) -> None:
    report = refresh(session, wait=False)
    schedule_refresh(session, next_slot=True)
    if report.get("mode") == "rebuild":
        log.warning("figures built from scratch", extra={"report": report})


@handler("figures_reconcile")
def figures_reconcile_job(session: Session, payload: dict[str, Any]) -> None:
    report = reconcile(session)
    schedule_reconcile(session, now=utcnow() + timedelta(minutes=1))
    if report.get("changed"):
        log.warning("figures reconciled: cases had drifted", extra={"report": report})
