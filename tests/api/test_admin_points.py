"""The admin API of service points, windows and staff: an administrator manages the points of their
county; bad input is a precise 4xx that writes nothing; another county's admin sees none of it; a
clerk on leave gives their cases back to the pool with a history event in an intact chain; a
全域通办 matter is handled nearest to the applicant.

This module's data is committed (the API commits) into the session's database, so it works in
regions no other test routes to (中云镇's villages 方村 and 龙山, and 玉山县) and leaves the demo
accounts as it found them."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlmodel import Session, func, select

from services.cases.audit import iter_broken
from services.cases.models import Case
from services.points.models import ServicePoint, ServiceWindow, Staff
from tests.services.cases.helpers import staff
from tests.support import act, auth, submit, upload_pdf, verified_citizen

FANGCUN = "361130110203"  # 方村村委会 (中云镇): no station in the demo
LONGSHAN = "361130110206"  # 龙山村委会 (中云镇): no station in the demo
TAOXI = "361130110211"  # 桃溪村委会 (中云镇): no station in the demo
XIAOLIN = "361130110212"  # 晓林村委会 (中云镇): no station in the demo
ZHONGYUN = "361130110000"
YUSHAN = "361123000000"  # 玉山县: another county, no points in the demo
YUSHAN_VILLAGE = "361123101001"
PASSWORD = "Chuangkou#2026"
BASE = "/api/v1/admin"


@pytest.fixture(scope="module")
def admin(client) -> dict[str, str]:
    return auth(staff(client, "admin"))


@pytest.fixture(scope="module")
def station(client, admin) -> dict:
    """A station at 方村 with a civil-affairs window and two clerks, made through the API."""
    created = client.post(f"{BASE}/service-points", headers=admin, json={
        "level": "village", "region_code": FANGCUN, "address": "婺源县中云镇方村", "hours": "周一至周五 9:00–17:00"})
    assert created.status_code == 201, created.text
    point = created.json()
    window = client.post(f"{BASE}/service-points/{point['id']}/windows", headers=admin,
                         json={"name": "民政窗口", "categories": ["civil-affairs"]})
    assert window.status_code == 201, window.text
    clerks = []
    for index, name in enumerate(("方一", "方二")):
        made = client.post(f"{BASE}/staff", headers=admin, json={
            "username": f"clerk-fangcun-{index + 1}-{uuid.uuid4().hex[:4]}", "display_name": name, "role": "clerk",
            "service_point_id": point["id"], "window_id": window.json()["id"] if index == 0 else None,
            "password": PASSWORD})
        assert made.status_code == 201, made.text
        clerks.append(made.json())
    return {"point": point, "window": window.json(), "clerks": clerks}


def _count(engine, model) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def _login(client, username: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _apply(client, region_code: str) -> dict:
    """A citizen's 居住证明 application (civil-affairs, village level)."""
    token, id_number = verified_citizen(client)
    body = {"matter_code": "residence-certificate",
            "applicant": {"kind": "person", "id_number": id_number, "name": "张三"}, "region_code": region_code,
            "form": {"address": "婺源县中云镇方村 3 号", "since": "2019-05", "purpose": "子女入学"},
            "materials": [{"code": "id-card", "file_id": upload_pdf(client, token)}]}
    created = submit(client, token, body)
    assert created.status_code == 201, created.text
    return created.json()


# ---------------------------------------------------------------- who may

def test_only_administrators(client):
    assert client.get(f"{BASE}/service-points").status_code == 401
    clerk = client.get(f"{BASE}/service-points", headers=auth(staff(client, "clerk-361130-1")))
    assert clerk.status_code == 403 and clerk.json()["error"] == "admin_only"
    supervisor = client.post(f"{BASE}/staff/1/leave", headers=auth(staff(client, "supervisor-361130102")))
    assert supervisor.status_code == 403


# ---------------------------------------------------------------- points

