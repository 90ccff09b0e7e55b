"""`onestop points|windows|staff ...`: administer service points, their windows and their staff
from the command line, with the same rules as the admin API (services/points/service.py). The
command line acts with the database's authority: on every region, recorded as `system` in case
histories."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, Optional

import typer

points_app = typer.Typer(help="Service points: list, show, create, edit, deactivate, reactivate.", no_args_is_help=True,
                         pretty_exceptions_show_locals=False)
windows_app = typer.Typer(help="Windows (counters) of a point and the matter categories each handles.",
                          no_args_is_help=True, pretty_exceptions_show_locals=False)
staff_app = typer.Typer(help="Staff accounts: list, create, edit, leave, return, deactivate, reactivate.", no_args_is_help=True,
                        pretty_exceptions_show_locals=False)


def register(app: typer.Typer) -> None:
    """Add the three command groups to the `onestop` command."""
    app.add_typer(points_app, name="points", help="Service points: list, show, create, edit, deactivate, reactivate.")
    app.add_typer(windows_app, name="windows", help="Windows of a point and the categories each handles.")
    app.add_typer(staff_app, name="staff", help="Staff accounts: list, create, edit, leave, return, deactivate, reactivate.")


def _run(work: Callable[[Any, Any], Any]) -> Any:
    """Run `work(session, operator)` in one transaction; a refused change prints its reason and exits 1."""
    from services.db import session_scope
    from services.errors import OnestopError
    from services.points.service import CLI_OPERATOR

    try:
        with session_scope() as session:
            return work(session, CLI_OPERATOR)
    except OnestopError as error:
        detail = f" {json.dumps(error.detail, ensure_ascii=False)}" if error.detail else ""
        typer.echo(f"error: {error.code}: {error.message}{detail}", err=True)
        raise typer.Exit(1) from None


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _all_pages(fetch: Callable[[str | None], dict[str, Any]]) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = fetch(cursor)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


def _changes(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# ---------------------------------------------------------------- points

@points_app.command("list")
def points_list(region: Optional[str] = typer.Option(None, help="only this region's subtree (12-digit code)"),
                level: Optional[str] = typer.Option(None, help="county | town | village"),
                include_inactive: bool = typer.Option(False, "--all", help="also deactivated points"),
                as_json: bool = typer.Option(False, "--json", help="JSON on stdout")) -> None:
    """List service points: id, level, region, routing mode, name."""
    from services.points import service

    items = _run(lambda session, actor: _all_pages(lambda cursor: service.list_points(
        session, actor=actor, region_code=region, level=level, include_inactive=include_inactive, cursor=cursor)))
    if as_json:
        _print(items)
        return
    for item in items:
        state = "" if item["active"] else "  (停用)"
        typer.echo(f"{item['id']:>5}  {item['level']:<8} {item['region_code']}  {item['routing_mode']:<6} "
                   f"{item['name']}{state}")


@points_app.command("show")
def points_show(point_id: int = typer.Argument(..., help="service point id")) -> None:
    """One point with its windows, as JSON."""
    from services.points import service

    _print(_run(lambda session, actor: service.get_point_view(session, actor=actor, point_id=point_id)))


@points_app.command("create")
def points_create(level: str = typer.Option(..., help="county | town | village (must match the region's level)"),
                  region: str = typer.Option(..., help="the 12-digit region code it serves"),
                  name: Optional[str] = typer.Option(None, help="default: region name + kind of point"),
                  address: Optional[str] = typer.Option(None), hours: Optional[str] = typer.Option(None),
                  mode: str = typer.Option("assign", help="assign (least-loaded clerk) | pool (claimed)")) -> None:
    """Open a service point serving a region; prints it as JSON."""
    from services.points import service

    _print(_run(lambda session, actor: service.point_view(service.create_point(
        session, actor=actor, level=level, region_code=region, name=name, address=address, hours=hours,
        routing_mode=mode))))


@points_app.command("edit")
def points_edit(point_id: int = typer.Argument(...), name: Optional[str] = typer.Option(None),
                address: Optional[str] = typer.Option(None), hours: Optional[str] = typer.Option(None),
                mode: Optional[str] = typer.Option(None, help="assign | pool")) -> None:
    """Change a point's name, address, opening hours or routing mode."""
    from services.points import service

    changes = _changes(name=name, address=address, hours=hours, routing_mode=mode)
    _print(_run(lambda session, actor: service.point_view(service.edit_point(session, actor=actor, point_id=point_id,
                                                                             changes=changes))))


