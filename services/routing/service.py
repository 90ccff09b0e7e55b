"""Dispatch: which service point handles a case, which clerk gets it, and why (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from services.errors import InvalidInput
from services.points.models import ServicePoint, Staff
from services.points.repository import active_points_in, clerk_loads
from services.regions.repository import ancestors, get_region

LEVEL_ORDER = ("village", "town", "county")
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
    region = get_region(session, code=region_code)
    if region is None:
        raise UnknownRegion(detail=[{"field": "region_code", "reason": "unknown"}])
    if not region.active:
        raise InactiveRegion(detail=[{"field": "region_code", "reason": "inactive"}])
    chain = [*ancestors(session, code=region_code), region]
    names = {item.code: item.name for item in chain}
    points = active_points_in(session, region_codes=list(names))
    by_level: dict[str, ServicePoint] = {}
    for candidate in points:
        by_level.setdefault(candidate.level, candidate)

    start = LEVEL_ORDER.index(handle_level)
    reason = [f"{LEVEL_LABELS[handle_level]}办理事项；申请人所在地 {region.code} {region.name}"]
    point = None
    for level in LEVEL_ORDER[start:]:
        point = by_level.get(level)
        if point is not None:
            break
        reason.append(f"当地未设{POINT_KINDS[level]}，上移一级")
    if point is None:
        raise NoHandlingPoint(detail={"handle_level": handle_level, "region_code": region_code,
                                      "searched_levels": list(LEVEL_ORDER[start:])})
    reason.append(f"属于 {names.get(point.region_code, point.region_code)} → {point.name}")

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