def test_a_station_is_opened_listed_edited_and_routes_cases(client, admin, station):
    point = station["point"]
    assert point["name"] == "方村村委会便民服务站" and point["kind"] == "便民服务站" and point["routing_mode"] == "assign"
    listed = client.get(f"{BASE}/service-points", headers=admin, params={"region_code": ZHONGYUN}).json()
    assert {item["region_code"] for item in listed["items"]} >= {ZHONGYUN, FANGCUN}
    shown = client.get(f"{BASE}/service-points/{point['id']}", headers=admin).json()
    assert shown["windows"] == [station["window"]] and station["window"]["category_labels"] == ["民政"]
    edited = client.patch(f"{BASE}/service-points/{point['id']}", headers=admin, json={"hours": "周一至周六 9:00–17:00"})
    assert edited.status_code == 200 and edited.json()["hours"] == "周一至周六 9:00–17:00"
    public = client.get("/api/v1/service-points", params={"region_code": FANGCUN}).json()["items"]
    assert public[0]["id"] == point["id"]  # the public list, nearest first, knows it at once

    case = _apply(client, FANGCUN)
    assert case["handling_point"]["id"] == point["id"]
    assert "分配给 民政窗口 方一（当前 0 件）" in case["routing_reason"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"level": "village", "region_code": "361130110299"}, 422, "unknown_region_code"),
    ({"level": "town", "region_code": LONGSHAN}, 422, "level_mismatch"),
    ({"level": "village", "region_code": FANGCUN}, 409, "service_point_exists"),
    ({"level": "village", "region_code": YUSHAN_VILLAGE}, 403, "outside_jurisdiction"),
    ({"level": "village", "region_code": "3611301102"}, 422, "validation_error"),
    ({"level": "hamlet", "region_code": LONGSHAN}, 422, "validation_error"),
    ({"level": "village", "region_code": LONGSHAN, "routing_mode": "random"}, 422, "validation_error"),
])
def test_bad_points_are_a_precise_4xx_and_write_nothing(client, engine, admin, station, body, status, code):
    before = _count(engine, ServicePoint)
    response = client.post(f"{BASE}/service-points", headers=admin, json=body)
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    assert _count(engine, ServicePoint) == before


def test_windows_and_staff_bad_input(client, engine, admin, station):
    point_id = station["point"]["id"]
    before = _count(engine, ServiceWindow), _count(engine, Staff)
    unknown = client.post(f"{BASE}/service-points/{point_id}/windows", headers=admin,
                          json={"name": "窗口9", "categories": ["space-travel"]})
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_category"
    assert unknown.json()["detail"][0]["field"] == "categories[0]"
    twin = client.post(f"{BASE}/service-points/{point_id}/windows", headers=admin, json={"name": "民政窗口"})
    assert twin.status_code == 409 and twin.json()["error"] == "window_exists"

    def new_staff(**changes):
        return client.post(f"{BASE}/staff", headers=admin, json={
            "username": "clerk-fangcun-x", "display_name": "某", "role": "clerk", "service_point_id": point_id,
            "password": PASSWORD, **changes})

    weak = new_staff(password="abc")
    assert weak.status_code == 422 and weak.json()["error"] == "weak_password"
    assert {item["field"] for item in weak.json()["detail"]} == {"password"}
    taken = new_staff(username="clerk-361130-1")
    assert taken.status_code == 409 and taken.json()["error"] == "username_taken"
    missing = new_staff(service_point_id=999_999)
    assert missing.status_code == 422 and missing.json()["error"] == "unknown_service_point"
    assert new_staff(role="mayor").status_code == 422
    busy = client.post(f"{BASE}/windows/{station['window']['id']}/deactivate", headers=admin)
    assert busy.status_code == 409 and busy.json()["error"] == "window_has_active_staff"
    assert (_count(engine, ServiceWindow), _count(engine, Staff)) == before