@points_app.command("deactivate")
def points_deactivate(point_id: int = typer.Argument(...)) -> None:
    """Deactivate a point and its windows (refused while staff or unfinished cases remain)."""
    from services.points import service

    _print(_run(lambda session, actor: service.point_view(service.deactivate_point(session, actor=actor,
                                                                                   point_id=point_id))))


@points_app.command("reactivate")
def points_reactivate(point_id: int = typer.Argument(...)) -> None:
    """Open a deactivated point again (its windows stay closed until each is reopened)."""
    from services.points import service

    _print(_run(lambda session, actor: service.point_view(service.reactivate_point(session, actor=actor,
                                                                                     point_id=point_id))))


# ---------------------------------------------------------------- windows

@windows_app.command("list")
def windows_list(point_id: int = typer.Argument(..., help="service point id"),
                 include_inactive: bool = typer.Option(False, "--all", help="also closed windows")) -> None:
    """A point's windows: id, name, categories ([] = every category)."""
    from services.points import service

    items = _run(lambda session, actor: service.list_windows(session, actor=actor, point_id=point_id,
                                                             include_inactive=include_inactive))["items"]
    for item in items:
        categories = ", ".join(item["categories"]) or "全部类别"
        typer.echo(f"{item['id']:>5}  {item['name']:<10} {categories}{'' if item['active'] else '  (停用)'}")


@windows_app.command("create")
def windows_create(point_id: int = typer.Argument(..., help="service point id"),
                   name: str = typer.Option(..., help="e.g. 窗口4"),
                   category: Optional[list[str]] = typer.Option(None, help="a matter category it handles (repeat); "
                                                                           "none: every category")) -> None:
    """Open a window at a point."""
    from services.points import service

    _print(_run(lambda session, actor: service.window_view(service.create_window(
        session, actor=actor, point_id=point_id, name=name, categories=list(category or [])))))


@windows_app.command("edit")
def windows_edit(window_id: int = typer.Argument(...), name: Optional[str] = typer.Option(None),
                 category: Optional[list[str]] = typer.Option(None, help="replace the categories (repeat)"),
                 all_categories: bool = typer.Option(False, "--all-categories", help="handle every category")) -> None:
    """Rename a window or replace its categories."""
    from services.points import service

    changes = _changes(name=name, categories=list(category) if category else None)
    if all_categories:
        changes["categories"] = []
    _print(_run(lambda session, actor: service.window_view(service.edit_window(session, actor=actor,
                                                                               window_id=window_id, changes=changes))))


@windows_app.command("deactivate")
def windows_deactivate(window_id: int = typer.Argument(...)) -> None:
    """Close a window (refused while active staff are bound to it)."""
    from services.points import service

    _print(_run(lambda session, actor: service.window_view(service.deactivate_window(session, actor=actor,
                                                                                     window_id=window_id))))


@windows_app.command("reactivate")
def windows_reactivate(window_id: int = typer.Argument(...)) -> None:
    """Reopen a closed window of an open point."""
    from services.points import service

    _print(_run(lambda session, actor: service.window_view(service.reactivate_window(session, actor=actor,
                                                                                       window_id=window_id))))


# ---------------------------------------------------------------- staff

