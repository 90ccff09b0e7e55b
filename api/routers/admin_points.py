"""Administrators manage service points, their windows (counters) and their staff, inside their
jurisdiction: an admin of a county centre manages that county's points. The rules live in
services/points/service.py; the command line (`onestop points|windows|staff`) uses the same."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import get_session, require_admin
from api.errors import errors
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.points import service as points

router = APIRouter(prefix="/admin", tags=["admin: service points and staff"],
                   route_class=SessionRoute)

MAX_ID = 2_147_483_647
PointId = Path(ge=1, le=MAX_ID, description="service point id", examples=[1])
WindowId = Path(ge=1, le=MAX_ID, description="window id", examples=[1])
StaffId = Path(ge=1, le=MAX_ID, description="staff id", examples=[2])
Cursor = Query(default=None, max_length=200, description="next_cursor of the previous page", examples=["MTI"])
IncludeInactive = Query(default=False, description="also list deactivated ones", examples=[False])

Level = Literal["county", "town", "village"]
RoutingMode = Literal["assign", "pool"]
Role = Literal["clerk", "reviewer", "supervisor", "helper", "admin"]
DutyStatus = Literal["on_duty", "on_leave"]
Category = str  # a matter category slug of the catalogue (GET /matters: `category`)



class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- shapes

POINT_EXAMPLE = {"id": 35, "name": "白石村便民服务站", "level": "village", "kind": "便民服务站",
                 "region_code": "361130102201", "address": "婺源县秋口镇白石村", "hours": "周一至周五 9:00–11:30, 14:30–17:00",
                 "routing_mode": "assign", "active": True}
WINDOW_EXAMPLE = {"id": 4, "service_point_id": 1, "name": "窗口3", "categories": ["social-security", "civil-affairs"],
                  "category_labels": ["人力资源和社会保障", "民政"], "active": True}
STAFF_EXAMPLE = {"id": 2, "username": "clerk-361130-2", "display_name": "李敏", "role": "clerk",
                 "service_point": {"id": 1, "name": "婺源县政务服务中心", "level": "county", "region_code": "361130000000"},
                 "window": {"id": 2, "name": "窗口2"}, "status": "on_duty", "active": True}


class PointView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [POINT_EXAMPLE]})

    id: int
    name: str
    level: Level
    kind: str = Field(description="政务服务中心 / 便民服务中心 / 便民服务站")
    region_code: str
    address: str
    hours: str
    routing_mode: RoutingMode = Field(description="assign: least-loaded qualified clerk; pool: cases wait to be "
                                                  "claimed")
    active: bool


class WindowView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [WINDOW_EXAMPLE]})

    id: int
    service_point_id: int
    name: str
    categories: list[str] = Field(description="matter categories handled; [] = every category")
    category_labels: list[str]
    active: bool


class PointDetail(PointView):
    model_config = ConfigDict(json_schema_extra={"examples": [{**POINT_EXAMPLE, "windows": [WINDOW_EXAMPLE]}]})

    windows: list[WindowView]


class PointList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [POINT_EXAMPLE], "next_cursor": None}]})

    items: list[PointView]
    next_cursor: str | None = None


class WindowList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [WINDOW_EXAMPLE], "next_cursor": None}]})

    items: list[WindowView]
    next_cursor: str | None = None


class ReleasedCases(BaseModel):
    reassigned: list[dict[str, Any]] = Field(description="{case_id, number, to_staff_id, to_staff_name}")
    returned_to_pool: list[dict[str, Any]] = Field(description="{case_id, number}")


class StaffView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **STAFF_EXAMPLE, "status": "on_leave",
        "released_cases": {"reassigned": [{"case_id": "5b0f2c1e-4a8d-4c6e-9f3b-2d7a1e0c9b44",
                                           "number": "36113020261126000012", "to_staff_id": 3,
                                           "to_staff_name": "张丽"}],
                           "returned_to_pool": []}}]})

    id: int
    username: str
    display_name: str
    role: Role
    service_point: dict[str, Any]
    window: dict[str, Any] | None
    status: DutyStatus
    active: bool
    released_cases: ReleasedCases | None = Field(
        default=None, description="after leave, deactivation, a move or a role change: what happened to the "
                                  "unfinished cases assigned to them (reassigned in an `assign` point, else pooled)")


class StaffList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [STAFF_EXAMPLE], "next_cursor": None}]})

    items: list[StaffView]
    next_cursor: str | None = None


class NewPoint(_Body):
    level: Level = Field(examples=["village"])
    region_code: str = Field(pattern=r"^\d{12}$", examples=["361130102201"],
                             description="an existing, active region of the point's level inside your jurisdiction")
    name: str | None = Field(default=None, min_length=1, max_length=100, examples=["白石村便民服务站"],
                             description="default: the region's name and the kind of point")
    address: str | None = Field(default=None, max_length=200, examples=["婺源县秋口镇白石村"])
    hours: str | None = Field(default=None, max_length=100, examples=["周一至周五 9:00–11:30, 14:30–17:00"])
    routing_mode: RoutingMode = Field(default="assign", examples=["assign"])


class PointChanges(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=100, examples=["白石村便民服务站"])
    address: str | None = Field(default=None, max_length=200, examples=["婺源县秋口镇白石村 1 号"])
    hours: str | None = Field(default=None, max_length=100, examples=["周一至周六 9:00–17:00"])
    routing_mode: RoutingMode | None = Field(default=None, examples=["pool"])


class NewWindow(_Body):
    name: str = Field(min_length=1, max_length=20, examples=["窗口4"])
    categories: list[Category] = Field(default_factory=list, max_length=50, examples=[["market-regulation"]],
                                       description="matter categories of the catalogue; [] = every category")


class WindowChanges(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=20, examples=["企业开办窗口"])
    categories: list[Category] | None = Field(default=None, max_length=50,
                                              examples=[["market-regulation", "housing-construction"]])


class NewStaff(_Body):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$",
                          examples=["clerk-361130-4"])
    display_name: str = Field(min_length=1, max_length=50, examples=["王芳"])
    role: Role = Field(examples=["clerk"])
    service_point_id: int = Field(ge=1, le=MAX_ID, examples=[1])
    window_id: int | None = Field(default=None, ge=1, le=MAX_ID, examples=[2],
                                  description="one of the point's active windows; none: handles every category")
    password: str = Field(min_length=1, max_length=128, examples=["Chuangkou#2026"],
                          description="initial password: the staff password policy applies")


class StaffChanges(_Body):
    display_name: str | None = Field(default=None, min_length=1, max_length=50, examples=["王芳"])
    role: Role | None = Field(default=None, examples=["reviewer"])
    service_point_id: int | None = Field(default=None, ge=1, le=MAX_ID, examples=[1])
    window_id: int | None = Field(default=None, ge=1, le=MAX_ID, examples=[3],
                                  description="null: no window (every category)")
    status: DutyStatus | None = Field(default=None, examples=["on_leave"])


def _changes(body: BaseModel) -> dict[str, Any]:
    """The fields the request sent (an explicit null included: it means "none")."""
    return body.model_dump(exclude_unset=True)


# ---------------------------------------------------------------- points

@router.get("/service-points", summary="Service points of your jurisdiction", response_model=PointList,
            responses=errors(401, 403, 422))
def list_points(region_code: str | None = Query(default=None, pattern=r"^\d{12}$", examples=["361130102000"],
                                                description="only this region's subtree"),
                level: Level | None = Query(default=None, examples=["town"]),
                include_inactive: bool = IncludeInactive, cursor: str | None = Cursor,
                admin: Principal = Depends(require_admin), session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.list_points(session, actor=admin, region_code=region_code, level=level,
                              include_inactive=include_inactive, cursor=cursor)


@router.post("/service-points", status_code=status.HTTP_201_CREATED, response_model=PointView,
             summary="Open a service point (政务服务中心 / 便民服务中心 / 便民服务站)",
             description="The region must exist, be active, lie in your jurisdiction and be of the point's level "
                         "(a village station on a village code). 409 `service_point_exists` if the region already "
                         "has an active point of that level. New cases route to it at once.",
             responses=errors(401, 403, 409, 422))
def create_point(body: NewPoint, admin: Principal = Depends(require_admin),
                 session: Session = Depends(get_session)) -> dict[str, Any]:
    point = points.create_point(session, actor=admin, **body.model_dump())
    return points.point_view(point)


@router.get("/service-points/{point_id}", summary="One service point with its windows", response_model=PointDetail,
            responses=errors(401, 403, 404, 422))
def get_point(point_id: int = PointId, admin: Principal = Depends(require_admin),
              session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.get_point_view(session, actor=admin, point_id=point_id)


@router.patch("/service-points/{point_id}", summary="Edit a point: name, address, opening hours, routing mode",
              response_model=PointView, responses=errors(401, 403, 404, 409, 422))
def edit_point(body: PointChanges, point_id: int = PointId, admin: Principal = Depends(require_admin),
               session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.point_view(points.edit_point(session, actor=admin, point_id=point_id, changes=_changes(body)))


@router.post("/service-points/{point_id}/deactivate", summary="Deactivate a point (and its windows)",
             description="Refused (409) while active staff are bound to it (`point_has_active_staff`) or cases are "
                         "unfinished there (`point_has_open_cases`). No new case routes to it afterwards.",
             response_model=PointView, responses=errors(401, 403, 404, 409, 422))
def deactivate_point(point_id: int = PointId, admin: Principal = Depends(require_admin),
                     session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.point_view(points.deactivate_point(session, actor=admin, point_id=point_id))


@router.post("/service-points/{point_id}/reactivate", summary="Open a deactivated point again",
             description="New cases route to it again; its windows stay closed until each is reopened. Refused "
                         "(409 `service_point_exists`) while another active point serves its region at its level, "
                         "or (422 `inactive_region_code`) when its region is no longer active.",
             response_model=PointView, responses=errors(401, 403, 404, 409, 422))
def reactivate_point(point_id: int = PointId, admin: Principal = Depends(require_admin),
                     session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.point_view(points.reactivate_point(session, actor=admin, point_id=point_id))


# ---------------------------------------------------------------- windows

@router.get("/service-points/{point_id}/windows", summary="A point's windows and the categories each handles",
            response_model=WindowList, responses=errors(401, 403, 404, 422))
def list_windows(point_id: int = PointId, include_inactive: bool = IncludeInactive,
                 admin: Principal = Depends(require_admin), session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.list_windows(session, actor=admin, point_id=point_id, include_inactive=include_inactive)


@router.post("/service-points/{point_id}/windows", status_code=status.HTTP_201_CREATED, response_model=WindowView,
             summary="Open a window (counter) at a point",
             description="`categories`: the matter categories of the catalogue it handles (422 "
                         "`unknown_category` names any other); [] handles every category.",
             responses=errors(401, 403, 404, 409, 422))
def create_window(body: NewWindow, point_id: int = PointId, admin: Principal = Depends(require_admin),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    window = points.create_window(session, actor=admin, point_id=point_id, name=body.name, categories=body.categories)
    return points.window_view(window)


@router.patch("/windows/{window_id}", summary="Rename a window or change its categories", response_model=WindowView,
              responses=errors(401, 403, 404, 409, 422))
def edit_window(body: WindowChanges, window_id: int = WindowId, admin: Principal = Depends(require_admin),
                session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.window_view(points.edit_window(session, actor=admin, window_id=window_id, changes=_changes(body)))


@router.post("/windows/{window_id}/deactivate", summary="Close a window",
             description="Refused (409 `window_has_active_staff`) while active staff are bound to it.",
             response_model=WindowView, responses=errors(401, 403, 404, 409, 422))
def deactivate_window(window_id: int = WindowId, admin: Principal = Depends(require_admin),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.window_view(points.deactivate_window(session, actor=admin, window_id=window_id))


@router.post("/windows/{window_id}/reactivate", summary="Reopen a closed window",
             description="Under its old name and categories. Refused (409) while its point is deactivated "
                         "(`service_point_inactive`) or another open window of the point has its name "
                         "(`window_exists`).",
             response_model=WindowView, responses=errors(401, 403, 404, 409, 422))
def reactivate_window(window_id: int = WindowId, admin: Principal = Depends(require_admin),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.window_view(points.reactivate_window(session, actor=admin, window_id=window_id))


# ---------------------------------------------------------------- staff

@router.get("/staff", summary="Staff of your jurisdiction", response_model=StaffList,
            responses=errors(401, 403, 404, 422))
def list_staff(service_point_id: int | None = Query(default=None, ge=1, le=MAX_ID, examples=[1]),
               role: Role | None = Query(default=None, examples=["clerk"]),
               include_inactive: bool = IncludeInactive, cursor: str | None = Cursor,
               admin: Principal = Depends(require_admin), session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.list_staff(session, actor=admin, service_point_id=service_point_id, role=role,
                             include_inactive=include_inactive, cursor=cursor)


@router.post("/staff", status_code=status.HTTP_201_CREATED, response_model=StaffView,
             summary="Create a staff account bound to a point (and optionally a window)",
             description="The point must be active (409 `service_point_inactive`) and inside your jurisdiction "
                         "(403 `outside_jurisdiction`); the window one of its active windows; the initial password "
                         "must meet the password policy (422 `weak_password`); 409 `username_taken`.",
             responses=errors(401, 403, 409, 422))
def create_staff(body: NewStaff, admin: Principal = Depends(require_admin),
                 session: Session = Depends(get_session)) -> dict[str, Any]:
    staff = points.create_staff(session, actor=admin, **body.model_dump())
    return points.staff_view_of(session, staff)


@router.get("/staff/{staff_id}", summary="One staff account", response_model=StaffView,
            responses=errors(401, 403, 404, 422))
def get_staff(staff_id: int = StaffId, admin: Principal = Depends(require_admin),
              session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.get_staff_view(session, actor=admin, staff_id=staff_id)


@router.patch("/staff/{staff_id}", summary="Edit a staff account: name, role, point, window, duty status",
              description="Going on leave, moving to another point, or a role other than clerk/reviewer releases "
                        "the person's unfinished cases: in an `assign` point each goes to the least-loaded "
                        "qualified clerk (event `reassign`), otherwise to the point's pool (event "
                        "`return_to_pool`); `released_cases` lists them.",
              response_model=StaffView, responses=errors(401, 403, 404, 409, 422))
def edit_staff(body: StaffChanges, staff_id: int = StaffId, admin: Principal = Depends(require_admin),
               session: Session = Depends(get_session)) -> dict[str, Any]:
    staff, released = points.edit_staff(session, actor=admin, staff_id=staff_id, changes=_changes(body))
    return points.staff_view_of(session, staff, released)


@router.post("/staff/{staff_id}/leave", summary="Put a staff member on leave (their cases are released)",
             response_model=StaffView, responses=errors(401, 403, 404, 409, 422))
def staff_leave(staff_id: int = StaffId, admin: Principal = Depends(require_admin),
                session: Session = Depends(get_session)) -> dict[str, Any]:
    staff, released = points.set_staff_status(session, actor=admin, staff_id=staff_id, status="on_leave")
    return points.staff_view_of(session, staff, released)


@router.post("/staff/{staff_id}/return", summary="A staff member is back on duty", response_model=StaffView,
             responses=errors(401, 403, 404, 409, 422))
def staff_return(staff_id: int = StaffId, admin: Principal = Depends(require_admin),
                 session: Session = Depends(get_session)) -> dict[str, Any]:
    staff, released = points.set_staff_status(session, actor=admin, staff_id=staff_id, status="on_duty")
    return points.staff_view_of(session, staff, released)


@router.post("/staff/{staff_id}/deactivate", summary="Deactivate a staff account (sign-in ends, cases released)",
             response_model=StaffView, responses=errors(401, 403, 404, 409, 422))
def deactivate_staff(staff_id: int = StaffId, admin: Principal = Depends(require_admin),
                     session: Session = Depends(get_session)) -> dict[str, Any]:
    staff, released = points.deactivate_staff(session, actor=admin, staff_id=staff_id)
    return points.staff_view_of(session, staff, released)


@router.post("/staff/{staff_id}/reactivate", summary="Let a deactivated staff account sign in again",
             description="With its password; sessions ended by the deactivation stay ended. Refused (409) while "
                         "its point (`service_point_inactive`) or its window (`window_inactive`) is closed.",
             response_model=StaffView, responses=errors(401, 403, 404, 409, 422))
def reactivate_staff(staff_id: int = StaffId, admin: Principal = Depends(require_admin),
                     session: Session = Depends(get_session)) -> dict[str, Any]:
    return points.staff_view_of(session, points.reactivate_staff(session, actor=admin, staff_id=staff_id))
