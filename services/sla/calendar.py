"""The working-day calendar in force: the statutory calendar (chinesecalendar) with the
administrators' overrides from the `calendar_days` table on top.

The overrides are cached per process for `calendar_cache_seconds` (a write in this process
refreshes it at once), so every process sees an administrator's change within that time.
For a day neither source covers the calendar falls back to Monday–Friday and says so
(`coverage_warning`): a case is never refused because next year's holidays aren't published.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import chinese_calendar
from sqlalchemy import delete, select
from sqlmodel import Session

from services.db import utcnow
from services.errors import InvalidInput
from services.sla.models import CalendarDay
from services.sla.settings import get_sla_settings
from workflows.calendar import WorkingDayCalendar, statutory_years

log = logging.getLogger("onestop.sla")

CHINA = timezone(timedelta(hours=8))  # the statutory calendar's day is the day in Beijing time

_lock = threading.Lock()
_cached: tuple[float, WorkingDayCalendar] | None = None
_warned_years: set[int] = set()


def today_in_china(now: datetime | None = None) -> date:
    return (now or datetime.now(timezone.utc)).astimezone(CHINA).date()


def load_calendar(session: Session) -> WorkingDayCalendar:
    """The calendar with the overrides as stored now (no cache)."""
    rows = session.execute(select(CalendarDay.day, CalendarDay.working)).all()
    return WorkingDayCalendar(overrides={day: bool(working) for day, working in rows})


def get_calendar(session: Session) -> WorkingDayCalendar:
    """The calendar in force, cached for a few seconds (see the module's docstring)."""
    global _cached
    ttl = get_sla_settings().calendar_cache_seconds
    cached = _cached
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]
    with _lock:
        calendar = load_calendar(session)
        _cached = (time.monotonic(), calendar)
    return calendar


def forget_cached_calendar() -> None:
    global _cached
    _cached = None


def shift_working_days(calendar: WorkingDayCalendar, start: date, days: int) -> date:
    """The date `d` with `calendar.working_days_between(start, d) == days`: `days` working days
    after `start`, or before it when negative (then the latest such working day)."""
    if days >= 0:
        return calendar.add_working_days(start, days)
    current, remaining = start, -days
    while remaining > 0:  # working days in (d, start] must number -days
        if calendar.is_working_day(current):
            remaining -= 1
        current -= timedelta(days=1)
    while not calendar.is_working_day(current):
        current -= timedelta(days=1)
    return current


def coverage_warning(calendar: WorkingDayCalendar, day: date | None) -> str | None:
    """A warning in words when `day` is outside every source (the weekday fallback is in use)."""
    if day is None or calendar.is_covered(day):
        return None
    if day.year not in _warned_years:
        _warned_years.add(day.year)
        log.warning("calendar does not cover %s: weekdays used", day.year, extra={"year": day.year})
    return (f"{day.year} 年的法定节假日尚未录入（内置日历覆盖至 {statutory_years()[1]} 年），"
            "期限暂按周一至周五计算；请管理员录入该年节假日安排")


# ---------------------------------------------------------------- administration

def _statutory(day: date) -> tuple[bool | None, str | None]:
    """(working, holiday name) from the statutory calendar, (None, None) where it has no data."""
    try:
        working = chinese_calendar.is_workday(day)
        _, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return None, None
    return working, name


def year_view(session: Session, *, year: int) -> dict[str, Any]:
    """A year as the calendar in force sees it: every day that differs from Monday–Friday, where
    each answer comes from, and whether the year is covered."""
    if not 1900 <= year <= 2200:
        raise InvalidInput("年份无效", detail=[{"field": "year", "reason": "out_of_range"}])
    overrides = {row.day: row for row in session.execute(
        select(CalendarDay).where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
    ).scalars()}
    first, last = statutory_years()
    covered_by_statute = first <= year <= last
    days = []
    current = date(year, 1, 1)
    while current.year == year:
        weekday_rule = current.weekday() < 5
        statutory, holiday = _statutory(current)
        override = overrides.get(current)
        if override is not None:
            days.append({"date": current.isoformat(), "working": override.working, "source": "override",
                         "note": override.note, "statutory_working": statutory, "updated_by": override.updated_by})
        elif statutory is not None and statutory != weekday_rule:
            days.append({"date": current.isoformat(), "working": statutory, "source": "statutory",
                         "note": _HOLIDAY_NAMES.get(holiday, holiday or ("调休上班" if statutory else "")),
                         "statutory_working": statutory, "updated_by": None})
        current += timedelta(days=1)
    warning = None
    if not covered_by_statute and not overrides:
        warning = coverage_warning(WorkingDayCalendar(), date(year, 1, 2)) or None
    return {"year": year, "covered_by_statute": covered_by_statute, "overrides": len(overrides),
            "statutory_years": [first, last], "warning": warning, "days": days}


_HOLIDAY_NAMES = {"New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节",
                  "Labour Day": "劳动节", "Dragon Boat Festival": "端午节", "National Day": "国庆节",
                  "Mid-autumn Festival": "中秋节", "Anti-Fascist 70th Day": "抗战胜利70周年纪念日"}


def set_days(session: Session, *, days: list[dict[str, Any]], actor: str) -> list[CalendarDay]:
    """Add or replace overrides: `[{"date", "working", "note"?}]`. One day may appear once."""
    seen: set[date] = set()
    problems = []
    for index, item in enumerate(days):
        if item["date"] in seen:
            problems.append({"field": f"days[{index}].date", "reason": "duplicate"})
        seen.add(item["date"])
    if problems:
        raise InvalidInput("同一日期只能出现一次", detail=problems)
    existing = {row.day: row for row in session.execute(
        select(CalendarDay).where(CalendarDay.day.in_(seen))).scalars()} if seen else {}
    rows = []
    now = utcnow()
    for item in days:
        row = existing.get(item["date"]) or CalendarDay(day=item["date"], working=item["working"], updated_by=actor)
        row.working, row.note, row.updated_by, row.updated_at = item["working"], item.get("note") or "", actor, now
        session.add(row)
        rows.append(row)
    session.flush()
    forget_cached_calendar()
    return rows


def delete_day(session: Session, *, day: date) -> bool:
    """Remove an override; the statutory calendar (or the weekday rule) applies again."""
    deleted = session.execute(delete(CalendarDay).where(CalendarDay.day == day)).rowcount
    forget_cached_calendar()
    return bool(deleted)
