"""Service point, window and staff queries."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import and_, bindparam, func, or_
from sqlmodel import Session, select

from services.cases.models import Case
from services.points.models import CLOSED_STATES, ClerkLoad, ServicePoint, ServiceWindow, Staff, categories_take

__all__ = ["CLOSED_STATES", "TERMINAL_STATES", "Clerk", "active_points_in", "clerk_loads",
           "get_point", "get_window", "get_staff", "active_point_for", "active_window_named", "list_points",
           "list_windows", "list_staff", "active_staff_of_point", "active_staff_at_window", "open_case_count_at_point",
           "open_cases_assigned_to"]

# States no action leaves in the standard lifecycle; what is not in them may still need work.
TERMINAL_STATES = ("denied", "not_accepted", "withdrawn", "delivered")


def active_points_in(session: Session, *, region_codes: list[str]) -> list[ServicePoint]:
    """Active points that serve exactly one of these regions."""
    return list(session.exec(select(ServicePoint).where(ServicePoint.region_code.in_(region_codes),
                                                        ServicePoint.active.is_(True))
                             .order_by(ServicePoint.id)))


class Clerk(NamedTuple):
    """A clerk as routing sees them: who, and the window they sit at (None: no counter)."""

    id: int
    username: str
    display_name: str
    window_name: str | None


def clerk_loads(session: Session, *, service_point_id: int, category: str | None = None,
                exclude_staff_id: int | None = None) -> list[tuple[Clerk, int]]:
    """On-duty active clerks of a point qualified for a matter category (their window handles it,
    or they have no window: a clerk without a counter takes everything), each with their count of
    open cases at the point, least loaded first. `category` None: every clerk.

    One query over the point's clerks (a handful of rows) and their `clerk_loads` rows, which
    triggers on `cases` keep (services.points.models.ClerkLoad): no case is read, however many
    a clerk has open. Plain records of the columns routing uses, not Staff objects: every
    submission routes, and loading whole rows as ORM objects cost half of this read."""
    parameters = {"point_id": service_point_id}
    if exclude_staff_id is not None:
        parameters["exclude_staff_id"] = exclude_staff_id
    rows = session.execute(_clerk_loads_statement(exclude_staff_id is not None), parameters).all()
    qualified = [(Clerk(staff_id, username, display_name, window_name), int(load))
                 for staff_id, username, display_name, window_name, categories, load in rows
                 if categories_take(categories, category)]
    return sorted(qualified, key=lambda item: (item[1], item[0].id))


@lru_cache(maxsize=None)
def _clerk_loads_statement(excluding_one: bool):
    # Built once and executed with parameters: every submission routes, and building this
    # statement cost four times its round trip. Only active windows are joined (an inactive
    # one's clerk is left out by the WHERE), so a window's categories decide alone.
    point_id = bindparam("point_id")
    query = (select(Staff.id, Staff.username, Staff.display_name, ServiceWindow.name, ServiceWindow.categories,
                    func.coalesce(ClerkLoad.open_cases, 0).label("load"))
             .outerjoin(ServiceWindow, ServiceWindow.id == Staff.window_id)
             .outerjoin(ClerkLoad, and_(ClerkLoad.staff_id == Staff.id, ClerkLoad.service_point_id == point_id))
             .where(Staff.service_point_id == point_id, Staff.role == "clerk", Staff.active.is_(True),
                    Staff.status == "on_duty", or_(Staff.window_id.is_(None), ServiceWindow.active.is_(True))))
    if excluding_one:
        query = query.where(Staff.id != bindparam("exclude_staff_id"))
    return query


def get_point(session: Session, *, point_id: int) -> ServicePoint | None:
    return session.get(ServicePoint, point_id)


def get_window(session: Session, *, window_id: int) -> ServiceWindow | None:
    return session.get(ServiceWindow, window_id)


def get_staff(session: Session, *, staff_id: int) -> Staff | None:
    return session.get(Staff, staff_id)


def get_staff_by_username(session: Session, *, username: str) -> Staff | None:
    return session.exec(select(Staff).where(Staff.username == username)).first()


def active_point_for(session: Session, *, region_code: str, level: str) -> ServicePoint | None:
    """The active point of this level serving exactly this region, if any."""
    return session.exec(select(ServicePoint).where(ServicePoint.region_code == region_code,
                                                   ServicePoint.level == level,
                                                   ServicePoint.active.is_(True))).first()


def active_window_named(session: Session, *, service_point_id: int, name: str) -> ServiceWindow | None:
    return session.exec(select(ServiceWindow).where(ServiceWindow.service_point_id == service_point_id,
                                                    ServiceWindow.name == name,
                                                    ServiceWindow.active.is_(True))).first()


def list_points(session: Session, *, region_prefix: str, level: str | None = None, include_inactive: bool = False,
                after_id: int = 0, limit: int = 50) -> list[ServicePoint]:
    """Points whose region lies in a subtree (by code prefix), by id."""
    query = select(ServicePoint).where(ServicePoint.region_code.startswith(region_prefix), ServicePoint.id > after_id)
    if level:
        query = query.where(ServicePoint.level == level)
    if not include_inactive:
        query = query.where(ServicePoint.active.is_(True))
    return list(session.exec(query.order_by(ServicePoint.id).limit(limit)))


def list_windows(session: Session, *, service_point_id: int, include_inactive: bool = False) -> list[ServiceWindow]:
    query = select(ServiceWindow).where(ServiceWindow.service_point_id == service_point_id)
    if not include_inactive:
        query = query.where(ServiceWindow.active.is_(True))
    return list(session.exec(query.order_by(ServiceWindow.id)))


def list_staff(session: Session, *, region_prefix: str, service_point_id: int | None = None,
               role: str | None = None, include_inactive: bool = False, after_id: int = 0,
               limit: int = 50) -> list[tuple[Staff, ServicePoint, ServiceWindow | None]]:
    """Staff of the points in a subtree, each with their point and window, by id."""
    query = (select(Staff, ServicePoint, ServiceWindow)
             .join(ServicePoint, ServicePoint.id == Staff.service_point_id)
             .outerjoin(ServiceWindow, ServiceWindow.id == Staff.window_id)
             .where(ServicePoint.region_code.startswith(region_prefix), Staff.id > after_id))
    if service_point_id is not None:
        query = query.where(Staff.service_point_id == service_point_id)
    if role:
        query = query.where(Staff.role == role)
    if not include_inactive:
        query = query.where(Staff.active.is_(True))
    return [tuple(row) for row in session.exec(query.order_by(Staff.id).limit(limit))]


def active_staff_of_point(session: Session, *, service_point_id: int) -> list[Staff]:
    return list(session.exec(select(Staff).where(Staff.service_point_id == service_point_id,
                                                 Staff.active.is_(True)).order_by(Staff.id)))


def active_staff_at_window(session: Session, *, window_id: int) -> list[Staff]:
    return list(session.exec(select(Staff).where(Staff.window_id == window_id, Staff.active.is_(True))
                             .order_by(Staff.id)))


def open_case_count_at_point(session: Session, *, service_point_id: int) -> int:
    """Cases handled at the point that are not finished (any state but a terminal one)."""
    return int(session.exec(select(func.count()).select_from(Case).where(
        Case.handling_point_id == service_point_id, Case.state.not_in(TERMINAL_STATES))).one())


def open_cases_assigned_to(session: Session, *, staff_id: int) -> list[Case]:
    """Every case assigned to this staff member that is not in a terminal state, oldest first."""
    return list(session.exec(select(Case).where(Case.assignee_id == staff_id, Case.state.not_in(TERMINAL_STATES))
                             .order_by(Case.submitted_at, Case.id)))
