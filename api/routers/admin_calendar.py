"""Administrators' working-day calendar: next year's holidays and make-up working days
(published each November), and corrections to any day."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import get_session, require_admin
from api.errors import errors
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.errors import NotFound
from services.sla import calendar as working_calendar

router = APIRouter(tags=["admin: calendar"], route_class=SessionRoute)



class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalendarDayIn(_Body):
    date: dt.date = Field(examples=["2027-02-08"])
    working: bool = Field(description="true: a working day (e.g. 调休上班); false: a holiday or rest day")
    note: str | None = Field(default=None, max_length=100, examples=["春节"])


class CalendarDays(_Body):
    days: list[CalendarDayIn] = Field(min_length=1, max_length=400)


class CalendarDayPatch(_Body):
    working: bool
    note: str | None = Field(default=None, max_length=100)


@router.get("/admin/calendar/{year}", summary="A year of the working-day calendar in force",
            description="Every day that differs from Monday–Friday and where the answer comes from (the statutory "
                        "calendar or an administrator), and a warning when the year is not covered yet.",
            responses=errors(401, 403, 422))
def calendar_year(year: int, _admin: Principal = Depends(require_admin),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    return working_calendar.year_view(session, year=year)


@router.post("/admin/calendar", summary="Add or replace calendar days (e.g. next year's holidays)",
             responses=errors(401, 403, 422))
def set_calendar_days(body: CalendarDays, admin: Principal = Depends(require_admin),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    rows = working_calendar.set_days(session, days=[day.model_dump() for day in body.days], actor=admin.key)
    return {"saved": len(rows), "days": [{"date": row.day.isoformat(), "working": row.working, "note": row.note}
                                         for row in rows]}


@router.put("/admin/calendar/days/{day}", summary="Set one day", responses=errors(401, 403, 422))
def set_calendar_day(day: dt.date, body: CalendarDayPatch, admin: Principal = Depends(require_admin),
                     session: Session = Depends(get_session)) -> dict[str, Any]:
    row = working_calendar.set_days(session, days=[{"date": day, **body.model_dump()}], actor=admin.key)[0]
    return {"date": row.day.isoformat(), "working": row.working, "note": row.note}


@router.delete("/admin/calendar/days/{day}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove an override: the statutory calendar applies again",
               responses=errors(401, 403, 404, 422))
def delete_calendar_day(day: dt.date, _admin: Principal = Depends(require_admin),
                        session: Session = Depends(get_session)) -> Response:
    if not working_calendar.delete_day(session, day=day):
        raise NotFound("该日期没有管理员设置", code="calendar_day_not_found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/admin/calendar", summary="Which years the calendar covers", responses=errors(401, 403, 422))
def calendar_coverage(years: int = Query(default=2, ge=1, le=10, description="years from this one to look at"),
                      _admin: Principal = Depends(require_admin),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    this_year = working_calendar.today_in_china().year
    return {"statutory_years": list(working_calendar.statutory_years()),
            "years": [{key: view[key] for key in ("year", "covered_by_statute", "overrides", "warning")}
                      for view in (working_calendar.year_view(session, year=year)
                                   for year in range(this_year, this_year + years))]}
