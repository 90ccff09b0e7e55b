"""Figures for staff: case counts of a point or a region (by state, due soon, overdue), the
escalations waiting for a supervisor, and the regional figures of the operations screen
(一网协同): a region with its direct children, a service point with its clerks."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import get_session, require_staff
from api.errors import errors
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.errors import InvalidInput
from services.figures import service as figures
from services.figures.service import OutsideJurisdiction, covers as _covers_region
from services.points.models import ServicePoint
from services.sla.counts import case_counts
from services.sla.sweep import open_escalations

router = APIRouter(tags=["figures"], route_class=SessionRoute)

MAX_INT = 2_147_483_647  # PostgreSQL integer: anything larger would fail in the database, not here

__all__ = ["router", "OutsideJurisdiction"]


def _covers(principal: Principal, region_code: str) -> bool:
    return _covers_region(principal, region_code)


@router.get("/figures/cases", summary="Case counts of a service point or a region",
            description="By state, open, due soon (≤ ONESTOP_SLA_DUE_SOON_DAYS working days left), overdue, paused "
                        "and escalated. Clerks see their own point; supervisors and administrators any point or "
                        "region inside their jurisdiction (default: the whole jurisdiction).",
            responses=errors(401, 403, 422))
def figures_cases(service_point_id: int | None = Query(default=None, ge=1, le=MAX_INT, examples=[5]),
                  region_code: str | None = Query(default=None, pattern=r"^\d{12}$", examples=["361130102000"]),
                  principal: Principal = Depends(require_staff),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    if service_point_id is not None and region_code is not None:
        raise InvalidInput("服务点和地区只能指定一个", detail=[{"field": "region_code", "reason": "one_of"}])
    role = principal.roles[0] if principal.roles else ""
    wide = role in ("supervisor", "admin")
    if region_code is None and service_point_id is None:
        if wide and principal.jurisdiction_code:
            region_code = principal.jurisdiction_code
        else:
            service_point_id = principal.service_point_id
    if service_point_id is not None:
        point = session.get(ServicePoint, service_point_id)
        allowed = point is not None and (point.id == principal.service_point_id
                                         or (wide and _covers(principal, point.region_code)))
        if not allowed:
            raise OutsideJurisdiction(detail={"service_point_id": service_point_id})
        scope = {"service_point": {"id": point.id, "name": point.name, "level": point.level}}
    else:
        if not (wide and _covers(principal, region_code)):
            raise OutsideJurisdiction(detail={"region_code": region_code})
        scope = {"region_code": region_code}
    return {**scope, **case_counts(session, service_point_id=service_point_id, region_code=region_code)}


@router.get("/figures/escalations", summary="Overdue cases escalated to the caller's point, still open",
            responses=errors(401, 403, 422))
def figures_escalations(limit: int = Query(default=50, ge=1, le=200), principal: Principal = Depends(require_staff),
                        session: Session = Depends(get_session)) -> dict[str, Any]:
    return {"items": open_escalations(session, service_point_ids=[principal.service_point_id], limit=limit)}


# ---------------------------------------------------------------- regional figures (一网协同)

class Satisfaction(BaseModel):
    ratings: int
    average_score: float | None
    satisfied_share: float | None
    by_level: dict[str, int]


class FigureSet(BaseModel):
    received: int
    accepted: int
    completed: int
    denied: int
    not_accepted: int
    withdrawn: int
    open: int
    open_by_state: dict[str, int]
    due_soon: int
    overdue: int
    paused: int
    completion_cases: int
    avg_working_days_to_completion: float | None
    satisfaction: Satisfaction


_EXAMPLE_FIGURES = {
    "received": 1520, "accepted": 1302, "completed": 1105, "denied": 31, "not_accepted": 58, "withdrawn": 87,
    "open": 239, "open_by_state": {"accepted": 61, "correcting": 22, "in_review": 70, "submitted": 86},
    "due_soon": 12, "overdue": 3, "paused": 0, "completion_cases": 1105, "avg_working_days_to_completion": 2.37,
    "satisfaction": {"ratings": 412, "average_score": 4.71, "satisfied_share": 0.9563,
                     "by_level": {"5": 330, "4": 64, "3": 12, "2": 4, "1": 2}}}
_FRESHNESS = {"as_of": "2026-11-26T10:15:00+08:00", "refreshed_at": "2026-11-26T10:15:02.311000+08:00",
              "ready": True, "today": "2026-11-26", "due_soon_days": 1}


class ChildRegion(BaseModel):
    code: str
    name: str
    level: str
    active: bool
    figures: FigureSet


class RegionRef(BaseModel):
    code: str
    name: str
    level: str


class _FiguresAnswer(BaseModel):
    """What a region's and a point's figures both answer: the period and matter asked for, how
    fresh the rollups are, and the figures themselves."""

    from_: str | None = Field(default=None, alias="from")  # "from" is a Python keyword
    to: str | None
    matter_code: str | None
    as_of: str | None
    refreshed_at: str | None
    ready: bool
    today: str
    due_soon_days: int
    figures: FigureSet


class RegionFiguresView(_FiguresAnswer):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "region": {"code": "361130000000", "name": "婺源县", "level": "county"},
        "from": "2026-01-01", "to": "2026-11-26", "matter_code": None, **_FRESHNESS, "figures": _EXAMPLE_FIGURES,
        "children": [{"code": "361130102000", "name": "秋口镇", "level": "town", "active": True,
                      "figures": _EXAMPLE_FIGURES}]}]})

    region: RegionRef
    children: list[ChildRegion]


class PointRef(BaseModel):
    id: int
    name: str
    level: str
    region_code: str


class ClerkFigures(BaseModel):
    staff_id: int | None
    name: str
    role: str | None
    figures: FigureSet


class PointFiguresView(_FiguresAnswer):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "service_point": {"id": 5, "name": "秋口镇便民服务中心", "level": "town", "region_code": "361130102000"},
        "from": None, "to": None, "matter_code": "residence-certificate", **_FRESHNESS, "figures": _EXAMPLE_FIGURES,
        "clerks": [{"staff_id": 12, "name": "王芳", "role": "clerk", "figures": _EXAMPLE_FIGURES},
                   {"staff_id": None, "name": "（待认领）", "role": None, "figures": _EXAMPLE_FIGURES}]}]})

    service_point: PointRef
    clerks: list[ClerkFigures]


DateFrom = Query(default=None, alias="from", examples=["2026-01-01"],
                 description="first submission day (Asia/Shanghai), inclusive; 2000-01-01 … 2100-12-31")
DateTo = Query(default=None, alias="to", examples=["2026-11-26"], description="last submission day, inclusive")
MatterCode = Query(default=None, min_length=1, max_length=64, examples=["residence-certificate"],
                   description="only this matter (422 `unknown_matter` if no matter has this code)")

_FIGURES_TEXT = (
    "received (submitted in the window), accepted (ever 受理), completed (准予: approved, completed, delivered), "
    "denied, not_accepted (不予受理), withdrawn, open (anything else) — of the cases submitted between `from` and "
    "`to` (Asia/Shanghai days; default: all); of those still open, by state, due soon (≤ ONESTOP_SLA_DUE_SOON_DAYS "
    "working days left), overdue and paused, as of today; average working days from acceptance to the decision of "
    "the completed ones; satisfaction from their latest 好差评 rating (ratings, average score 1–5, share of 满意 "
    "and 非常满意; unrated cases that count as 满意 are in /evaluations/figures). Served from rollup tables a "
    "worker refreshes every ONESTOP_FIGURES_REFRESH_SECONDS: `as_of` is the moment up to which changes are in "
    "(null and `ready` false before the first build).")


@router.get("/figures/regions/{region_code}", response_model=RegionFiguresView,
            summary="Regional figures of a region's subtree, with each direct child region (一网协同)",
            description="Cases of applicants whose region is in the subtree. " + _FIGURES_TEXT +
                        " Supervisors and administrators: any region inside their jurisdiction; clerks and "
                        "reviewers: their own point's region only (403 `outside_jurisdiction`). 422 "
                        "`unknown_region_code`, `invalid_date_range`, `unknown_matter`.",
            responses=errors(401, 403, 422))
def region_figures(region_code: str = Path(pattern=r"^\d{12}$", examples=["361130000000"],
                                           description="12-digit division code"),
                   date_from: date | None = DateFrom, date_to: date | None = DateTo,
                   matter_code: str | None = MatterCode,
                   principal: Principal = Depends(require_staff),
                   session: Session = Depends(get_session)) -> dict[str, Any]:
    return figures.region_figures(session, principal=principal, region_code=region_code, date_from=date_from,
                                  date_to=date_to, matter_code=matter_code)


@router.get("/figures/points/{service_point_id}", response_model=PointFiguresView,
            summary="Figures of the cases a service point handles, with each clerk's",
            description="Cases whose handling point it is, per assignee (`staff_id` null: waiting in the point's "
                        "pool). " + _FIGURES_TEXT + " Clerks and reviewers: their own point; supervisors and "
                        "administrators: any point inside their jurisdiction (403 `outside_jurisdiction`, also for "
                        "an unknown point).",
            responses=errors(401, 403, 422))
def point_figures(service_point_id: int = Path(ge=1, le=MAX_INT, examples=[5]),
                  date_from: date | None = DateFrom, date_to: date | None = DateTo,
                  matter_code: str | None = MatterCode,
                  principal: Principal = Depends(require_staff),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    return figures.point_figures(session, principal=principal, service_point_id=service_point_id,
                                 date_from=date_from, date_to=date_to, matter_code=matter_code)
