"""Service points, windows and staff administration (services/points/service.py), qualified
least-loaded dispatch, 全域通办 routing and the return to the pool, each inside a transaction that
is rolled back (the routing index is reset after every test, so no phantom point outlives it)."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from services.accounts.principal import Principal
from services.accounts.service import staff_principal
from services.cases.audit import iter_broken
from services.cases.models import Case, CaseEvent
from services.cases.service import create_case, current_matter
from services.errors import InvalidInput, OnestopError
from services.points import service as points
from services.points.models import ServicePoint, ServiceWindow, Staff
from services.points.repository import clerk_loads
from services.regions.models import Region
from services.routing import index as routing_index
from services.routing.index import PointRef, RegionRef, RoutingIndex
from services.routing.service import InactiveRegion, NoHandlingPoint, UnknownRegion, route
from tests.services.accounts.helpers import insert_subject

ZHONGYUN = "361130110000"  # 中云镇: a town centre, a station at 中云村 (…200), none at the others
XIAGANG = "361130110201"  # 霞港村委会: no station in the demo
HENGCHA = "361130110202"  # 横槎村委会: no station in the demo
QIUKOU_STATION = "361130102200"  # 秋口村: has a village station
QINGHUA = "361130101000"  # 清华镇
GUANGFENG = "361103000000"  # 广丰区: another county of 上饶市, no points in the demo
GUANGFENG_TOWN = "361103101000"  # 五都镇
GUANGFENG_VILLAGE = "361103101001"  # 修文街社区
PASSWORD = "Chuangkou#2026"
CITIZEN = Principal(kind="citizen", account_id=987654, roles=("citizen",), name="张三")


@pytest.fixture(autouse=True)
def _forget_the_routing_index(monkeypatch):
    """Every decision sees the points this test's transaction created (the index is rebuilt when
    the version counter moved); none of them lives on in the index once the test rolled back."""
    monkeypatch.setattr(routing_index, "CHECK_SECONDS", 0.0)
    yield
    routing_index._cache.index = None
    routing_index._cache.checked_at = 0.0


@pytest.fixture
def admin(seeded, session) -> Principal:
    """The demo county's administrator (jurisdiction: 婺源县)."""
    return staff_principal(session, session.exec(select(Staff).where(Staff.username == "admin")).one())


def _count(session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _point(session, admin, region_code=XIAGANG, level="village", **extra) -> ServicePoint:
    return points.create_point(session, actor=admin, level=level, region_code=region_code, **extra)


def _clerk(session, admin, point, username, window=None, **extra) -> Staff:
    return points.create_staff(session, actor=admin, username=username, display_name=extra.pop("name", "测试员"),
                               role=extra.pop("role", "clerk"), service_point_id=point.id, password=PASSWORD,
                               window_id=window.id if window else None)


def _case(session, *, region_code: str, matter_code: str = "residence-certificate",
          receiving_point_id: int | None = None) -> Case:
    """A real application: routed by route(), stored with its first event."""
    return create_case(session, principal=CITIZEN, matter=current_matter(session, matter_code),
                       subject=insert_subject(session, name="张三"), region_code=region_code, form={},
                       material_rows=[], receiving_point_id=receiving_point_id)


def _events(session, case) -> list[CaseEvent]:
    return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq)))


# ---------------------------------------------------------------- points

def test_a_new_station_takes_the_villages_cases_at_once(session, admin):
    before = route(session, handle_level="village", region_code=XIAGANG)
    assert before.handling_point.region_code == ZHONGYUN
    point = _point(session, admin, address="婺源县中云镇霞港村", hours="周一至周五 9:00–17:00")
    assert point.name == "霞港村委会便民服务站" and point.routing_mode == "assign" and point.active
    after = route(session, handle_level="village", region_code=XIAGANG)
    assert after.handling_point.id == point.id
    assert "暂无在岗窗口人员，进入待认领队列" in after.reason  # no clerk there yet
    assert [p["id"] for p in points.points_serving(session, region_code=XIAGANG)][0] == point.id


@pytest.mark.parametrize(("level", "region_code", "error", "code"), [
    ("village", "361130110299", UnknownRegion, "unknown_region_code"),  # no such village
    ("village", "36113011020", UnknownRegion, "unknown_region_code"),  # not a code
    ("town", XIAGANG, points.LevelMismatch, "level_mismatch"),  # a village code for a town centre
    ("county", "361130102000", points.LevelMismatch, "level_mismatch"),  # a town code for a county centre
    ("town", ZHONGYUN, points.ServicePointExists, "service_point_exists"),  # 中云镇 has its centre
    ("town", GUANGFENG_TOWN, points.OutsideJurisdiction, "outside_jurisdiction"),  # another county
    ("hamlet", XIAGANG, InvalidInput, "validation_error"),
])
def test_bad_points_are_refused_precisely_and_write_nothing(session, admin, level, region_code, error, code):
    before = _count(session, ServicePoint)
    with pytest.raises(error) as refused:
        _point(session, admin, region_code=region_code, level=level)
    assert refused.value.code == code
    assert _count(session, ServicePoint) == before


