"""Counts of cases for a service point or a region: by state, due soon, overdue, paused, escalated.

Computed from the deadlines themselves (not from the sweep's marks), so they are right even
between two sweeps.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import case as when, func, select
from sqlmodel import Session

from services.cases.models import Case
from services.points.repository import CLOSED_STATES
from services.regions.repository import subtree_prefix
from services.sla.calendar import get_calendar, today_in_china
from services.sla.settings import get_sla_settings


def case_counts(session: Session, *, service_point_id: int | None = None, region_code: str | None = None,
                today: date | None = None) -> dict[str, Any]:
    """Cases handled by a point, or of applicants in a region subtree (one of the two)."""
    today = today or today_in_china()
    soon = get_calendar(session).add_working_days(today, get_sla_settings().due_soon_days)
    running = Case.sla_state == "running"
    query = select(
        Case.state, func.count(),
        func.sum(when((running & (Case.due_date < today), 1), else_=0)),
        func.sum(when((running & (Case.due_date >= today) & (Case.due_date <= soon), 1), else_=0)),
        func.sum(when((Case.sla_state == "paused", 1), else_=0)),
        func.sum(when(((Case.escalation_level > 0) & Case.closed_at.is_(None), 1), else_=0)),
    ).group_by(Case.state)
    if service_point_id is not None:
        query = query.where(Case.handling_point_id == service_point_id)
    if region_code is not None:
        query = query.where(Case.region_code.startswith(subtree_prefix(region_code)))
    by_state: dict[str, int] = {}
    overdue = due_soon = paused = escalated = 0
    for state, count, state_overdue, state_soon, state_paused, state_escalated in session.execute(query):
        by_state[state] = int(count)
        overdue += int(state_overdue or 0)
        due_soon += int(state_soon or 0)
        paused += int(state_paused or 0)
        escalated += int(state_escalated or 0)
    return {"by_state": dict(sorted(by_state.items())), "total": sum(by_state.values()),
            "open": sum(n for state, n in by_state.items() if state not in CLOSED_STATES),
            "due_soon": due_soon, "overdue": overdue, "paused": paused, "escalated_open": escalated,
            "as_of": today.isoformat(), "due_soon_days": get_sla_settings().due_soon_days}
