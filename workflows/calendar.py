"""Working days on the Chinese statutory calendar (法定节假日 and 调休 make-up days).

chinesecalendar covers the years its release knows (2004 to the current year at release time).
Administrators can override single days (a dict of date → working day or holiday); for a date
nobody covers we fall back to Monday–Friday and say so — `CalendarAnswer.uncovered` lists the
days counted on the fallback and `CalendarAnswer.warning` says it in words — instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

# What an override may say about a day. Booleans are the historical form (True: a working day).
WORKING_VALUES = {True, "working", "workday", "work", "上班", "工作日"}
HOLIDAY_VALUES = {False, "holiday", "rest", "off", "休息", "节假日"}


def _normalise_override(day: object, value: object) -> tuple[date, bool]:
    if not isinstance(day, date):
        try:
            day = date.fromisoformat(str(day))
        except ValueError as error:
            raise ValueError(f"calendar override: {day!r} is not a date (YYYY-MM-DD)") from error
    if isinstance(value, str):
        value = value.strip().lower()
    if value in WORKING_VALUES:
        return day, True
    if value in HOLIDAY_VALUES:
        return day, False
    raise ValueError(f"calendar override for {day.isoformat()}: {value!r} is neither 'working' nor 'holiday'")


@lru_cache(maxsize=4096)
def _statutory(day: date) -> bool | None:
    """Whether the statutory calendar makes `day` a working day; None when it doesn't know the year."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return None


def statutory_years() -> tuple[int, int]:
    """The first and last year the installed statutory calendar knows."""
    years = sorted({day.year for day in chinese_calendar.holidays} | {day.year for day in chinese_calendar.workdays})
    return years[0], years[-1]


@dataclass(frozen=True)
class CalendarAnswer:
    """A date or a count, with the days that were counted on the Monday–Friday fallback."""

    value: date | int
    uncovered: tuple[date, ...] = ()

    @property
    def covered(self) -> bool:
        return not self.uncovered

    @property
    def warning(self) -> str | None:
        if not self.uncovered:
            return None
        first, last = self.uncovered[0], self.uncovered[-1]
        span = first.isoformat() if first == last else f"{first.isoformat()}–{last.isoformat()}"
        return (f"法定节假日安排未收录 {span}（共 {len(self.uncovered)} 天），已按周一至周五计算工作日，"
                f"请管理员补充节假日设置")


@dataclass(frozen=True)
class WorkingDayCalendar:
    """The statutory calendar plus administrator overrides (date → working day or holiday).

    `overrides` accepts `{date: True/False}` or `{date: "working"/"holiday"}` (also ISO date
    strings as keys); it is normalised to `{date: bool}` on construction.
    """

    overrides: Mapping[date, bool] | None = None  # date -> is a working day
    _overrides: dict[date, bool] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        normalised = dict(_normalise_override(day, value) for day, value in (self.overrides or {}).items())
        object.__setattr__(self, "_overrides", normalised)
        object.__setattr__(self, "overrides", normalised or None)

    def is_working_day(self, day: date) -> bool:
        if day in self._overrides:
            return self._overrides[day]
        statutory = _statutory(day)
        if statutory is None:
            return day.weekday() < 5
        return statutory

    def is_covered(self, day: date) -> bool:
        """Whether the statutory calendar (or an override) knows this day for certain."""
        return day in self._overrides or _statutory(day) is not None

    def coverage(self) -> dict[str, object]:
        """What the calendar knows: the statutory years and the overridden days."""
        first, last = statutory_years()
        return {"statutory_from": date(first, 1, 1).isoformat(), "statutory_until": date(last, 12, 31).isoformat(),
                "overrides": len(self._overrides),
                "override_until": max(self._overrides).isoformat() if self._overrides else None}

    def add_working_days(self, start: date, days: int) -> date:
        """The date `days` working days after `start` (start itself not counted)."""
        return self.due_date(start, days).value  # type: ignore[return-value]

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        return self.count_working_days(start, end).value  # type: ignore[return-value]

    def due_date(self, start: date, days: int) -> CalendarAnswer:
        """Like add_working_days, and which of the days passed over the calendar didn't know."""
        current = start
        remaining = days
        uncovered: list[date] = []
        while remaining > 0:
            current += timedelta(days=1)
            if not self.is_covered(current):
                uncovered.append(current)
            if self.is_working_day(current):
                remaining -= 1
        return CalendarAnswer(current, tuple(uncovered))

    def count_working_days(self, start: date, end: date) -> CalendarAnswer:
        """Like working_days_between, and which of the days counted the calendar didn't know."""
        if end < start:
            answer = self.count_working_days(end, start)
            return CalendarAnswer(-answer.value, answer.uncovered)  # type: ignore[operator]
        count = 0
        current = start
        uncovered: list[date] = []
        while current < end:
            current += timedelta(days=1)
            if not self.is_covered(current):
                uncovered.append(current)
            if self.is_working_day(current):
                count += 1
        return CalendarAnswer(count, tuple(uncovered))