def test_staff_cannot_be_bound_to_a_deactivated_point(client, engine, admin):
    longshan = client.post(f"{BASE}/service-points", headers=admin, json={"level": "village", "region_code": LONGSHAN})
    assert longshan.status_code == 201, longshan.text
    closed = client.post(f"{BASE}/service-points/{longshan.json()['id']}/deactivate", headers=admin)
    assert closed.status_code == 200 and closed.json()["active"] is False
    before = _count(engine, Staff)
    bound = client.post(f"{BASE}/staff", headers=admin, json={
        "username": "clerk-longshan-1", "display_name": "龙一", "role": "clerk",
        "service_point_id": longshan.json()["id"], "password": PASSWORD})
    assert bound.status_code == 409 and bound.json()["error"] == "service_point_inactive"
    assert bound.json()["detail"] == [{"field": "service_point_id", "reason": "inactive"}]
    assert _count(engine, Staff) == before
    edited = client.patch(f"{BASE}/service-points/{longshan.json()['id']}", headers=admin, json={"name": "新名"})
    assert edited.status_code == 409 and edited.json()["error"] == "service_point_inactive"


def test_a_new_clerk_signs_in_with_the_initial_password(client, station):
    me = client.get("/api/v1/me", headers=auth(_login(client, station["clerks"][0]["username"]))).json()
    assert me["roles"] == ["clerk"] and me["service_point"]["id"] == station["point"]["id"]


# ---------------------------------------------------------------- jurisdiction

def test_another_countys_admin_gets_404_and_403(client, engine, admin, station):
    from services.db import session_scope
    from services.points import service as points

    with session_scope() as session:  # 玉山县's centre and admin, made by the command line's authority
        yushan = points.create_point(session, actor=points.CLI_OPERATOR, level="county", region_code=YUSHAN)
        points.create_staff(session, actor=points.CLI_OPERATOR, username="admin-361123", display_name="玉山管理员",
                            role="admin", service_point_id=yushan.id, password=PASSWORD)
        yushan_id = yushan.id
    other = auth(_login(client, "admin-361123"))
    point_id, clerk_id = station["point"]["id"], station["clerks"][0]["id"]
    assert client.get(f"{BASE}/service-points/{point_id}", headers=other).status_code == 404
    patched = client.patch(f"{BASE}/service-points/{point_id}", headers=other, json={"hours": "x"})
    assert patched.status_code == 404 and patched.json()["error"] == "service_point_not_found"
    assert client.post(f"{BASE}/staff/{clerk_id}/leave", headers=other).status_code == 404
    assert client.post(f"{BASE}/windows/{station['window']['id']}/deactivate", headers=other).status_code == 404
    bound = client.post(f"{BASE}/staff", headers=other, json={
        "username": "clerk-yushan-x", "display_name": "某", "role": "clerk", "service_point_id": point_id,
        "password": PASSWORD})
    assert bound.status_code == 403 and bound.json()["error"] == "outside_jurisdiction"
    opened = client.post(f"{BASE}/service-points", headers=other, json={"level": "village", "region_code": FANGCUN})
    assert opened.status_code == 403
    listed = client.get(f"{BASE}/service-points", headers=other).json()["items"]
    assert [item["id"] for item in listed] == [yushan_id]
    assert all(item["service_point"]["region_code"] == YUSHAN
               for item in client.get(f"{BASE}/staff", headers=other).json()["items"])
    assert client.get(f"{BASE}/service-points/{yushan_id}", headers=admin).status_code == 404  # and back
    staff_ids = [item["id"] for item in client.get(f"{BASE}/staff", headers=admin,
                                                   params={"service_point_id": point_id}).json()["items"]]
    assert staff_ids == [clerk["id"] for clerk in station["clerks"]]


# ---------------------------------------------------------------- leave, return, deactivate

