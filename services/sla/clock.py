"""The SLA clock of a case, in working days (DESIGN.md §4).

It starts at acceptance (受理) with a promised and a legal deadline, pauses in correcting and
suspended states keeping the working days that were left, resumes with those days, may be
extended once within the legal limit, and stops at the decision. Each function returns the
column changes for the case; the caller writes them under the case's optimistic lock.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from services.errors import InvalidInput
from services.sla.calendar import CHINA, coverage_warning, shift_working_days
from services.sla.settings import get_sla_settings
from workflows.calendar import WorkingDayCalendar


class ClockedCase(Protocol):
    sla_state: str
    due_date: date | None
    legal_due_date: date | None
    sla_days_left: int | None
    sla_legal_days_left: int | None
    sla_paused_at: datetime | None
    extension_days: int
    accepted_at: datetime | None
    closed_at: datetime | None


class ExtensionNotAllowed(InvalidInput):
    code = "extension_not_allowed"
    message = "不能延长办理期限"


def start(*, calendar: WorkingDayCalendar, today: date, now: datetime, promised_days: int,
          legal_days: int | None) -> dict[str, Any]:
    return {"sla_state": "running", "accepted_at": now, "sla_flag": "ok",
            "due_date": calendar.add_working_days(today, promised_days),
            "legal_due_date": calendar.add_working_days(today, legal_days) if legal_days is not None else None,
            "sla_days_left": None, "sla_legal_days_left": None, "sla_paused_at": None}


def pause(case: ClockedCase, *, calendar: WorkingDayCalendar, today: date, now: datetime) -> dict[str, Any]:
    """Keep the working days left; a clock that isn't running has nothing to pause."""
    if case.sla_state != "running" or case.due_date is None:
        return {}
    return {"sla_state": "paused", "sla_paused_at": now, "sla_flag": "ok",
            "sla_days_left": calendar.working_days_between(today, case.due_date),
            "sla_legal_days_left": (calendar.working_days_between(today, case.legal_due_date)
                                    if case.legal_due_date else None)}


def resume(case: ClockedCase, *, calendar: WorkingDayCalendar, today: date) -> dict[str, Any]:
    """Move the deadlines by the paused time: the days that were left count from today."""
    if case.sla_state != "paused" or case.sla_days_left is None:
        return {}
    return {"sla_state": "running", "sla_paused_at": None, "sla_flag": "ok",
            "due_date": shift_working_days(calendar, today, case.sla_days_left),
            "legal_due_date": (shift_working_days(calendar, today, case.sla_legal_days_left)
                               if case.sla_legal_days_left is not None else case.legal_due_date),
            "sla_days_left": None, "sla_legal_days_left": None}


def stop(case: ClockedCase, *, calendar: WorkingDayCalendar, today: date, now: datetime) -> dict[str, Any]:
    """Stop the clock. A paused clock first gets its deadline back, so that `breached` is judged
    against the deadline the case really had."""
    changes: dict[str, Any] = {}
    if case.sla_state == "paused":
        changes.update(resume(case, calendar=calendar, today=today))
    changes.update({"sla_state": "stopped", "closed_at": now, "sla_flag": "ok", "sla_paused_at": None})
    return changes


def extend(case: ClockedCase, *, calendar: WorkingDayCalendar, today: date, days: Any) -> dict[str, Any]:
    """Once per case, by `days` working days, never past the legal deadline."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInput("延长天数必须是正整数（工作日）", detail=[{"field": "payload.days", "reason": "positive_integer"}])
    if case.extension_days:
        raise ExtensionNotAllowed("办理期限只能延长一次", detail={"reason": "already_extended",
                                                           "extension_days": case.extension_days})
    if case.sla_state not in ("running", "paused") or case.due_date is None:
        raise ExtensionNotAllowed("办理期限尚未开始计算或已停止", detail={"reason": "clock_not_running",
                                                               "sla_state": case.sla_state})
    if case.legal_due_date is None:
        raise ExtensionNotAllowed("该事项没有法定办结时限，无从延长", detail={"reason": "no_legal_limit"})
    if case.sla_state == "paused":
        left, legal_left = case.sla_days_left or 0, case.sla_legal_days_left or 0
        room = legal_left - left
        if days > room:
            raise ExtensionNotAllowed(f"延长后超出法定时限，最多可延长 {max(room, 0)} 个工作日",
                                      detail={"reason": "beyond_legal_limit", "max_days": max(room, 0)})
        return {"sla_days_left": left + days, "extension_days": days}
    new_due = shift_working_days(calendar, case.due_date, days)
    if new_due > case.legal_due_date:
        room = calendar.working_days_between(case.due_date, case.legal_due_date)
        raise ExtensionNotAllowed(f"延长后超出法定时限，最多可延长 {max(room, 0)} 个工作日",
                                  detail={"reason": "beyond_legal_limit", "max_days": max(room, 0),
                                          "legal_due_date": case.legal_due_date.isoformat()})
    return {"due_date": new_due, "extension_days": days, "sla_flag": "ok"}


def view(case: ClockedCase, *, calendar: WorkingDayCalendar, today: date) -> dict[str, Any]:
    """The case's `sla` block: state, working days left, breached, deadlines, warnings."""
    if case.due_date is None:
        return {"state": case.sla_state, "working_days_left": None, "breached": False, "due_soon": False,
                "due_date": None, "legal_due_date": None, "extension_days": case.extension_days,
                "calendar_warning": None}
    left: int | None
    if case.sla_state == "running":
        left = calendar.working_days_between(today, case.due_date)
        breached = today > case.due_date
    elif case.sla_state == "paused":
        left = case.sla_days_left
        breached = (left or 0) < 0
    else:
        left = None
        end = case.closed_at.astimezone(CHINA).date() if case.closed_at else today
        breached = end > case.due_date
    due_soon = case.sla_state == "running" and not breached and left is not None \
        and left <= get_sla_settings().due_soon_days
    return {"state": case.sla_state, "working_days_left": left, "breached": breached, "due_soon": due_soon,
            "due_date": case.due_date.isoformat(),
            "legal_due_date": case.legal_due_date.isoformat() if case.legal_due_date else None,
            "legal_working_days_left": (case.sla_legal_days_left if case.sla_state == "paused"
                                        else calendar.working_days_between(today, case.legal_due_date)
                                        if case.sla_state == "running" and case.legal_due_date else None),
            "extension_days": case.extension_days,
            "paused_since": case.sla_paused_at.astimezone(CHINA).isoformat() if case.sla_paused_at else None,
            "calendar_warning": coverage_warning(calendar, case.due_date)}
