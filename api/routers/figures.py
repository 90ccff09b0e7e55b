"""Figures for staff: case counts of a point or a region (by state, due soon, overdue), and the
escalations waiting for a supervisor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session

from api.deps import get_session, require_staff
from api.errors import errors
from services.accounts.principal import Principal
from services.errors import Forbidden, InvalidInput
from services.points.models import ServicePoint
from services.regions.repository import subtree_prefix
from services.sla.counts import case_counts
from services.sla.sweep import open_escalations

router = APIRouter(tags=["figures"])


class OutsideJurisdiction(Forbidden):
    code = "outside_jurisdiction"
    message = "超出您的管辖范围"


def _covers(principal: Principal, region_code: str) -> bool:
    return bool(principal.jurisdiction_code) and region_code.startswith(subtree_prefix(principal.jurisdiction_code))


@router.get("/figures/cases", summary="Case counts of a service point or a region",
            description="By state, open, due soon (≤ ONESTOP_SLA_DUE_SOON_DAYS working days left), overdue, paused "
                        "and escalated. Clerks see their own point; supervisors and administrators any point or "
                        "region inside their jurisdiction (default: the whole jurisdiction).",
            responses=errors(401, 403, 422))
def figures_cases(service_point_id: int | None = Query(default=None, ge=1),
                  region_code: str | None = Query(default=None, pattern=r"^\d{12}$"),
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
