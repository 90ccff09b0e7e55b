"""Working days on the Chinese statutory calendar (法定节假日 and 调休 make-up days).

chinesecalendar covers the years its release knows (2004 to the current year). Administrators
can override single days; for a date nobody covers we fall back to Monday–Friday and say so
in `CalendarAnswer.uncovered` instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar


@dataclass(frozen=True)
class WorkingDayCalendar:
    overrides: Mapping[date, bool] | None = None  # date -> is a working day

    def is_working_day(self, day: date) -> bool:
        if self.overrides and day in self.overrides:
            return self.overrides[day]
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:
            return day.weekday() < 5

    def is_covered(self, day: date) -> bool:
        """Whether the statutory calendar (or an override) knows this day for certain."""
        if self.overrides and day in self.overrides:
            return True
        try:
            chinese_calendar.is_workday(day)
        except NotImplementedError:
            return False
        return True

    def add_working_days(self, start: date, days: int) -> date:
        """The date `days` working days after `start` (start itself not counted)."""
        current = start
        remaining = days
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            if self.is_working_day(current):
                count += 1
        return count
