"""The demo county 婺源县: regions, service points, staff. Seeded only into an empty database.

Demo passwords are never stored: each is derived from a secret under var/keys/ and the
username, so `onestop demo-accounts` can print them and nothing else can.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from services.accounts.passwords import hash_password
from services.config import get_settings
from services.errors import Forbidden
from services.keys import load_or_create_secret
from services.matters.service import sync_catalogue
from services.points.models import ServicePoint, ServiceWindow, Staff
from services.regions.importer import default_regions_file, import_regions
from services.regions.repository import children, get_region
from services.routing.index import mark_changed

DEMO_COUNTY = "361130000000"  # 婺源县, 上饶市, 江西省
SURNAMES = "王李张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉芳"
# Opening hours and addresses are demo values, not the real centres'.
COUNTY_HOURS = "周一至周五 8:30–12:00, 14:30–17:30；周六 9:00–12:00"
TOWN_HOURS = "周一至周五 8:30–12:00, 14:30–17:30"
VILLAGE_HOURS = "周一至周五 9:00–11:30, 14:30–17:00"
# The county centre's counters and the matter categories each handles ([]: every category).
COUNTY_WINDOWS = {"窗口1": [], "窗口2": ["market-regulation", "housing-construction"],
                  "窗口3": ["social-security", "medical-insurance", "civil-affairs", "disabled-persons", "health"]}

Progress = Callable[[str, int, int], None]


class DemoModeOnly(Forbidden):
    code = "demo_mode_only"
    message = "仅演示模式可用（ONESTOP_DEMO=true）"


def demo_password(username: str) -> str:
    settings = get_settings()
    if not settings.demo:
        raise DemoModeOnly()
    key = load_or_create_secret(settings, configured="", filename="demo-passwords.key")
    digest = hmac.new(key, username.encode(), hashlib.sha256).digest()
    return "Demo-" + base64.b32encode(digest).decode()[:10].lower()


def is_seeded(session: Session) -> bool:
    return session.exec(select(ServicePoint.id).limit(1)).first() is not None


def _station_name(village_name: str) -> str:
    base = village_name.removesuffix("村委会").removesuffix("居委会").removesuffix("村民委员会")
    return f"{base}{'村' if village_name.endswith('村委会') else ''}便民服务站"


def _person(index: int) -> str:
    return SURNAMES[index % len(SURNAMES)] + GIVEN[(index * 7) % len(GIVEN)]


def seed_demo(session: Session, *, progress: Progress | None = None) -> dict[str, Any]:
    """Seed the demo county into an empty database. Returns what was created (or that it
    was already there). The caller commits."""
    if not get_settings().demo:
        raise DemoModeOnly()
    sync_catalogue(session)
    if is_seeded(session):
        return {"seeded": False, "reason": "database already has service points"}
    report = import_regions(session, default_regions_file(),
                            progress=(lambda done, total: progress("regions", done, total)) if progress else None)
    county = get_region(session, code=DEMO_COUNTY)
    towns = children(session, parent_code=DEMO_COUNTY)
    plan: list[tuple[ServicePoint, list[tuple[str, str, str | None]]]] = []

    county_point = ServicePoint(name="婺源县政务服务中心", level="county", region_code=county.code,
                                address="江西省上饶市婺源县蚺城街道（演示地址）", hours=COUNTY_HOURS)
    plan.append((county_point, [("clerk-361130-1", "clerk", "窗口1"), ("clerk-361130-2", "clerk", "窗口2"),
                                ("clerk-361130-3", "clerk", "窗口3"), ("reviewer-361130", "reviewer", None),
                                ("supervisor-361130", "supervisor", None), ("admin", "admin", None)]))
    for town in towns:
        town_code = town.code[:9]
        point = ServicePoint(name=f"{town.name}便民服务中心", level="town", region_code=town.code,
                             address=f"婺源县{town.name}（演示地址）", hours=TOWN_HOURS)
        plan.append((point, [(f"clerk-{town_code}", "clerk", "综合窗口"), (f"supervisor-{town_code}", "supervisor", None)]))
        villages = [v for v in children(session, parent_code=town.code) if int(v.code[9:]) >= 200]
        if villages:  # the first 村委会 of every town has a station; its neighbours route up to the town
            village = villages[0]
            station = ServicePoint(name=_station_name(village.name), level="village", region_code=village.code,
                                   address=f"婺源县{town.name}{village.name.removesuffix('委会')}（演示地址）",
                                   hours=VILLAGE_HOURS)
            plan.append((station, [(f"clerk-{village.code}", "clerk", None), (f"helper-{village.code}", "helper", None)]))

    total = sum(len(accounts) for _, accounts in plan)
    done = 0
    for point, accounts in plan:
        session.add(point)
        session.flush()
        windows: dict[str, ServiceWindow] = {}
        for _, _, name in accounts:
            if name and name not in windows:
                windows[name] = ServiceWindow(service_point_id=point.id, name=name,
                                              categories=COUNTY_WINDOWS.get(name, []) if point.level == "county" else [])
                session.add(windows[name])
        session.flush()
        for username, role, window in accounts:
            session.add(Staff(username=username, display_name=_person(done), role=role, service_point_id=point.id,
                              window_id=windows[window].id if window else None,
                              password_hash=hash_password(demo_password(username))))
            done += 1
            if progress:
                progress("staff", done, total)
    session.flush()
    mark_changed(session)
    return {"seeded": True, "regions": report.rows, "service_points": len(plan), "staff": total}


def demo_accounts(session: Session) -> list[dict[str, Any]]:
    """Every demo staff account with its password (demo mode only)."""
    if not get_settings().demo:
        raise DemoModeOnly()
    rows = session.exec(select(Staff, ServicePoint).join(ServicePoint, ServicePoint.id == Staff.service_point_id)
                        .order_by(Staff.id))
    return [{"id": staff.id, "username": staff.username, "password": demo_password(staff.username),
             "roles": [staff.role], "display_name": staff.display_name, "service_point_id": point.id,
             "service_point": point.name, "region_code": point.region_code} for staff, point in rows]
