"""好差评 figures for a service point or a region: ratings by level, the unrated cases that
count as 满意 once their window is over, the satisfaction rate, rectifications — per point and
per clerk, so the same numbers roll up into the regional figures.

One grouped query over the closed cases in scope (with their latest rating) and one over the
rectifications; the effective level of a case is its latest round's.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_, case as when, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from services.accounts.principal import Principal
from services.cases.models import Case
from services.errors import Forbidden, InvalidInput
from services.evaluations.models import Evaluation, Rectification
from services.evaluations.service import (CHINA, DEFAULT_LEVEL, EVALUABLE_STATES, LEVELS, OutsideJurisdiction,
                                          _calendar, _today)
from services.evaluations.settings import get_evaluation_settings
from services.points.models import ServicePoint, Staff
from services.regions.codes import is_region_code
from services.regions.repository import subtree_prefix

GOOD_LEVELS = (5, 4, 3)


class StaffOnly(Forbidden):
    code = "staff_only"
    message = "仅限工作人员账号"


def _scope(session: Session, *, principal: Principal, service_point_id: int | None,
           region_code: str | None) -> tuple[str, Any]:
    """(description, SQL condition on Case) of what the caller asked for, inside what they may
    see: supervisors and admins their jurisdiction; clerks and reviewers their own point."""
    if principal.kind != "staff" or not principal.roles or principal.roles[0] == "helper":
        raise StaffOnly()
    role = principal.roles[0]
    if not principal.jurisdiction_code or not is_region_code(principal.jurisdiction_code):
        raise OutsideJurisdiction()
    jurisdiction = subtree_prefix(principal.jurisdiction_code)
    if service_point_id is not None and region_code is not None:
        raise InvalidInput("service_point_id 与 region_code 只能给一个",
                           detail=[{"field": "region_code", "reason": "one_of"}])
    if role not in ("supervisor", "admin"):
        if region_code is not None or (service_point_id not in (None, principal.service_point_id)):
            raise OutsideJurisdiction()
        service_point_id = principal.service_point_id
    if service_point_id is not None:
        point = session.get(ServicePoint, service_point_id)
        if point is None or not point.region_code.startswith(jurisdiction):
            raise OutsideJurisdiction()
        return f"point:{point.id}", Case.handling_point_id == point.id
    region = region_code or principal.jurisdiction_code
    if not is_region_code(region):
        raise InvalidInput("地区代码无效", detail=[{"field": "region_code", "reason": "invalid"}])
    if not subtree_prefix(region).startswith(jurisdiction):
        raise OutsideJurisdiction()
    return f"region:{region}", Case.region_code.startswith(subtree_prefix(region))


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=CHINA).astimezone(timezone.utc)


def evaluation_figures(session: Session, *, principal: Principal, service_point_id: int | None = None,
                       region_code: str | None = None, since: date | None = None,
                       until: date | None = None) -> dict[str, Any]:
    """Figures for cases closed in [since, until] (China dates; default: everything)."""
    label, in_scope = _scope(session, principal=principal, service_point_id=service_point_id, region_code=region_code)
    settings = get_evaluation_settings()
    today = _today()
    # A case closed before this moment, unrated, has had its whole window: it counts as 满意.
    cutoff_day = _shift_back(session, today, settings.window_working_days)
    cutoff = _start_of(cutoff_day)
    latest = (select(Evaluation.case_id, func.max(Evaluation.round).label("round"))
              .group_by(Evaluation.case_id).subquery())
    rating = aliased(Evaluation)
    conditions = [Case.state.in_(EVALUABLE_STATES), Case.closed_at.is_not(None), in_scope]
    if since:
        conditions.append(Case.closed_at >= _start_of(since))
    if until:
        conditions.append(Case.closed_at < _start_of(until + timedelta(days=1)))
    defaulted = when((and_(rating.level.is_(None), Case.closed_at < cutoff), 1), else_=0) \
        if settings.default_satisfied else 0
    rows = session.execute(
        select(Case.handling_point_id, Case.assignee_id, rating.level, func.count(), func.sum(defaulted))
        .select_from(Case)
        .outerjoin(latest, latest.c.case_id == Case.id)
        .outerjoin(rating, and_(rating.case_id == latest.c.case_id, rating.round == latest.c.round))
        .where(*conditions)
        .group_by(Case.handling_point_id, Case.assignee_id, rating.level)).all()

    def empty() -> dict[str, Any]:
        return {"closed": 0, "rated": 0, "defaulted_satisfied": 0, "awaiting": 0,
                "by_level": {str(level): 0 for level in LEVELS}}

    total, points, clerks = empty(), defaultdict(empty), defaultdict(empty)
    for point_id, clerk_id, level, count, defaulted_count in rows:
        count, defaulted_count = int(count), int(defaulted_count or 0)
        for bucket in (total, points[point_id], clerks[(point_id, clerk_id)]):
            bucket["closed"] += count
            if level is not None:
                bucket["rated"] += count
                bucket["by_level"][str(level)] += count
            else:
                bucket["defaulted_satisfied"] += defaulted_count
                bucket["awaiting"] += count - defaulted_count
    rectifications = _rectification_counts(session, in_scope=in_scope, today=today)
    names = _names(session, point_ids={p for p in points}, staff_ids={c for _, c in clerks if c is not None})
    return {
        "scope": label, "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
        "as_of": today.isoformat(), "levels": {str(level): name for level, name in LEVELS.items()},
        "default_satisfied": settings.default_satisfied, "window_working_days": settings.window_working_days,
        **_finish(total), "rectifications": rectifications.get("total", _no_rectifications()),
        "by_point": [{"service_point_id": point_id, "name": names["points"].get(point_id, ""), **_finish(bucket),
                      "rectifications": rectifications.get(point_id, _no_rectifications())}
                     for point_id, bucket in sorted(points.items(), key=lambda item: item[0] or 0)],
        "by_clerk": [{"staff_id": clerk_id, "name": names["staff"].get(clerk_id, "") if clerk_id else "（未分配）",
                      "service_point_id": point_id, **_finish(bucket)}
                     for (point_id, clerk_id), bucket in sorted(clerks.items(), key=lambda item: (item[0][0] or 0, item[0][1] or 0))],
    }


def _finish(bucket: dict[str, Any]) -> dict[str, Any]:
    """Add the rates: satisfied = 5, 4, 3 and the defaulted 满意, over rated + defaulted."""
    counted = bucket["rated"] + bucket["defaulted_satisfied"]
    good = sum(bucket["by_level"][str(level)] for level in GOOD_LEVELS) + bucket["defaulted_satisfied"]
    bad = bucket["by_level"]["1"] + bucket["by_level"]["2"]
    effective = dict(bucket["by_level"])
    effective[str(DEFAULT_LEVEL)] += bucket["defaulted_satisfied"]
    return {**bucket, "effective_by_level": effective, "satisfied": good, "dissatisfied": bad,
            "satisfaction_rate": round(good / counted, 4) if counted else None}


def _no_rectifications() -> dict[str, int]:
    return {"open": 0, "overdue": 0, "done": 0}


def _rectification_counts(session: Session, *, in_scope, today: date) -> dict[Any, dict[str, int]]:
    rows = session.execute(
        select(Rectification.service_point_id, Rectification.state,
               func.sum(when((Rectification.due_date < today, 1), else_=0)), func.count())
        .join(Case, Case.id == Rectification.case_id).where(in_scope)
        .group_by(Rectification.service_point_id, Rectification.state)).all()
    counts: dict[Any, dict[str, int]] = defaultdict(_no_rectifications)
    for point_id, state, overdue, count in rows:
        for key in (point_id, "total"):
            counts[key]["done" if state == "done" else "open"] += int(count)
            if state == "open":
                counts[key]["overdue"] += int(overdue or 0)
    return counts


def _names(session: Session, *, point_ids: set, staff_ids: set) -> dict[str, dict]:
    points = dict(session.execute(select(ServicePoint.id, ServicePoint.name)
                                  .where(ServicePoint.id.in_([p for p in point_ids if p is not None]))).all()) if point_ids else {}
    staff = dict(session.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(list(staff_ids)))).all()) \
        if staff_ids else {}
    return {"points": points, "staff": staff}


def _shift_back(session: Session, day: date, working_days: int) -> date:
    """The day `working_days` working days before `day`."""
    from services.sla.calendar import shift_working_days

    return shift_working_days(_calendar(session), day, -working_days)
