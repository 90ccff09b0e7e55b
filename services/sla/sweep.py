"""The periodic SLA sweep: mark due-soon and overdue cases, restart the clock of suspensions
that ran past their maximum, and escalate overdue cases — to the handling point's supervisor,
then one level up if the case is still open after `escalate_up_after_hours`.

Set-based UPDATEs for the marks; escalations in batches of `sweep_batch_size`, each batch its
own transaction, so memory stays bounded however many cases are open. An escalation is a row
unique per (case, level), inserted with ON CONFLICT DO NOTHING: a sweep run twice, or on two
workers at once, escalates a case once, and only the worker that inserted the row notifies.
The sweep's marks and escalations are bookkeeping of the clock, not actions on the case: they
leave the case's `version` alone, so no clerk gets a stale-version conflict from a sweep.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlmodel import Session

from services.cases.models import Case, CaseEscalation
from services.db import insert_ignoring_conflicts, utcnow
from services.notifications.service import JOB_KIND as NOTICE_JOB
from services.outbox.models import OutboxJob
from services.points.models import ServicePoint, Staff
from services.points.repository import active_points_in
from services.regions.repository import ancestors
from services.sla.calendar import CHINA, get_calendar, shift_working_days
from services.sla.settings import get_sla_settings

log = logging.getLogger("onestop.sla")

LEVEL_RANK = {"village": 0, "town": 1, "county": 2}


@dataclass
class SweepReport:
    today: str
    due_soon_marked: int = 0
    overdue_marked: int = 0
    marks_cleared: int = 0
    suspensions_expired: int = 0
    escalated: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EscalationTargets:
    """Where a handling point's overdue cases go: level 1 the nearest point (itself first) with
    an active supervisor, level 2 the next one above that. Cached for one sweep."""

    def __init__(self, session: Session):
        self.session = session
        self._chains: dict[int, list[tuple[ServicePoint, list[Staff]]]] = {}

    def _chain(self, point_id: int) -> list[tuple[ServicePoint, list[Staff]]]:
        if point_id not in self._chains:
            point = self.session.get(ServicePoint, point_id)
            codes = [region.code for region in ancestors(self.session, code=point.region_code)]
            above = [p for p in active_points_in(self.session, region_codes=codes)
                     if LEVEL_RANK.get(p.level, 9) > LEVEL_RANK.get(point.level, 9)]
            chain = [point, *sorted(above, key=lambda p: (LEVEL_RANK.get(p.level, 9), p.id))]
            supervisors = defaultdict(list)
            for staff in self.session.execute(select(Staff).where(
                    Staff.service_point_id.in_([p.id for p in chain]), Staff.role == "supervisor",
                    Staff.active.is_(True)).order_by(Staff.id)).scalars():
                supervisors[staff.service_point_id].append(staff)
            self._chains[point_id] = [(p, supervisors[p.id]) for p in chain]
        return self._chains[point_id]

    def target(self, point_id: int, level: int) -> tuple[ServicePoint | None, list[Staff]]:
        staffed = [(point, staff) for point, staff in self._chain(point_id) if staff]
        if level == 1:
            return staffed[0] if staffed else (self._chain(point_id)[0][0], [])
        return staffed[1] if len(staffed) > 1 else (None, [])


def run_sweep(session: Session, *, now: datetime | None = None) -> SweepReport:
    """One sweep; it commits after each step and each batch (it is a job of its own)."""
    settings = get_sla_settings()
    started = time.perf_counter()
    now = now or utcnow()
    today = now.astimezone(CHINA).date()
    calendar = get_calendar(session)
    soon = calendar.add_working_days(today, settings.due_soon_days)
    report = SweepReport(today=today.isoformat())

    report.suspensions_expired = _restart_expired_suspensions(session, today=today, calendar=calendar)
    running = Case.sla_state == "running"
    report.overdue_marked = session.execute(
        update(Case).where(running, Case.due_date < today, Case.sla_flag != "overdue")
        .values(sla_flag="overdue").execution_options(synchronize_session=False)).rowcount
    report.due_soon_marked = session.execute(
        update(Case).where(running, Case.due_date >= today, Case.due_date <= soon, Case.sla_flag != "due_soon")
        .values(sla_flag="due_soon").execution_options(synchronize_session=False)).rowcount
    report.marks_cleared = session.execute(
        update(Case).where(Case.sla_flag.in_(("due_soon", "overdue")),
                           or_(Case.sla_state != "running", Case.due_date > soon, Case.due_date.is_(None)))
        .values(sla_flag="ok").execution_options(synchronize_session=False)).rowcount
    session.commit()

    targets = EscalationTargets(session)
    report.escalated[1] = _escalate(
        session, level=1, now=now, targets=targets, batch=settings.sweep_batch_size,
        where=and_(running, Case.due_date < today, Case.escalation_level == 0))
    cutoff = now - timedelta(hours=settings.escalate_up_after_hours)
    report.escalated[2] = _escalate(
        session, level=2, now=now, targets=targets, batch=settings.sweep_batch_size,
        where=and_(Case.escalation_level == 1, Case.escalated_at <= cutoff, Case.closed_at.is_(None)))
    report.seconds = round(time.perf_counter() - started, 3)
    log.info("sla sweep", extra={"report": report.as_dict()})
    return report


def _restart_expired_suspensions(session: Session, *, today: date, calendar) -> int:
    """A suspension may last `max_days`; after that the clock runs again (the case stays
    suspended until a clerk resumes it), with the days that were left counted from then. One
    UPDATE per (end of suspension, days left) pair: few, however many cases."""
    expired = (Case.sla_state == "paused") & (Case.state == "suspended") & (Case.suspend_until < today)
    pairs = session.execute(select(Case.suspend_until, Case.sla_days_left, Case.sla_legal_days_left)
                            .where(expired).distinct()).all()
    count = 0
    for until, left, legal_left in pairs:
        count += session.execute(
            update(Case).where(expired, Case.suspend_until == until, _same(Case.sla_days_left, left),
                               _same(Case.sla_legal_days_left, legal_left))
            .values(sla_state="running", sla_paused_at=None, sla_days_left=None, sla_legal_days_left=None,
                    updated_at=utcnow(),  # the figures' refresh folds in what changed since its watermark
                    due_date=shift_working_days(calendar, until, left or 0),
                    legal_due_date=(shift_working_days(calendar, until, legal_left)
                                    if legal_left is not None else Case.legal_due_date))
            .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return count


def _same(column, value):
    return column.is_(None) if value is None else column == value


def _escalate(session: Session, *, level: int, now: datetime, targets: EscalationTargets, batch: int,
              where) -> int:
    escalated = 0
    table = CaseEscalation.__table__
    while True:
        rows = session.execute(select(Case.id, Case.handling_point_id, Case.number).where(where).limit(batch)).all()
        if not rows:
            return escalated
        values, numbers = [], {}
        for case_id, point_id, number in rows:
            point, supervisors = targets.target(point_id, level)
            numbers[case_id] = number
            if point is None:
                reason = "已超期且仍未办结，但上级已无可升级的服务点"
            elif level == 1:
                reason = f"已超过承诺办结期限，升级至 {point.name} 负责人"
            else:
                reason = f"超期升级后仍未办结，再升级至上一级 {point.name} 负责人"
            values.append({"case_id": case_id, "level": level, "service_point_id": point.id if point else None,
                           "supervisor_id": supervisors[0].id if supervisors else None, "reason": reason,
                           "created_at": now})
        inserted = session.execute(
            insert_ignoring_conflicts(session, table, index_elements=["case_id", "level"])
            .returning(table.c.case_id, table.c.service_point_id, table.c.supervisor_id), values).all()
        session.execute(update(Case).where(Case.id.in_([row[0] for row in rows]), Case.escalation_level < level)
                        .values(escalation_level=level, escalated_at=now)
                        .execution_options(synchronize_session=False))
        _notify(session, level=level, inserted=inserted, numbers=numbers)
        if level == 1:
            _apologise(session, case_ids=[row[0] for row in inserted])
        escalated += len(inserted)
        session.commit()


def _notify(session: Session, *, level: int, inserted, numbers: dict[str, str]) -> None:
    """One notification job per supervisor's point and batch (not one message per case)."""
    by_point: dict[tuple[int, int | None], list[str]] = defaultdict(list)
    for case_id, point_id, supervisor_id in inserted:
        if point_id is not None:
            by_point[(point_id, supervisor_id)].append(case_id)
    if not by_point:
        return
    jobs = [{"kind": "notify_escalation", "state": "pending", "attempts": 0, "run_after": utcnow(),
             "created_at": utcnow(),
             "dedupe_key": f"escalation:{level}:{point_id}:{min(case_ids)}",
             "payload": {"level": level, "service_point_id": point_id, "supervisor_id": supervisor_id,
                         "case_ids": sorted(case_ids), "case_numbers": sorted(numbers[c] for c in case_ids)}}
            for (point_id, supervisor_id), case_ids in by_point.items()]
    session.execute(insert_ignoring_conflicts(session, OutboxJob.__table__, index_elements=["dedupe_key"]), jobs)


