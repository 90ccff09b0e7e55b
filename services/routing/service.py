"""Dispatch: which service point handles a case, which clerk gets it, and why (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from services.errors import InvalidInput
from services.points.models import ServicePoint
from services.points.repository import Clerk, clerk_loads
from services.routing.index import LEVEL_ORDER, PointDecision, PointRef, get_index

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
    handling_point: PointRef  # as the routing index has it: no read of the point's row
    assignee: Clerk | None
    reason: str


# Business areas of the catalogue (MatterDefinition.category) in words a clerk reads.
CATEGORY_LABELS = {
    "civil-affairs": "民政", "health": "卫生健康", "housing-construction": "住房城乡建设",
    "disabled-persons": "残疾人服务", "market-regulation": "市场监管", "public-security": "公安",
    "medical-insurance": "医疗保障", "social-security": "人力资源和社会保障", "rural-land": "农村宅基地",
}


def category_label(category: str | None) -> str:
    return CATEGORY_LABELS.get(category or "", category or "")


def route(session: Session, *, handle_level: str, region_code: str, category: str | None = None,
          anywhere_in_county: bool = False, receiving_point_id: int | None = None,
          receive_levels: tuple[str, ...] | None = None) -> RoutingDecision:
    """The handling point and, in an `assign` point, the clerk; with the reason in words.

    The point: the one at the matter's deciding level whose region contains the applicant's
    region; where that level has no point, the next level up. A 全域通办 matter
    (`anywhere_in_county`) is handled by the point that received the application if it lies in
    the applicant's county, else by the point nearest to the applicant (village station, town
    centre, county centre; only levels that may receive the matter). Inside the point: the
    least-loaded on-duty clerk whose window handles the matter's `category`, or the pool."""
    index = get_index(session)
    if anywhere_in_county:
        point, reason = _anywhere_in_county(session, index, region_code=region_code,
                                            receiving_point_id=receiving_point_id,
                                            levels=tuple(receive_levels or LEVEL_ORDER))
    else:
        point, reason = _by_level(session, index, handle_level=handle_level, region_code=region_code)
    assignee, how = choose_assignee(session, point=point, category=category)
    reason.append(how)
    return RoutingDecision(handling_point=point, assignee=assignee, reason="；".join(reason))


def _check_region(decision: PointDecision) -> None:
    if decision.region is None:
        raise UnknownRegion(detail=[{"field": "region_code", "reason": "unknown"}])
    if not decision.region.active:
        raise InactiveRegion(detail=[{"field": "region_code", "reason": "inactive"}])


def _by_level(session: Session, index, *, handle_level: str, region_code: str) -> tuple[PointRef, list[str]]:
    decision = index.decide(handle_level=handle_level, region_code=region_code)
    _check_region(decision)
    if decision.point is None:
        raise NoHandlingPoint(detail={"handle_level": handle_level, "region_code": region_code,
                                      "searched_levels": list(decision.skipped_levels)})
    reason = [f"{LEVEL_LABELS[handle_level]}办理事项；申请人所在地 {region_code} {decision.region.name}"]
    reason += [f"当地未设{POINT_KINDS[level]}，上移一级" for level in decision.skipped_levels]
    reason.append(f"属于 {decision.point_region_name} → {decision.point.name}")
    return decision.point, reason


def _anywhere_in_county(session: Session, index, *, region_code: str, receiving_point_id: int | None,
                        levels: tuple[str, ...]) -> tuple[PointRef, list[str]]:
    decision = index.nearest(region_code=region_code, levels=levels)
    _check_region(decision)
    reason = [f"全域通办事项，本县任一服务点均可办理；申请人所在地 {region_code} {decision.region.name}"]
    if receiving_point_id is not None:
        received = session.get(ServicePoint, receiving_point_id)
        if (received is not None and received.active
                and index.county_of(received.region_code) == index.county_of(region_code)):
            reason.append(f"在本县 {received.name} 收件，由收件点办理")
            return PointRef(received.id, received.name, received.level, received.region_code,
                            received.routing_mode), reason
        if received is not None:
            reason.append(f"收件点 {received.name} 不在申请人所在县或已停用，就近办理")
    if decision.point is None:
        raise NoHandlingPoint(detail={"anywhere_in_county": True, "region_code": region_code,
                                      "searched_levels": list(decision.skipped_levels)})
    reason += [f"当地未设{POINT_KINDS[level]}" for level in decision.skipped_levels]
    reason.append(f"由距申请人最近的 {decision.point.name} 办理")
    return decision.point, reason


def choose_assignee(session: Session, *, point: ServicePoint | PointRef, category: str | None,
                    exclude_staff_id: int | None = None) -> tuple[Clerk | None, str]:
    """The least-loaded qualified clerk of an `assign` point (None in a `pool` point or when no
    clerk qualifies), and the sentence saying so."""
    if point.routing_mode != "assign":
        return None, "进入该点待认领队列"
    loads = clerk_loads(session, service_point_id=point.id, category=category, exclude_staff_id=exclude_staff_id)
    if not loads:
        if category:
            return None, f"该点暂无可办理{category_label(category)}类事项的在岗窗口人员，进入待认领队列"
        return None, "该点暂无在岗窗口人员，进入待认领队列"
    assignee, count = loads[0]
    window = assignee.window_name + " " if assignee.window_name else ""
    return assignee, f"分配给 {window}{assignee.display_name}（当前 {count} 件）"