def test_a_city_has_no_point_level(session, seeded):
    with pytest.raises(points.LevelMismatch) as refused:
        points.create_point(session, actor=points.CLI_OPERATOR, level="county", region_code="361100000000")
    assert "上饶市（361100000000）是市级行政区划，不能设立政务服务中心" == refused.value.message


def test_an_inactive_region_gets_no_point(session, admin):
    region = session.get(Region, HENGCHA)
    region.active = False
    session.add(region)
    session.flush()
    with pytest.raises(InactiveRegion):
        _point(session, admin, region_code=HENGCHA)


def test_only_admins_administer(session, seeded):
    clerk = staff_principal(session, session.exec(select(Staff).where(Staff.username == "clerk-361130-1")).one())
    with pytest.raises(points.matters.AdminOnly):
        _point(session, clerk)


def test_edit_and_deactivate_a_point(session, admin):
    point = _point(session, admin)
    edited = points.edit_point(session, actor=admin, point_id=point.id, changes={"routing_mode": "pool",
                                                                                "hours": "周一至周六"})
    assert edited.routing_mode == "pool" and edited.hours == "周一至周六"
    with pytest.raises(InvalidInput):  # what a point *is* can't be edited
        points.edit_point(session, actor=admin, point_id=point.id, changes={"region_code": HENGCHA})
    window = points.create_window(session, actor=admin, point_id=point.id, name="综合窗口")
    clerk = _clerk(session, admin, point, "clerk-xiagang-1")
    with pytest.raises(points.PointHasActiveStaff) as busy:
        points.deactivate_point(session, actor=admin, point_id=point.id)
    assert busy.value.detail["staff"][0]["username"] == "clerk-xiagang-1"
    points.deactivate_staff(session, actor=admin, staff_id=clerk.id)
    assert not points.deactivate_point(session, actor=admin, point_id=point.id).active
    assert not session.get(ServiceWindow, window.id).active  # its windows close with it
    assert route(session, handle_level="village", region_code=XIAGANG).handling_point.region_code == ZHONGYUN
    with pytest.raises(points.ServicePointInactive):
        points.edit_point(session, actor=admin, point_id=point.id, changes={"name": "新名"})
    # a deactivated point no longer blocks a new one for the same region and level
    assert _point(session, admin).id != point.id


def test_a_point_with_unfinished_cases_stays_open(session, admin):
    point = _point(session, admin, routing_mode="pool")
    _case(session, region_code=XIAGANG)
    with pytest.raises(points.PointHasOpenCases) as refused:
        points.deactivate_point(session, actor=admin, point_id=point.id)
    assert refused.value.detail == {"open_cases": 1}
    assert session.get(ServicePoint, point.id).active


def test_jurisdiction_another_countys_admin_sees_nothing_here(session, admin):
    guangfeng = points.create_point(session, actor=points.CLI_OPERATOR, level="county", region_code=GUANGFENG)
    other = points.create_staff(session, actor=points.CLI_OPERATOR, username="admin-361103", display_name="广丰管理员",
                                role="admin", service_point_id=guangfeng.id, password=PASSWORD)
    other_admin = staff_principal(session, other)
    county_point = session.exec(select(ServicePoint).where(ServicePoint.region_code == "361130000000")).one()
    with pytest.raises(points.ServicePointNotFound):
        points.edit_point(session, actor=other_admin, point_id=county_point.id, changes={"hours": "x"})
    with pytest.raises(points.StaffNotFound):
        points.set_staff_status(session, actor=other_admin,
                                staff_id=session.exec(select(Staff).where(Staff.username == "clerk-361130-1")).one().id,
                                status="on_leave")
    with pytest.raises(points.OutsideJurisdiction):  # binding staff to a point of 婺源
        points.create_staff(session, actor=other_admin, username="clerk-x", display_name="某", role="clerk",
                            service_point_id=county_point.id, password=PASSWORD)
    assert [p["region_code"] for p in points.list_points(session, actor=other_admin)["items"]] == [GUANGFENG]
    counties = points.list_points(session, actor=admin, level="county")["items"]
    assert GUANGFENG not in [p["region_code"] for p in counties]
    with pytest.raises(points.OutsideJurisdiction):
        points.list_points(session, actor=admin, region_code=GUANGFENG)


