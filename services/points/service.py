"""Service points, their windows and their staff: the public list of points serving a region, and
administration (create, edit, deactivate) inside an administrator's jurisdiction.

Rules an administrator meets:
- jurisdiction: an admin acts only on points whose region lies in the subtree of their own
  point's region (a county admin: that county's centre, towns and villages). A point, window or
  staff member outside it is "not found" (404) when named in the path, and 403
  `outside_jurisdiction` when named in a body (a region code, a point to bind staff to);
- a point serves an existing, active region of its own level (a village station on a village
  code), and a region has at most one active point per level;
- a window's categories are matter categories of the catalogue ([]: every category);
- staff are bound to an active point (409 `service_point_inactive` otherwise) and, optionally, to
  one of its active windows; a new password meets the staff password policy;
- a point is deactivated only without active staff and unfinished cases, a window only without
  active staff: move them first (409 says which);
- a staff member who goes on leave, is deactivated, moves to another point or stops being a
  clerk or reviewer gives up their unfinished cases (services/points/reassignment.py);
- changes to points (which the routing index holds) mark the index changed; windows and staff
  are read per decision, so their changes need no rebuild of the index.
Nothing is written when a rule refuses a change: every check runs before the first write.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services.accounts.passwords import hash_password
from services.accounts.principal import Principal
from services.accounts.principal_cache import principal_changed
from services.accounts.service import WeakPassword, password_problems
from services.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.matters import service as matters
from services.pagination import decode_cursor, encode_cursor
from services.points import repository
from services.points.models import (POINT_LEVELS, ROUTING_MODES, STAFF_ROLES, STAFF_STATUSES, ServicePoint,
                                    ServiceWindow, Staff)
from services.points.reassignment import ReleaseReport, release_assignments
from services.points.repository import active_points_in
from services.regions.repository import ancestors, get_region, subtree_prefix
from services.routing.index import mark_changed
from services.routing.service import POINT_KINDS, InactiveRegion, UnknownRegion, category_label

__all__ = ["points_serving", "CLI_OPERATOR", "create_point", "edit_point", "deactivate_point", "get_point_view",
           "list_points", "create_window", "edit_window", "deactivate_window", "list_windows", "create_staff",
           "edit_staff", "set_staff_status", "deactivate_staff", "list_staff", "get_staff_view", "known_categories",
           "point_view", "window_view", "staff_view"]

_LEVEL_RANK = {"village": 0, "town": 1, "county": 2}
REGION_LEVEL_LABELS = {"province": "省级", "city": "市级", "county": "县级", "town": "乡镇级", "village": "村级"}
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
# Roles whose assigned cases stay with them; anyone else gives their cases up.
CASE_ROLES = ("clerk", "reviewer")
PAGE_SIZE = 50

# The command line acts with the database's authority, on every region.
CLI_OPERATOR = Principal(kind="system", account_id=0, roles=("admin",), name="命令行管理员")


# ---------------------------------------------------------------- errors

class OutsideJurisdiction(Forbidden):
    code = "outside_jurisdiction"
    message = "不在您的管辖范围内"


class ServicePointNotFound(NotFound):
    code = "service_point_not_found"
    message = "服务点不存在"


class WindowNotFound(NotFound):
    code = "window_not_found"
    message = "窗口不存在"


class StaffNotFound(NotFound):
    code = "staff_not_found"
    message = "工作人员不存在"


class UnknownServicePoint(InvalidInput):
    code = "unknown_service_point"
    message = "服务点不存在"


class UnknownWindow(InvalidInput):
    code = "unknown_window"
    message = "窗口不存在"


class LevelMismatch(InvalidInput):
    code = "level_mismatch"
    message = "服务点层级与行政区划层级不符"


class UnknownCategory(InvalidInput):
    code = "unknown_category"
    message = "事项类别不在事项目录中"


class WindowNotAtPoint(InvalidInput):
    code = "window_not_at_point"
    message = "该窗口不属于所选服务点"


class ServicePointExists(Conflict):
    code = "service_point_exists"
    message = "该行政区划已有同级的在用服务点"


class ServicePointInactive(Conflict):
    code = "service_point_inactive"
    message = "服务点已停用"


class WindowExists(Conflict):
    code = "window_exists"
    message = "该服务点已有同名的在用窗口"


class WindowInactive(Conflict):
    code = "window_inactive"
    message = "窗口已停用"


class StaffInactive(Conflict):
    code = "staff_inactive"
    message = "该工作人员账号已停用"


class UsernameTaken(Conflict):
    code = "username_taken"
    message = "用户名已被使用"


class PointHasActiveStaff(Conflict):
    code = "point_has_active_staff"
    message = "服务点仍有在用的工作人员账号，请先调离或停用"


class PointHasOpenCases(Conflict):
    code = "point_has_open_cases"
    message = "服务点仍有未办结的办件，请先转办"


class WindowHasActiveStaff(Conflict):
    code = "window_has_active_staff"
    message = "窗口仍绑定在用的工作人员，请先调整其窗口"


class NotOnYourself(Conflict):
    code = "not_on_yourself"
    message = "不能停用自己的账号或修改自己的角色"


def _field(field: str, reason: str, message: str | None = None) -> dict[str, str]:
    return {"field": field, "reason": reason, **({"message": message} if message else {})}


# ---------------------------------------------------------------- public: points serving a region

def points_serving(session: Session, *, region_code: str) -> list[dict[str, Any]]:
    """The points whose region contains this region, nearest level first."""
    region = get_region(session, code=region_code)
    if region is None:
        raise UnknownRegion(detail=[{"field": "region_code", "reason": "unknown"}])
    if not region.active:
        raise InactiveRegion(detail=[{"field": "region_code", "reason": "inactive"}])
    codes = [item.code for item in ancestors(session, code=region_code)] + [region_code]
    points = sorted(active_points_in(session, region_codes=codes), key=lambda p: (_LEVEL_RANK.get(p.level, 9), p.id))
    return [{"id": p.id, "name": p.name, "level": p.level, "region_code": p.region_code, "address": p.address,
             "hours": p.hours} for p in points]


# ---------------------------------------------------------------- jurisdiction

def _scope(actor: Principal) -> str:
    """The region-code prefix the actor administers ("" for the command line: everything)."""
    if actor.kind == "system":
        return ""
    if actor.kind != "staff" or "admin" not in actor.roles:
        raise matters.AdminOnly()
    if not actor.jurisdiction_code:
        raise OutsideJurisdiction("您的账号未绑定服务点，无管辖范围")
    return subtree_prefix(actor.jurisdiction_code)


def _inside(prefix: str, region_code: str) -> bool:
    return region_code.startswith(prefix)


def _point_in_scope(session: Session, prefix: str, point_id: int) -> ServicePoint:
    """A point named in the path: 404 if unknown or outside the jurisdiction."""
    point = repository.get_point(session, point_id=point_id)
    if point is None or not _inside(prefix, point.region_code):
        raise ServicePointNotFound(detail={"service_point_id": point_id})
    return point


def _window_in_scope(session: Session, prefix: str, window_id: int) -> tuple[ServiceWindow, ServicePoint]:
    window = repository.get_window(session, window_id=window_id)
    point = repository.get_point(session, point_id=window.service_point_id) if window else None
    if window is None or point is None or not _inside(prefix, point.region_code):
        raise WindowNotFound(detail={"window_id": window_id})
    return window, point


def _staff_in_scope(session: Session, prefix: str, staff_id: int) -> tuple[Staff, ServicePoint]:
    staff = repository.get_staff(session, staff_id=staff_id)
    point = repository.get_point(session, point_id=staff.service_point_id) if staff else None
    if staff is None or point is None or not _inside(prefix, point.region_code):
        raise StaffNotFound(detail={"staff_id": staff_id})
    return staff, point


def _bindable_point(session: Session, prefix: str, point_id: Any, *, field: str = "service_point_id") -> ServicePoint:
    """A point named in a body, to bind staff to: 422 unknown, 403 outside, 409 deactivated."""
    point = repository.get_point(session, point_id=point_id) if _is_id(point_id) else None
    if point is None:
        raise UnknownServicePoint(detail=[_field(field, "unknown")])
    if not _inside(prefix, point.region_code):
        raise OutsideJurisdiction("该服务点不在您的管辖范围内", detail=[_field(field, "outside_jurisdiction")])
    if not point.active:
        raise ServicePointInactive("服务点已停用，不能绑定工作人员", detail=[_field(field, "inactive")])
    return point


def _bindable_window(session: Session, point: ServicePoint, window_id: Any) -> ServiceWindow:
    window = repository.get_window(session, window_id=window_id) if _is_id(window_id) else None
    if window is None:
        raise UnknownWindow(detail=[_field("window_id", "unknown")])
    if window.service_point_id != point.id:
        raise WindowNotAtPoint(detail=[_field("window_id", "not_at_point")])
    if not window.active:
        raise WindowInactive("窗口已停用，不能绑定工作人员", detail=[_field("window_id", "inactive")])
    return window


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _only(changes: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InvalidInput("有不可修改的字段", detail=[_field(key, "not_editable") for key in unknown])


def _text(value: Any, *, field: str, max_length: int, label: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= max_length:
        raise InvalidInput(f"{label}应为 1–{max_length} 个字", detail=[_field(field, "invalid")])
    return text


def _optional_text(value: Any, *, field: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value.strip()) > max_length:
        raise InvalidInput(f"最多 {max_length} 个字", detail=[_field(field, "too_long")])
    return value.strip()


def _one_of(value: Any, allowed: tuple[str, ...], *, field: str, label: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"{label}必须是 {' / '.join(allowed)} 之一",
                           detail=[_field(field, "one_of:" + ",".join(allowed))])
    return value


# ---------------------------------------------------------------- views

def point_view(point: ServicePoint, *, windows: list[ServiceWindow] | None = None) -> dict[str, Any]:
    view = {"id": point.id, "name": point.name, "level": point.level, "kind": POINT_KINDS.get(point.level, ""),
            "region_code": point.region_code, "address": point.address, "hours": point.hours,
            "routing_mode": point.routing_mode, "active": point.active}
    if windows is not None:
        view["windows"] = [window_view(window) for window in windows]
    return view


def window_view(window: ServiceWindow) -> dict[str, Any]:
    return {"id": window.id, "service_point_id": window.service_point_id, "name": window.name,
            "categories": list(window.categories or []),
            "category_labels": [category_label(category) for category in window.categories or []],
            "active": window.active}


def staff_view(staff: Staff, point: ServicePoint, window: ServiceWindow | None,
               released: ReleaseReport | None = None) -> dict[str, Any]:
    view = {"id": staff.id, "username": staff.username, "display_name": staff.display_name, "role": staff.role,
            "service_point": {"id": point.id, "name": point.name, "level": point.level,
                              "region_code": point.region_code},
            "window": {"id": window.id, "name": window.name} if window else None,
            "status": staff.status, "active": staff.active}
    if released is not None:
        view["released_cases"] = released.as_dict()
    return view


def _staff_view(session: Session, staff: Staff, released: ReleaseReport | None = None) -> dict[str, Any]:
    point = repository.get_point(session, point_id=staff.service_point_id)
    window = repository.get_window(session, window_id=staff.window_id) if staff.window_id else None
    return staff_view(staff, point, window, released)


def _page(items: list, limit: int, key) -> tuple[list, str | None]:
    page = items[:limit]
    return page, (encode_cursor(key(page[-1])) if len(items) > limit else None)


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    value = decode_cursor(cursor)
    if not _is_id(value):
        raise InvalidInput("分页游标无效", detail=[_field("cursor", "invalid")])
    return value


# ---------------------------------------------------------------- points

def create_point(session: Session, *, actor: Principal, level: str, region_code: str, name: str | None = None,
                 address: str | None = None, hours: str | None = None, routing_mode: str = "assign") -> ServicePoint:
    """A new point serving `region_code` (which must exist, be active, lie in the actor's
    jurisdiction and be of the point's level); at most one active point per region and level."""
    prefix = _scope(actor)
    level = _one_of(level, POINT_LEVELS, field="level", label="服务点层级")
    routing_mode = _one_of(routing_mode, ROUTING_MODES, field="routing_mode", label="分配方式")
    region = get_region(session, code=region_code) if isinstance(region_code, str) else None
    if region is None:
        raise UnknownRegion(detail=[_field("region_code", "unknown")])
    if not region.active:
        raise InactiveRegion(detail=[_field("region_code", "inactive")])
    if not _inside(prefix, region.code):
        raise OutsideJurisdiction("该行政区划不在您的管辖范围内", detail=[_field("region_code", "outside_jurisdiction")])
    if region.level != level:
        raise LevelMismatch(f"{region.name}（{region.code}）是{REGION_LEVEL_LABELS.get(region.level, region.level)}"
                            f"行政区划，不能设立{POINT_KINDS[level]}",
                            detail=[_field("level", "level_mismatch"),
                                    {"field": "region_code", "reason": "level_mismatch", "region_level": region.level}])
    name = _text(name, field="name", max_length=100, label="服务点名称") if name is not None \
        else f"{region.name}{POINT_KINDS[level]}"[:100]
    address = _optional_text(address, field="address", max_length=200)
    hours = _optional_text(hours, field="hours", max_length=100)
    point = ServicePoint(name=name, level=level, region_code=region.code, address=address, hours=hours,
                         routing_mode=routing_mode)
    _store_active_point(session, point)
    return point


def _store_active_point(session: Session, point: ServicePoint) -> None:
    """Store a new point or reopen a stopped one: at most one active point per region and level,
    also when another request creates or reopens one at the same moment. Routing sees it from
    then on. (Active only once checked: the check's query would flush it.)"""
    existing = repository.active_point_for(session, region_code=point.region_code, level=point.level)
    if existing is not None:
        raise ServicePointExists(detail={"existing_point_id": existing.id, "existing_point_name": existing.name})
    try:
        with session.begin_nested():
            point.active = True
            session.add(point)
    except IntegrityError as error:
        raise ServicePointExists() from error
    mark_changed(session)


def edit_point(session: Session, *, actor: Principal, point_id: int, changes: dict[str, Any]) -> ServicePoint:
    """Change a point's name, address, opening hours or routing mode (region and level are what
    the point *is*: another region is another point)."""
    prefix = _scope(actor)
    _only(changes, {"name", "address", "hours", "routing_mode"})
    point = _point_in_scope(session, prefix, point_id)
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = _text(changes["name"], field="name", max_length=100, label="服务点名称")
    for key, limit in (("address", 200), ("hours", 100)):
        if key in changes:
            values[key] = _optional_text(changes[key], field=key, max_length=limit)
    if "routing_mode" in changes:
        values["routing_mode"] = _one_of(changes["routing_mode"], ROUTING_MODES, field="routing_mode", label="分配方式")
    if not point.active:
        raise ServicePointInactive(detail={"service_point_id": point.id})
    for key, value in values.items():
        setattr(point, key, value)
    session.add(point)
    session.flush()
    mark_changed(session)
    return point


def deactivate_point(session: Session, *, actor: Principal, point_id: int) -> ServicePoint:
    """Stop a point: no new case is routed to it. Refused while staff are bound to it or cases
    are still open there. Its windows stop with it. Again on a stopped point: nothing changes."""
    prefix = _scope(actor)
    point = _point_in_scope(session, prefix, point_id)
    if not point.active:
        return point
    staff = repository.active_staff_of_point(session, service_point_id=point.id)
    if staff:
        raise PointHasActiveStaff(detail={"staff": [{"id": s.id, "username": s.username} for s in staff]})
    open_cases = repository.open_case_count_at_point(session, service_point_id=point.id)
    if open_cases:
        raise PointHasOpenCases(detail={"open_cases": open_cases})
    for window in repository.list_windows(session, service_point_id=point.id):
        window.active = False
        session.add(window)
    point.active = False
    session.add(point)
    session.flush()
    mark_changed(session)
    return point


def reactivate_point(session: Session, *, actor: Principal, point_id: int) -> ServicePoint:
    """Open a stopped point again: new cases route to it once more. Its windows stay closed until
    each is reopened (which of them should open is the administrator's call). Refused while its
    region is inactive or another active point now serves the region at the same level. Again
    on an active point: nothing changes."""
    point = _point_in_scope(session, _scope(actor), point_id)
    if point.active:
        return point
    region = get_region(session, code=point.region_code)
    if region is None or not region.active:
        raise InactiveRegion(detail=[_field("region_code", "inactive")])
    _store_active_point(session, point)
    return point


def get_point_view(session: Session, *, actor: Principal, point_id: int) -> dict[str, Any]:
    """One point with its windows (deactivated ones too)."""
    point = _point_in_scope(session, _scope(actor), point_id)
    return point_view(point, windows=repository.list_windows(session, service_point_id=point.id, include_inactive=True))


def list_points(session: Session, *, actor: Principal, region_code: str | None = None, level: str | None = None,
                include_inactive: bool = False, cursor: str | None = None, limit: int = PAGE_SIZE) -> dict[str, Any]:
    """The points of the actor's jurisdiction (or of a subtree of it), by id."""
    prefix = _scope(actor)
    if region_code is not None:
        region = get_region(session, code=region_code)
        if region is None:
            raise UnknownRegion(detail=[_field("region_code", "unknown")])
        if not _inside(prefix, region.code):
            raise OutsideJurisdiction("该行政区划不在您的管辖范围内", detail=[_field("region_code", "outside_jurisdiction")])
        prefix = subtree_prefix(region.code)
    if level is not None:
        _one_of(level, POINT_LEVELS, field="level", label="服务点层级")
    rows = repository.list_points(session, region_prefix=prefix, level=level, include_inactive=include_inactive,
                                  after_id=_after(cursor), limit=limit + 1)
    page, next_cursor = _page(rows, limit, lambda point: point.id)
    return {"items": [point_view(point) for point in page], "next_cursor": next_cursor}


# ---------------------------------------------------------------- windows

def known_categories(session: Session) -> set[str]:
    """The matter categories of the catalogue in force (and of the shipped files)."""
    categories = {matter.definition.category for matter in matters.default_catalogue().matters.values()}
    categories.update(item["category"] for item in matters.list_matters(session, limit=100_000)["items"])
    return categories


def _categories(session: Session, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or any(not isinstance(item, str) for item in value) or len(value) > 50:
        raise InvalidInput("事项类别应为类别代码的列表（空列表：全部类别）", detail=[_field("categories", "list_of_strings")])
    known = known_categories(session)
    unknown = [_field(f"categories[{index}]", "unknown_category", f"未知的事项类别：{item}")
               for index, item in enumerate(value) if item not in known]
    if unknown:
        raise UnknownCategory(detail=unknown)
    return list(dict.fromkeys(value))  # without repeats, in the order given


def create_window(session: Session, *, actor: Principal, point_id: int, name: str,
                  categories: list[str] | None = None) -> ServiceWindow:
    """A new window of an active point, handling the given matter categories ([]: all)."""
    point = _point_in_scope(session, _scope(actor), point_id)
    name = _text(name, field="name", max_length=20, label="窗口名称")
    categories = _categories(session, categories or [])
    if not point.active:
        raise ServicePointInactive("服务点已停用，不能新设窗口", detail={"service_point_id": point.id})
    window = ServiceWindow(service_point_id=point.id, name=name, categories=categories)
    _store_open_window(session, window)
    return window


def _store_open_window(session: Session, window: ServiceWindow) -> None:
    """Store a new window or reopen a closed one: no two open windows of a point share a name, also
    when another request opens one at the same moment. (Active only once checked, as for points.)"""
    if repository.active_window_named(session, service_point_id=window.service_point_id, name=window.name) is not None:
        raise WindowExists(detail=[_field("name", "exists")])
    try:
        with session.begin_nested():
            window.active = True
            session.add(window)
    except IntegrityError as error:
        raise WindowExists(detail=[_field("name", "exists")]) from error


def edit_window(session: Session, *, actor: Principal, window_id: int, changes: dict[str, Any]) -> ServiceWindow:
    """Rename a window or change the categories it handles. Cases already assigned stay."""
    window, point = _window_in_scope(session, _scope(actor), window_id)
    _only(changes, {"name", "categories"})
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = _text(changes["name"], field="name", max_length=20, label="窗口名称")
    if "categories" in changes:
        values["categories"] = _categories(session, changes["categories"])
    if not window.active:
        raise WindowInactive(detail={"window_id": window.id})
    if "name" in values and values["name"] != window.name and repository.active_window_named(
            session, service_point_id=point.id, name=values["name"]) is not None:
        raise WindowExists(detail=[_field("name", "exists")])
    for key, value in values.items():
        setattr(window, key, value)
    session.add(window)
    session.flush()
    return window


def deactivate_window(session: Session, *, actor: Principal, window_id: int) -> ServiceWindow:
    """Close a window; refused while active staff are bound to it. Again: nothing changes."""
    window, _point = _window_in_scope(session, _scope(actor), window_id)
    if not window.active:
        return window
    staff = repository.active_staff_at_window(session, window_id=window.id)
    if staff:
        raise WindowHasActiveStaff(detail={"staff": [{"id": s.id, "username": s.username} for s in staff]})
    window.active = False
    session.add(window)
    session.flush()
    return window


def reactivate_window(session: Session, *, actor: Principal, window_id: int) -> ServiceWindow:
    """Reopen a closed window of an active point, under its old name and categories (refused
    while another open window of the point has that name). Again: nothing changes."""
    window, point = _window_in_scope(session, _scope(actor), window_id)
    if window.active:
        return window
    if not point.active:
        raise ServicePointInactive("服务点已停用，请先恢复服务点", detail={"service_point_id": point.id})
    _store_open_window(session, window)
    return window


def list_windows(session: Session, *, actor: Principal, point_id: int,
                 include_inactive: bool = False) -> dict[str, Any]:
    point = _point_in_scope(session, _scope(actor), point_id)
    windows = repository.list_windows(session, service_point_id=point.id, include_inactive=include_inactive)
    return {"items": [window_view(window) for window in windows], "next_cursor": None}


# ---------------------------------------------------------------- staff

def create_staff(session: Session, *, actor: Principal, username: str, display_name: str, role: str,
                 service_point_id: int, password: str, window_id: int | None = None) -> Staff:
    """A new staff account bound to an active point of the actor's jurisdiction (and optionally
    one of its windows), with an initial password that meets the password policy."""
    prefix = _scope(actor)
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise InvalidInput("用户名应为 3–64 位小写字母、数字或 . _ -，以字母或数字开头",
                           detail=[_field("username", "invalid")])
    display_name = _text(display_name, field="display_name", max_length=50, label="姓名")
    role = _one_of(role, STAFF_ROLES, field="role", label="角色")
    problems = password_problems(password if isinstance(password, str) else "", username=username)
    if problems:
        raise WeakPassword("初始密码不符合复杂度要求", detail=[{**problem, "field": "password"} for problem in problems])
    point = _bindable_point(session, prefix, service_point_id)
    window = _bindable_window(session, point, window_id) if window_id is not None else None
    if repository.get_staff_by_username(session, username=username) is not None:
        raise UsernameTaken(detail=[_field("username", "taken")])
    staff = Staff(username=username, display_name=display_name, role=role, service_point_id=point.id,
                  window_id=window.id if window else None, password_hash=hash_password(password))
    try:
        with session.begin_nested():
            session.add(staff)
    except IntegrityError as error:
        raise UsernameTaken(detail=[_field("username", "taken")]) from error
    return staff


def edit_staff(session: Session, *, actor: Principal, staff_id: int,
               changes: dict[str, Any]) -> tuple[Staff, ReleaseReport | None]:
    """Change a staff member's name, role, point, window or duty status. Someone who goes on
    leave, moves to another point or stops being a clerk or reviewer gives up their unfinished
    cases (returned with the staff member). Returns (staff, what happened to their cases)."""
    prefix = _scope(actor)
    _only(changes, {"display_name", "role", "service_point_id", "window_id", "status"})
    staff, current_point = _staff_in_scope(session, prefix, staff_id)
    values: dict[str, Any] = {}
    if "display_name" in changes:
        values["display_name"] = _text(changes["display_name"], field="display_name", max_length=50, label="姓名")
    if "role" in changes:
        values["role"] = _one_of(changes["role"], STAFF_ROLES, field="role", label="角色")
    if "status" in changes:
        values["status"] = _one_of(changes["status"], STAFF_STATUSES, field="status", label="在岗状态")
    if not staff.active:
        raise StaffInactive(detail={"staff_id": staff.id})
    if actor.kind == "staff" and actor.account_id == staff.id and values.get("role", staff.role) != staff.role:
        raise NotOnYourself("不能修改自己的角色")
    point = current_point
    if "service_point_id" in changes:
        point = _bindable_point(session, prefix, changes["service_point_id"])
        values["service_point_id"] = point.id
    if "window_id" in changes:
        window_id = changes["window_id"]
        values["window_id"] = _bindable_window(session, point, window_id).id if window_id is not None else None
    elif point.id != current_point.id and staff.window_id is not None:
        values["window_id"] = None  # the old point's window stays behind

    moved = point.id != current_point.id
    leaves = values.get("status") == "on_leave" and staff.status != "on_leave"
    stops = staff.role in CASE_ROLES and values.get("role", staff.role) not in CASE_ROLES
    for key, value in values.items():
        setattr(staff, key, value)
    session.add(staff)
    session.flush()
    principal_changed(session, principal_key=f"staff:{staff.id}")  # every API process sees it at once
    released = None
    if moved or leaves or stops:
        why = (f"{staff.display_name} 调往 {point.name}" if moved else
               f"{staff.display_name} 请假" if leaves else f"{staff.display_name} 不再担任窗口或审查人员")
        released = release_assignments(session, staff=staff, why=why, actor=_event_actor(actor))
    return staff, released


def set_staff_status(session: Session, *, actor: Principal, staff_id: int,
                     status: str) -> tuple[Staff, ReleaseReport | None]:
    """On leave (their unfinished cases are released) or back on duty."""
    return edit_staff(session, actor=actor, staff_id=staff_id, changes={"status": status})


def deactivate_staff(session: Session, *, actor: Principal, staff_id: int) -> tuple[Staff, ReleaseReport]:
    """Deactivate an account: it can no longer sign in, its sessions end, and its unfinished
    cases are released. Again on a deactivated account: nothing changes."""
    from services.accounts import tokens

    staff, _point = _staff_in_scope(session, _scope(actor), staff_id)
    if not staff.active:
        return staff, ReleaseReport()
    if actor.kind == "staff" and actor.account_id == staff.id:
        raise NotOnYourself("不能停用自己的账号")
    staff.active = False
    session.add(staff)
    session.flush()
    tokens.revoke_principal(session, principal=f"staff:{staff.id}")
    principal_changed(session, principal_key=f"staff:{staff.id}")
    return staff, release_assignments(session, staff=staff, why=f"{staff.display_name} 账号停用",
                                      actor=_event_actor(actor))


def reactivate_staff(session: Session, *, actor: Principal, staff_id: int) -> Staff:
    """Let a deactivated account sign in again (with its password; its old sessions stay ended).
    Its point, and its window if it has one, must be open. Again on an active account: nothing
    changes."""
    staff, point = _staff_in_scope(session, _scope(actor), staff_id)
    if staff.active:
        return staff
    if not point.active:
        raise ServicePointInactive("该工作人员所属服务点已停用，请先恢复服务点或调整所属服务点",
                                   detail={"service_point_id": point.id})
    window = repository.get_window(session, window_id=staff.window_id) if staff.window_id else None
    if window is not None and not window.active:
        raise WindowInactive("该工作人员所在窗口已停用，请先恢复窗口或调整窗口", detail={"window_id": window.id})
    staff.active = True
    session.add(staff)
    session.flush()
    principal_changed(session, principal_key=f"staff:{staff.id}")
    return staff


def _event_actor(actor: Principal) -> Principal | None:
    """Who the history names: the administrator, or the system for the command line."""
    return actor if actor.kind == "staff" else None


def get_staff_view(session: Session, *, actor: Principal, staff_id: int) -> dict[str, Any]:
    staff, point = _staff_in_scope(session, _scope(actor), staff_id)
    window = repository.get_window(session, window_id=staff.window_id) if staff.window_id else None
    return staff_view(staff, point, window)


def staff_view_of(session: Session, staff: Staff, released: ReleaseReport | None = None) -> dict[str, Any]:
    """The API's staff shape for a row just written."""
    return _staff_view(session, staff, released)


def list_staff(session: Session, *, actor: Principal, service_point_id: int | None = None, role: str | None = None,
               include_inactive: bool = False, cursor: str | None = None, limit: int = PAGE_SIZE) -> dict[str, Any]:
    """Staff of the actor's jurisdiction (or of one point of it), by id."""
    prefix = _scope(actor)
    if service_point_id is not None:
        _point_in_scope(session, prefix, service_point_id)
    if role is not None:
        _one_of(role, STAFF_ROLES, field="role", label="角色")
    rows = repository.list_staff(session, region_prefix=prefix, service_point_id=service_point_id, role=role,
                                 include_inactive=include_inactive, after_id=_after(cursor), limit=limit + 1)
    page, next_cursor = _page(rows, limit, lambda row: row[0].id)
    return {"items": [staff_view(staff, point, window) for staff, point, window in page], "next_cursor": next_cursor}

