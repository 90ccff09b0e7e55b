"""The SLA clock in working days: start, pause and resume across holidays and make-up days,
one extension within the legal limit, breach, and a visible warning where no calendar covers."""

from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from services.sla import clock
from services.sla.clock import ExtensionNotAllowed
from workflows.calendar import WorkingDayCalendar

CAL = WorkingDayCalendar()
NOW = datetime(2026, 9, 28, 2, 0, tzinfo=timezone.utc)


def fresh(**values) -> SimpleNamespace:
    base = {"sla_state": "not_started", "due_date": None, "legal_due_date": None, "sla_days_left": None,
            "sla_legal_days_left": None, "sla_paused_at": None, "extension_days": 0, "accepted_at": None,
            "closed_at": None}
    return SimpleNamespace(**{**base, **values})


def started(day: date, promised: int = 2, legal: int | None = 5) -> SimpleNamespace:
    return fresh(**clock.start(calendar=CAL, today=day, now=NOW, promised_days=promised, legal_days=legal))


def test_start_counts_working_days_over_the_national_day_holiday_and_its_make_up_days():
    case = started(date(2026, 9, 30))  # Wednesday; 10-01..10-07 holiday; 2026-10-10 (Sat) is a make-up day
    assert case.due_date == date(2026, 10, 9)  # 10-08 and 10-09
    assert case.legal_due_date == date(2026, 10, 13)  # 10-08, 10-09, 10-10 (make-up Saturday), 10-12, 10-13
    assert CAL.is_working_day(date(2026, 10, 10))


def test_pause_keeps_the_days_left_and_resume_counts_them_from_the_day_it_resumes():
    case = started(date(2026, 11, 2))  # Monday: due Wednesday 11-04, legal Monday 11-09
    paused = fresh(**{**vars(case), **clock.pause(case, calendar=CAL, today=date(2026, 11, 3), now=NOW)})
    assert paused.sla_state == "paused" and paused.sla_days_left == 1 and paused.sla_legal_days_left == 4
    view = clock.view(paused, calendar=CAL, today=date(2026, 11, 20))
    assert view["state"] == "paused" and view["working_days_left"] == 1 and view["breached"] is False
    resumed = fresh(**{**vars(paused), **clock.resume(paused, calendar=CAL, today=date(2026, 11, 20))})  # Friday
    assert resumed.sla_state == "running" and resumed.due_date == date(2026, 11, 23)  # the next working day
    assert resumed.legal_due_date == date(2026, 11, 26)
    assert clock.view(resumed, calendar=CAL, today=date(2026, 11, 24))["breached"] is True


def test_an_overdue_case_resumes_still_overdue():
    case = started(date(2026, 11, 2))
    paused = fresh(**{**vars(case), **clock.pause(case, calendar=CAL, today=date(2026, 11, 6), now=NOW)})
    assert paused.sla_days_left == -2
    resumed = clock.resume(paused, calendar=CAL, today=date(2026, 11, 16))
    assert resumed["due_date"] == date(2026, 11, 12)


def test_extend_once_within_the_legal_limit():
    case = started(date(2026, 11, 2))  # due 11-04, legal 11-09: room for 3 working days
    with pytest.raises(ExtensionNotAllowed) as beyond:
        clock.extend(case, calendar=CAL, today=date(2026, 11, 3), days=4)
    assert beyond.value.detail["reason"] == "beyond_legal_limit" and beyond.value.detail["max_days"] == 3
    extended = fresh(**{**vars(case), **clock.extend(case, calendar=CAL, today=date(2026, 11, 3), days=3)})
    assert extended.due_date == date(2026, 11, 9) and extended.extension_days == 3
    with pytest.raises(ExtensionNotAllowed) as again:
        clock.extend(extended, calendar=CAL, today=date(2026, 11, 3), days=1)
    assert again.value.detail["reason"] == "already_extended"
    with pytest.raises(ExtensionNotAllowed) as unlimited:
        clock.extend(started(date(2026, 11, 2), legal=None), calendar=CAL, today=date(2026, 11, 3), days=1)
    assert unlimited.value.detail["reason"] == "no_legal_limit"
    with pytest.raises(ExtensionNotAllowed):
        clock.extend(fresh(), calendar=CAL, today=date(2026, 11, 3), days=1)