# ---------------------------------------------------------------- windows and staff

def test_windows_take_only_catalogue_categories(session, admin):
    point = _point(session, admin)
    before = _count(session, ServiceWindow)
    with pytest.raises(points.UnknownCategory) as unknown:
        points.create_window(session, actor=admin, point_id=point.id, name="窗口1",
                             categories=["civil-affairs", "fishing-licences"])
    assert unknown.value.detail == [{"field": "categories[1]", "reason": "unknown_category",
                                     "message": "未知的事项类别：fishing-licences"}]
    assert _count(session, ServiceWindow) == before
    window = points.create_window(session, actor=admin, point_id=point.id, name="窗口1",
                                  categories=["civil-affairs", "civil-affairs", "social-security"])
    assert window.categories == ["civil-affairs", "social-security"]
    with pytest.raises(points.WindowExists):
        points.create_window(session, actor=admin, point_id=point.id, name="窗口1")
    edited = points.edit_window(session, actor=admin, window_id=window.id, changes={"categories": []})
    assert edited.categories == []
    _clerk(session, admin, point, "clerk-xiagang-w", window=window)
    with pytest.raises(points.WindowHasActiveStaff):
        points.deactivate_window(session, actor=admin, window_id=window.id)


def test_staff_bad_input_is_precise_and_writes_nothing(session, admin):
    point = _point(session, admin)
    other_town = session.exec(select(ServicePoint).where(ServicePoint.region_code == QINGHUA)).one()
    foreign_window = points.create_window(session, actor=admin, point_id=other_town.id, name="窗口9")
    closed = _point(session, admin, region_code=HENGCHA)
    points.deactivate_point(session, actor=admin, point_id=closed.id)
    before = _count(session, Staff)

    def create(**changes):
        arguments = {"username": "clerk-new-1", "display_name": "新人", "role": "clerk", "service_point_id": point.id,
                     "password": PASSWORD, **changes}
        with pytest.raises(OnestopError) as refused:
            points.create_staff(session, actor=admin, **arguments)
        return refused.value

    weak = create(password="short")
    assert weak.code == "weak_password" and {d["field"] for d in weak.detail} == {"password"}
    assert create(password="clerk-new-1#X2026").detail[0]["reason"] == "contains_username"
    assert create(service_point_id=closed.id).code == "service_point_inactive"
    assert create(service_point_id=999_999).code == "unknown_service_point"
    assert create(window_id=foreign_window.id).code == "window_not_at_point"
    assert create(role="mayor").code == "validation_error"
    assert create(username="Bad Name").code == "validation_error"
    assert create(username="clerk-361130-1").code == "username_taken"
    assert _count(session, Staff) == before


def test_moving_staff_to_a_deactivated_point_is_refused(session, admin):
    point = _point(session, admin)
    clerk = _clerk(session, admin, point, "clerk-xiagang-m")
    closed = _point(session, admin, region_code=HENGCHA)
    points.deactivate_point(session, actor=admin, point_id=closed.id)
    with pytest.raises(points.ServicePointInactive) as refused:
        points.edit_staff(session, actor=admin, staff_id=clerk.id, changes={"service_point_id": closed.id})
    assert refused.value.status_code == 409 and refused.value.detail[0]["field"] == "service_point_id"
    assert session.get(Staff, clerk.id).service_point_id == point.id


def test_an_admin_cannot_lock_themselves_out(session, admin):
    with pytest.raises(points.NotOnYourself):
        points.deactivate_staff(session, actor=admin, staff_id=admin.account_id)
    with pytest.raises(points.NotOnYourself):
        points.edit_staff(session, actor=admin, staff_id=admin.account_id, changes={"role": "clerk"})


# ---------------------------------------------------------------- qualified, least-loaded dispatch

def test_the_demo_county_windows_split_the_categories(session, seeded):
    county = session.exec(select(ServicePoint).where(ServicePoint.region_code == "361130000000")).one()

    demo = {"clerk-361130-1", "clerk-361130-2", "clerk-361130-3"}  # other tests add clerks there

    def qualified(category):
        loads = clerk_loads(session, service_point_id=county.id, category=category)
        return {staff.username for staff, _ in loads} & demo

    assert qualified("market-regulation") == {"clerk-361130-1", "clerk-361130-2"}
    assert qualified("civil-affairs") == {"clerk-361130-1", "clerk-361130-3"}
    assert qualified(None) == {"clerk-361130-1", "clerk-361130-2", "clerk-361130-3"}