@staff_app.command("list")
def staff_list(point: Optional[int] = typer.Option(None, help="only this service point"),
               role: Optional[str] = typer.Option(None, help="clerk | reviewer | supervisor | helper | admin"),
               include_inactive: bool = typer.Option(False, "--all", help="also deactivated accounts"),
               as_json: bool = typer.Option(False, "--json", help="JSON on stdout")) -> None:
    """List staff: id, username, role, status, point, window, name."""
    from services.points import service

    items = _run(lambda session, actor: _all_pages(lambda cursor: service.list_staff(
        session, actor=actor, service_point_id=point, role=role, include_inactive=include_inactive, cursor=cursor)))
    if as_json:
        _print(items)
        return
    for item in items:
        window = item["window"]["name"] if item["window"] else "-"
        state = item["status"] if item["active"] else "停用"
        typer.echo(f"{item['id']:>5}  {item['username']:<28} {item['role']:<10} {state:<8} "
                   f"{item['service_point']['name']}  {window}  {item['display_name']}")


@staff_app.command("create")
def staff_create(username: str = typer.Option(...), name: str = typer.Option(..., help="display name"),
                 role: str = typer.Option(..., help="clerk | reviewer | supervisor | helper | admin"),
                 point: int = typer.Option(..., help="service point id"),
                 window: Optional[int] = typer.Option(None, help="window id at that point"),
                 password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                              help="initial password (asked for when not given)")) -> None:
    """Create a staff account bound to a point (and optionally a window)."""
    from services.points import service

    _print(_run(lambda session, actor: service.staff_view_of(session, service.create_staff(
        session, actor=actor, username=username, display_name=name, role=role, service_point_id=point,
        window_id=window, password=password))))


@staff_app.command("edit")
def staff_edit(staff_id: int = typer.Argument(...), name: Optional[str] = typer.Option(None),
               role: Optional[str] = typer.Option(None), point: Optional[int] = typer.Option(None),
               window: Optional[int] = typer.Option(None, help="window id at the (new) point"),
               no_window: bool = typer.Option(False, "--no-window", help="unbind from any window"),
               status: Optional[str] = typer.Option(None, help="on_duty | on_leave")) -> None:
    """Change a staff member's name, role, point, window or duty status."""
    from services.points import service

    changes = _changes(display_name=name, role=role, service_point_id=point, window_id=window, status=status)
    if no_window:
        changes["window_id"] = None
    _print(_run(lambda session, actor: service.staff_view_of(
        session, *service.edit_staff(session, actor=actor, staff_id=staff_id, changes=changes))))


@staff_app.command("leave")
def staff_leave(staff_id: int = typer.Argument(...)) -> None:
    """Put a staff member on leave: their unfinished cases are reassigned or returned to the pool."""
    from services.points import service

    _print(_run(lambda session, actor: service.staff_view_of(
        session, *service.set_staff_status(session, actor=actor, staff_id=staff_id, status="on_leave"))))


@staff_app.command("return")
def staff_return(staff_id: int = typer.Argument(...)) -> None:
    """A staff member is back on duty."""
    from services.points import service

    _print(_run(lambda session, actor: service.staff_view_of(
        session, *service.set_staff_status(session, actor=actor, staff_id=staff_id, status="on_duty"))))


@staff_app.command("deactivate")
def staff_deactivate(staff_id: int = typer.Argument(...)) -> None:
    """Deactivate an account: sign-in ends, unfinished cases are reassigned or returned to the pool."""
    from services.points import service

    _print(_run(lambda session, actor: service.staff_view_of(
        session, *service.deactivate_staff(session, actor=actor, staff_id=staff_id))))


@staff_app.command("reactivate")
def staff_reactivate(staff_id: int = typer.Argument(...)) -> None:
    """Let a deactivated account sign in again (its point, and window if any, must be open)."""
    from services.points import service

    _print(_run(lambda session, actor: service.staff_view_of(
        session, service.reactivate_staff(session, actor=actor, staff_id=staff_id))))