def test_extend_while_paused_moves_the_days_left():
    case = started(date(2026, 11, 2))
    paused = fresh(**{**vars(case), **clock.pause(case, calendar=CAL, today=date(2026, 11, 3), now=NOW)})
    assert clock.extend(paused, calendar=CAL, today=date(2026, 11, 5), days=3) == {"sla_days_left": 4,
                                                                                  "extension_days": 3}
    with pytest.raises(ExtensionNotAllowed):
        clock.extend(paused, calendar=CAL, today=date(2026, 11, 5), days=4)


def test_stop_judges_breach_on_the_day_it_stopped():
    case = started(date(2026, 11, 2))
    on_time = fresh(**{**vars(case), **clock.stop(case, calendar=CAL, today=date(2026, 11, 4),
                                                   now=datetime(2026, 11, 4, 8, tzinfo=timezone.utc))})
    late = fresh(**{**vars(case), **clock.stop(case, calendar=CAL, today=date(2026, 11, 5),
                                                now=datetime(2026, 11, 5, 8, tzinfo=timezone.utc))})
    assert clock.view(on_time, calendar=CAL, today=date(2027, 1, 1))["breached"] is False
    assert clock.view(late, calendar=CAL, today=date(2026, 11, 5))["breached"] is True


def test_a_deadline_no_calendar_covers_falls_back_to_weekdays_with_a_warning():
    case = started(date(2026, 12, 30), promised=20, legal=None)  # runs into 2027, not in chinesecalendar 1.11
    assert case.due_date.year == 2027
    view = clock.view(case, calendar=CAL, today=date(2026, 12, 30))
    assert view["working_days_left"] == 20 and "2027" in view["calendar_warning"]
    published = WorkingDayCalendar(overrides={date(2027, 1, 1): False, case.due_date: True})
    assert clock.view(case, calendar=published, today=date(2026, 12, 30))["calendar_warning"] is None


def test_administrators_overrides_change_the_count():
    holiday = WorkingDayCalendar(overrides={date(2026, 11, 3): False})
    case = fresh(**clock.start(calendar=holiday, today=date(2026, 11, 2), now=NOW, promised_days=2, legal_days=5))
    assert case.due_date == date(2026, 11, 5)


from datetime import timedelta  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(start=st.dates(min_value=date(2020, 1, 1), max_value=date(2026, 10, 1)),
       promised=st.integers(min_value=0, max_value=20), extra=st.integers(min_value=0, max_value=20),
       paused_after=st.integers(min_value=0, max_value=40), paused_for=st.integers(min_value=0, max_value=60),
       extension=st.integers(min_value=1, max_value=45))
def test_clock_invariants(start, promised, extra, paused_after, paused_for, extension):
    """Paused time never counts; an extension never passes the legal deadline."""
    case = started(start, promised=promised, legal=promised + extra)
    pause_day = start + timedelta(days=paused_after)
    paused = fresh(**{**vars(case), **clock.pause(case, calendar=CAL, today=pause_day, now=NOW)})
    resume_day = pause_day + timedelta(days=paused_for)
    resumed = fresh(**{**vars(paused), **clock.resume(paused, calendar=CAL, today=resume_day)})
    assert CAL.working_days_between(resume_day, resumed.due_date) == paused.sla_days_left
    assert CAL.working_days_between(resumed.due_date, resumed.legal_due_date) == \
        CAL.working_days_between(case.due_date, case.legal_due_date)
    try:
        extended = clock.extend(resumed, calendar=CAL, today=resume_day, days=extension)
    except ExtensionNotAllowed:
        assert extension > CAL.working_days_between(resumed.due_date, resumed.legal_due_date)
    else:
        assert extended["due_date"] <= resumed.legal_due_date