def test_cases_go_to_the_least_loaded_clerk_whose_window_handles_the_category(session, admin):
    point = _point(session, admin)
    civil = points.create_window(session, actor=admin, point_id=point.id, name="窗口1", categories=["civil-affairs"])
    social = points.create_window(session, actor=admin, point_id=point.id, name="窗口2",
                                  categories=["social-security"])
    a = _clerk(session, admin, point, "clerk-xiagang-a", window=civil, name="甲一")
    b = _clerk(session, admin, point, "clerk-xiagang-b", window=social, name="乙二")

    first = route(session, handle_level="village", region_code=XIAGANG, category="civil-affairs")
    assert first.assignee.id == a.id and first.reason.endswith("分配给 窗口1 甲一（当前 0 件）")
    assert route(session, handle_level="village", region_code=XIAGANG, category="social-security").assignee.id == b.id
    nobody = route(session, handle_level="village", region_code=XIAGANG, category="health")
    assert nobody.assignee is None and "暂无可办理卫生健康类事项的在岗窗口人员" in nobody.reason

    c = _clerk(session, admin, point, "clerk-xiagang-c", name="丙三")  # no window: every category
    for _ in range(2):
        _case(session, region_code=XIAGANG)  # residence certificates: civil-affairs
    loads = {staff.username: count for staff, count in clerk_loads(session, service_point_id=point.id,
                                                                    category="civil-affairs")}
    assert loads == {"clerk-xiagang-a": 1, "clerk-xiagang-c": 1}  # a, then c (least loaded, then lowest id)
    third = _case(session, region_code=XIAGANG)
    assert third.assignee_id == a.id and "（当前 1 件）" in third.routing_reason
    points.set_staff_status(session, actor=admin, staff_id=c.id, status="on_leave")
    assert {s.username for s, _ in clerk_loads(session, service_point_id=point.id, category="civil-affairs")} \
        == {"clerk-xiagang-a"}


def test_a_pool_point_assigns_nobody(session, admin):
    point = _point(session, admin, routing_mode="pool")
    _clerk(session, admin, point, "clerk-xiagang-p")
    case = _case(session, region_code=XIAGANG)
    assert case.assignee_id is None and case.routing_reason.endswith("进入该点待认领队列")


# ---------------------------------------------------------------- return to the pool

def test_leave_hands_cases_on_then_to_the_pool_with_history_and_intact_chains(session, admin):
    point = _point(session, admin)
    a = _clerk(session, admin, point, "clerk-xiagang-a", name="甲一")
    b = _clerk(session, admin, point, "clerk-xiagang-b", name="乙二")
    cases = [_case(session, region_code=XIAGANG) for _ in range(3)]
    assert [case.assignee_id for case in cases] == [a.id, b.id, a.id]

    staff, report = points.set_staff_status(session, actor=admin, staff_id=a.id, status="on_leave")
    assert staff.status == "on_leave" and report.returned_to_pool == []
    assert sorted(item["case_id"] for item in report.reassigned) == sorted([cases[0].id, cases[2].id])
    for case in (cases[0], cases[2]):
        session.refresh(case)
        assert case.assignee_id == b.id and case.version == 2
        event = _events(session, case)[-1]
        assert (event.seq, event.action, event.actor, event.from_state, event.to_state) == \
            (2, "reassign", admin.key, "submitted", "submitted")
        assert event.payload == {"from_staff_id": a.id, "to_staff_id": b.id, "reason": "甲一 请假"}
        assert "甲一 请假，分配给 乙二" in case.routing_reason

    _staff, report = points.deactivate_staff(session, actor=admin, staff_id=b.id)  # nobody left on duty
    assert sorted(item["case_id"] for item in report.returned_to_pool) == sorted(case.id for case in cases)
    for case in cases:
        session.refresh(case)
        assert case.assignee_id is None
        assert _events(session, case)[-1].action == "return_to_pool"
    assert list(iter_broken(session, case_ids=[case.id for case in cases])) == []  # `onestop audit verify`

    _staff, report = points.set_staff_status(session, actor=admin, staff_id=a.id, status="on_duty")
    assert report is None  # back on duty: the pool stays as it is, to be claimed


def test_the_command_line_is_recorded_as_the_system(session, admin):
    point = _point(session, admin, routing_mode="pool")
    clerk = _clerk(session, admin, point, "clerk-xiagang-s")
    case = _case(session, region_code=XIAGANG)
    case.assignee_id = clerk.id  # a pool point: claimed by the clerk
    session.add(case)
    session.flush()
    points.set_staff_status(session, actor=points.CLI_OPERATOR, staff_id=clerk.id, status="on_leave")
    event = _events(session, case)[-1]
    assert (event.action, event.actor) == ("return_to_pool", "system")
    assert list(iter_broken(session, case_ids=[case.id])) == []


