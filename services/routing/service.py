"""Dispatch: which service point handles a case, which clerk gets it, and why (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from services.errors import InvalidInput
from services.points.models import ServicePoint, Staff
from services.points.repository import clerk_loads
from services.routing.index import get_index

LEVEL_LABELS = {"village": "村级", "town": "乡镇级", "county": "县级"}
POINT_KINDS = {"village": "便民服务站", "town": "便民服务中心", "county": "政务服务中心"}


class UnknownRegion(InvalidInput):
    code = "unknown_region_code"
    message = "行政区划代码不存在"


class InactiveRegion(InvalidInput):
    code = "inactive_region_code"
    message = "该行政区划代码已停用"


class NoHandlingPoint(InvalidInput):
    code = "no_handling_point"
    message = "申请人所在地区没有可办理该事项的服务点"


@dataclass(frozen=True)
class RoutingDecision:
    handling_point: ServicePoint
    assignee: Staff | None
    reason: str


def route(session: Session, *, handle_level: str, region_code: str) -> RoutingDecision:
    """The point at the matter's deciding level whose region contains the applicant's region;
    where that level has no point, the next level up. Then the least-loaded clerk."""
    decision = get_index(session).decide(handle_level=handle_level, region_code=region_code)
    if decision.region is None:
        raise UnknownRegion(detail=[{"field": "region_code", "reason": "unknown"}])
    if not decision.region.active:
        raise InactiveRegion(detail=[{"field": "region_code", "reason": "inactive"}])
    if decision.point is None:
        raise NoHandlingPoint(detail={"handle_level": handle_level, "region_code": region_code,
                                      "searched_levels": list(decision.skipped_levels)})
    reason = [f"{LEVEL_LABELS[handle_level]}办理事项；申请人所在地 {region_code} {decision.region.name}"]
    reason += [f"当地未设{POINT_KINDS[level]}，上移一级" for level in decision.skipped_levels]
    reason.append(f"属于 {decision.point_region_name} → {decision.point.name}")
    point = session.get(ServicePoint, decision.point.id)

    assignee = None
    if point.routing_mode == "assign":
        loads = clerk_loads(session, service_point_id=point.id)
        if loads:
            assignee, count = loads[0]
            window = f"{assignee.window} " if assignee.window else ""
            reason.append(f"分配给 {window}{assignee.display_name}（当前 {count} 件）")
        else:
            reason.append("该点暂无在岗窗口人员，进入待认领队列")
    else:
        reason.append("进入该点待认领队列")
    return RoutingDecision(handling_point=point, assignee=assignee, reason="；".join(reason))