def test_leave_reassigns_then_pools_with_history_and_an_intact_chain(client, engine, admin, station):
    first, second = station["clerks"]
    case = _apply(client, FANGCUN)
    assigned = case["assignee"]["id"]
    other = second if assigned == first["id"] else first
    left = client.post(f"{BASE}/staff/{assigned}/leave", headers=admin)
    assert left.status_code == 200, left.text
    assert left.json()["status"] == "on_leave"
    released = left.json()["released_cases"]
    assert case["id"] in [item["case_id"] for item in released["reassigned"]]
    seen = client.get(f"/api/v1/cases/{case['id']}", headers=admin).json()
    assert seen["assignee"]["id"] == other["id"] and seen["version"] == case["version"] + 1
    last = seen["history"][-1]
    assert last["action"] == "reassign" and last["actor"].startswith("staff:")
    assert last["payload"]["from_staff_id"] == assigned and last["payload"]["to_staff_id"] == other["id"]

    gone = client.post(f"{BASE}/staff/{other['id']}/deactivate", headers=admin)  # nobody left on duty
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert case["id"] in [item["case_id"] for item in gone.json()["released_cases"]["returned_to_pool"]]
    pooled = client.get(f"/api/v1/cases/{case['id']}", headers=admin).json()
    assert pooled["assignee"] is None and pooled["history"][-1]["action"] == "return_to_pool"
    assert "进入该点待认领队列" in pooled["routing_reason"] or "暂无" in pooled["routing_reason"]
    with Session(engine) as session:
        assert list(iter_broken(session, case_ids=[case["id"]])) == []  # what `onestop audit verify` checks
    signed_in = client.post("/api/v1/auth/login", json={"username": other["username"], "password": PASSWORD})
    assert signed_in.status_code == 401  # a deactivated account

    back = client.post(f"{BASE}/staff/{assigned}/return", headers=admin)
    assert back.status_code == 200 and back.json()["status"] == "on_duty" and back.json()["released_cases"] is None
    clerk = _login(client, next(c["username"] for c in station["clerks"] if c["id"] == assigned))
    claimed = act(client, clerk, pooled, "claim")
    assert claimed.status_code == 200 and claimed.json()["assignee"]["id"] == assigned


def test_staff_edits_and_self_protection(client, admin, station):
    clerk = station["clerks"][1]
    window_id = station["window"]["id"]
    if client.get(f"{BASE}/staff/{clerk['id']}", headers=admin).json()["active"]:
        moved = client.patch(f"{BASE}/staff/{clerk['id']}", headers=admin, json={"window_id": window_id})
        assert moved.status_code == 200 and moved.json()["window"]["id"] == window_id
        unbound = client.patch(f"{BASE}/staff/{clerk['id']}", headers=admin, json={"window_id": None})
        assert unbound.json()["window"] is None
    me = client.get("/api/v1/me", headers=admin).json()
    my_id = int(me["id"].split(":")[1])
    assert client.post(f"{BASE}/staff/{my_id}/deactivate", headers=admin).json()["error"] == "not_on_yourself"
    assert client.patch(f"{BASE}/staff/{my_id}", headers=admin, json={"role": "clerk"}).status_code == 409
    extra = client.patch(f"{BASE}/staff/{clerk['id']}", headers=admin, json={"password_hash": "x"})
    assert extra.status_code == 422


# ---------------------------------------------------------------- 全域通办

def test_anywhere_in_county_matter_goes_to_the_nearest_point(client, station):
    token, id_number = verified_citizen(client)
    body = {"matter_code": "resident-pension-enrolment",
            "applicant": {"kind": "person", "id_number": id_number, "name": "张三"}, "region_code": FANGCUN,
            "form": {"contribution_grade": 500},
            "materials": [{"code": code, "file_id": upload_pdf(client, token)}
                          for code in ("household-register", "id-card")]}
    created = submit(client, token, body)
    assert created.status_code == 201, created.text
    case = created.json()
    assert case["handling_point"]["id"] == station["point"]["id"]  # 方村's own station, not the town centre
    assert "全域通办" in case["routing_reason"] and "由距申请人最近的 方村村委会便民服务站 办理" in case["routing_reason"]