def _apologise(session: Session, *, case_ids: list[str]) -> None:
    """The applicant's notice that their case is overdue (services/notifications), once per case."""
    if not case_ids:
        return
    now = utcnow()
    jobs = [{"kind": NOTICE_JOB, "state": "pending", "attempts": 0, "run_after": now, "created_at": now,
             "dedupe_key": f"notify:{case_id}:overdue_apology",
             "payload": {"case_id": case_id, "event": "overdue_apology", "dedupe": f"notify:{case_id}:overdue_apology"}}
            for case_id in case_ids]
    session.execute(insert_ignoring_conflicts(session, OutboxJob.__table__, index_elements=["dedupe_key"]), jobs)


def open_escalations(session: Session, *, service_point_ids: list[int], limit: int = 100) -> list[dict[str, Any]]:
    """Escalations of still-open cases addressed to these points, newest first."""
    rows = session.execute(
        select(CaseEscalation.case_id, CaseEscalation.level, CaseEscalation.reason, CaseEscalation.created_at,
               CaseEscalation.service_point_id, Case.number, Case.state, Case.due_date, Case.handling_point_id)
        .join(Case, Case.id == CaseEscalation.case_id)
        .where(CaseEscalation.service_point_id.in_(service_point_ids), Case.closed_at.is_(None))
        .order_by(CaseEscalation.created_at.desc(), CaseEscalation.id.desc()).limit(limit)).all()
    return [{"case_id": r.case_id, "case_number": r.number, "level": r.level, "reason": r.reason,
             "escalated_at": r.created_at.isoformat(), "to_service_point_id": r.service_point_id,
             "state": r.state, "due_date": r.due_date.isoformat() if r.due_date else None,
             "handling_point_id": r.handling_point_id} for r in rows]
