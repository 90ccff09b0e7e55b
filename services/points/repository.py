"""Service point and staff queries."""

from sqlalchemy import func
from sqlmodel import Session, select

from services.cases.models import Case
from services.points.models import ServicePoint, Staff

OPEN_STATES = ("submitted", "correcting", "accepted", "in_review", "suspended")


def active_points_in(session: Session, *, region_codes: list[str]) -> list[ServicePoint]:
    """Active points that serve exactly one of these regions."""
    return list(session.exec(select(ServicePoint).where(ServicePoint.region_code.in_(region_codes),
                                                        ServicePoint.active.is_(True))
                             .order_by(ServicePoint.id)))


def clerk_loads(session: Session, *, service_point_id: int) -> list[tuple[Staff, int]]:
    """Active clerks of a point with their count of open assigned cases, least loaded first."""
    open_count = (select(Case.assignee_id, func.count().label("n"))
                  .where(Case.state.in_(OPEN_STATES), Case.handling_point_id == service_point_id)
                  .group_by(Case.assignee_id).subquery())
    rows = session.exec(
        select(Staff, func.coalesce(open_count.c.n, 0))
        .outerjoin(open_count, open_count.c.assignee_id == Staff.id)
        .where(Staff.service_point_id == service_point_id, Staff.role == "clerk", Staff.active.is_(True))
        .order_by(func.coalesce(open_count.c.n, 0), Staff.id)
    )
    return [(staff, int(count)) for staff, count in rows]