def test_a_point_its_window_and_its_staff_are_opened_again(client, engine, admin):
    """What was deactivated can be reactivated, in order (point, then window, then staff), each
    refused with a precise 409 while what it depends on is still closed or taken."""
    taoxi = client.post(f"{BASE}/service-points", headers=admin, json={"level": "village", "region_code": TAOXI})
    assert taoxi.status_code == 201, taoxi.text
    point = taoxi.json()
    window = client.post(f"{BASE}/service-points/{point['id']}/windows", headers=admin,
                         json={"name": "综合窗口", "categories": []}).json()
    clerk = client.post(f"{BASE}/staff", headers=admin, json={
        "username": f"clerk-taoxi-{uuid.uuid4().hex[:4]}", "display_name": "桃一", "role": "clerk",
        "service_point_id": point["id"], "window_id": window["id"], "password": PASSWORD}).json()
    assert client.post(f"{BASE}/staff/{clerk['id']}/deactivate", headers=admin).json()["active"] is False
    closed = client.post(f"{BASE}/service-points/{point['id']}/deactivate", headers=admin)
    assert closed.status_code == 200 and closed.json()["active"] is False

    refused = client.post(f"{BASE}/windows/{window['id']}/reactivate", headers=admin)
    assert refused.status_code == 409 and refused.json()["error"] == "service_point_inactive"
    refused = client.post(f"{BASE}/staff/{clerk['id']}/reactivate", headers=admin)
    assert refused.status_code == 409 and refused.json()["error"] == "service_point_inactive"

    reopened = client.post(f"{BASE}/service-points/{point['id']}/reactivate", headers=admin)
    assert reopened.status_code == 200 and reopened.json()["active"] is True
    assert client.post(f"{BASE}/service-points/{point['id']}/reactivate", headers=admin).status_code == 200  # again
    refused = client.post(f"{BASE}/staff/{clerk['id']}/reactivate", headers=admin)  # its window is still closed
    assert refused.status_code == 409 and refused.json()["error"] == "window_inactive"
    assert client.post(f"{BASE}/windows/{window['id']}/reactivate", headers=admin).json()["active"] is True
    back = client.post(f"{BASE}/staff/{clerk['id']}/reactivate", headers=admin)
    assert back.status_code == 200 and back.json()["active"] is True
    assert client.get("/api/v1/me", headers=auth(_login(client, clerk["username"]))).status_code == 200
    assert _apply(client, TAOXI)["handling_point"]["id"] == point["id"]  # routes there again

    # a second point for the region while the first is closed: the first cannot be reopened beside it
    client.post(f"{BASE}/staff/{clerk['id']}/deactivate", headers=admin)
    with Session(engine) as session:  # its one case is finished elsewhere: nothing open blocks the closing
        for case in session.exec(select(Case).where(Case.handling_point_id == point["id"])):
            case.state = "withdrawn"
            session.add(case)
        session.commit()
    assert client.post(f"{BASE}/service-points/{point['id']}/deactivate", headers=admin).status_code == 200
    other = client.post(f"{BASE}/service-points", headers=admin, json={"level": "village", "region_code": TAOXI})
    assert other.status_code == 201, other.text
    before = _count(engine, ServicePoint)
    taken = client.post(f"{BASE}/service-points/{point['id']}/reactivate", headers=admin)
    assert taken.status_code == 409 and taken.json()["error"] == "service_point_exists"
    assert taken.json()["detail"]["existing_point_id"] == other.json()["id"]
    assert _count(engine, ServicePoint) == before
    with Session(engine) as session:
        assert session.get(ServicePoint, point["id"]).active is False


def test_the_command_line_closes_and_reopens_a_point_and_its_window(client, admin):
    from typer.testing import CliRunner

    from api.cli import app

    created = client.post(f"{BASE}/service-points", headers=admin, json={"level": "village", "region_code": XIAOLIN})
    assert created.status_code == 201, created.text
    point = created.json()
    window = client.post(f"{BASE}/service-points/{point['id']}/windows", headers=admin,
                         json={"name": "综合窗口", "categories": []}).json()

    def run(*args: str):
        return CliRunner().invoke(app, [*args])

    assert run("points", "deactivate", str(point["id"])).exit_code == 0
    refused = run("windows", "reactivate", str(window["id"]))
    assert refused.exit_code == 1 and "service_point_inactive" in refused.stderr
    reopened = run("points", "reactivate", str(point["id"]))
    assert reopened.exit_code == 0 and json.loads(reopened.stdout)["active"] is True
    assert json.loads(run("windows", "reactivate", str(window["id"])).stdout)["active"] is True
