"""The working-day calendar: statutory holidays and 调休, administrator overrides, and saying
so when a date is beyond what the calendar knows."""

from __future__ import annotations

from datetime import date

import pytest

from workflows.calendar import CalendarAnswer, WorkingDayCalendar, statutory_years


def test_statutory_holidays_and_make_up_days():
    calendar = WorkingDayCalendar()
    assert not calendar.is_working_day(date(2025, 10, 1))  # 国庆
    assert calendar.is_working_day(date(2025, 9, 28))  # a Sunday worked in lieu (调休)
    assert calendar.add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    assert calendar.working_days_between(date(2025, 9, 30), date(2025, 10, 9)) == 1
    assert calendar.working_days_between(date(2025, 10, 9), date(2025, 9, 30)) == -1


def test_overrides_accept_booleans_and_words_and_win():
    calendar = WorkingDayCalendar(overrides={date(2025, 10, 8): "working", "2025-10-09": "holiday",
                                             date(2025, 10, 10): False})
    assert calendar.overrides == {date(2025, 10, 8): True, date(2025, 10, 9): False, date(2025, 10, 10): False}
    assert calendar.is_working_day(date(2025, 10, 8)) and not calendar.is_working_day(date(2025, 10, 9))
    assert calendar.add_working_days(date(2025, 9, 30), 2) == date(2025, 10, 11)  # a Saturday worked in lieu
    assert WorkingDayCalendar(overrides={date(2025, 10, 8): True}).is_working_day(date(2025, 10, 8))
    with pytest.raises(ValueError, match="neither"):
        WorkingDayCalendar(overrides={date(2025, 1, 1): "maybe"})
    with pytest.raises(ValueError, match="not a date"):
        WorkingDayCalendar(overrides={"1 May": "holiday"})


def test_days_beyond_the_statutory_calendar_are_counted_monday_to_friday_with_a_warning():
    first, last = statutory_years()
    beyond = date(last + 1, 3, 2)
    calendar = WorkingDayCalendar()
    assert not calendar.is_covered(beyond)
    answer = calendar.due_date(date(last, 12, 30), 5)
    assert isinstance(answer, CalendarAnswer) and not answer.covered
    assert answer.uncovered[0] == date(last + 1, 1, 1)
    assert "未收录" in answer.warning and str(last + 1) in answer.warning
    known = calendar.due_date(date(last, 6, 1), 3)
    assert known.covered and known.warning is None
    assert WorkingDayCalendar(overrides={beyond: "holiday"}).is_covered(beyond)
    count = calendar.count_working_days(date(last, 12, 31), date(last + 1, 1, 9))
    assert count.value > 0 and count.uncovered


def test_coverage_reports_what_the_calendar_knows():
    first, last = statutory_years()
    coverage = WorkingDayCalendar(overrides={date(last + 1, 1, 1): "holiday"}).coverage()
    assert coverage["statutory_from"] == f"{first}-01-01" and coverage["statutory_until"] == f"{last}-12-31"
    assert coverage["overrides"] == 1 and coverage["override_until"] == f"{last + 1}-01-01"