def test_moving_a_clerk_releases_their_cases_at_the_old_point(session, admin):
    point = _point(session, admin)
    clerk = _clerk(session, admin, point, "clerk-xiagang-move", name="丁四")
    case = _case(session, region_code=XIAGANG)
    town = session.exec(select(ServicePoint).where(ServicePoint.region_code == ZHONGYUN)).one()
    staff, report = points.edit_staff(session, actor=admin, staff_id=clerk.id, changes={"service_point_id": town.id})
    assert staff.service_point_id == town.id and [item["case_id"] for item in report.returned_to_pool] == [case.id]
    assert "丁四 调往 中云镇便民服务中心" in _events(session, case)[-1].comment


# ---------------------------------------------------------------- 全域通办

def test_anywhere_in_county_goes_to_the_receiving_point_of_the_county(session, seeded):
    qinghua = session.exec(select(ServicePoint).where(ServicePoint.region_code == QINGHUA)).one()
    decision = route(session, handle_level="town", region_code=XIAGANG, anywhere_in_county=True,
                     receiving_point_id=qinghua.id)
    assert decision.handling_point.id == qinghua.id
    assert "全域通办" in decision.reason and f"在本县 {qinghua.name} 收件，由收件点办理" in decision.reason


def test_anywhere_in_county_online_goes_to_the_nearest_point(session, admin):
    station = route(session, handle_level="town", region_code=QIUKOU_STATION, anywhere_in_county=True)
    assert station.handling_point.level == "village" and "由距申请人最近的" in station.reason
    town = route(session, handle_level="town", region_code=XIAGANG, anywhere_in_county=True)
    assert town.handling_point.region_code == ZHONGYUN and "当地未设便民服务站" in town.reason
    only_towns = route(session, handle_level="town", region_code=QIUKOU_STATION, anywhere_in_county=True,
                       receive_levels=("town", "county"))
    assert only_towns.handling_point.level == "town"  # the station may not receive this matter


def test_anywhere_in_county_ignores_a_receiving_point_of_another_county(session, admin):
    guangfeng = points.create_point(session, actor=points.CLI_OPERATOR, level="county", region_code=GUANGFENG)
    decision = route(session, handle_level="town", region_code=XIAGANG, anywhere_in_county=True,
                     receiving_point_id=guangfeng.id)
    assert decision.handling_point.region_code == ZHONGYUN and "不在申请人所在县" in decision.reason
    with pytest.raises(NoHandlingPoint):  # 广丰区's towns have no point; only its county centre
        route(session, handle_level="town", region_code=GUANGFENG_VILLAGE, anywhere_in_county=True,
              receive_levels=("village", "town"))


def test_the_catalogue_marks_pension_enrolment_anywhere_in_county(session, seeded):
    matter = current_matter(session, "resident-pension-enrolment")
    assert matter.definition.anywhere_in_county is True
    case = _case(session, region_code=XIAGANG, matter_code="resident-pension-enrolment")
    assert "全域通办" in case.routing_reason and case.handling_point_id == session.exec(
        select(ServicePoint.id).where(ServicePoint.region_code == ZHONGYUN)).one()
    assert current_matter(session, "residence-certificate").definition.anywhere_in_county is False


def test_nearest_is_pure_and_stays_in_the_county():
    def ref(parent, name):
        return RegionRef(parent, name, True)

    regions = {"440000000000": ref(None, "广东省"), "441900000000": ref("440000000000", "东莞市"),
               "441900003000": ref("441900000000", "东城街道"), "441900003001": ref("441900003000", "某社区"),
               "361130000000": ref(None, "婺源县"), "361130110000": ref("361130000000", "中云镇"),
               "361130110201": ref("361130110000", "霞港村")}
    points_by_region = {"361130000000": {"county": PointRef(1, "县中心", "county", "361130000000", "assign")},
                        "441900000000": {"county": PointRef(2, "市中心", "county", "441900000000", "assign")}}
    index = RoutingIndex(regions=regions, points=points_by_region, version=1)
    assert index.county_of("361130110201") == "361130000000"
    assert index.county_of("441900003001") == "441900000000"  # no county level: the city
    decision = index.nearest(region_code="361130110201")
    assert decision.point.id == 1 and decision.skipped_levels == ("village", "town")
    assert index.nearest(region_code="361130110201", levels=("village", "town")).point is None
    assert index.nearest(region_code="441900003001").point.id == 2
