"""Regional figures over HTTP: cases made through the real API show up in the region's figures
(and its children's, and the handling point's) after a refresh, equal to a recomputation from the
cases; they are stale until then and `as_of` says so; jurisdiction; bad input is a 4xx."""

from __future__ import annotations

import random

import pytest
from sqlmodel import select

from services.accounts.principal import Principal
from services.db import session_scope
from services.figures import service
from services.points.models import ServicePoint
from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import (WITH_STATION, WITHOUT_STATION, act, auth, residence_application, run_jobs, staff_token,
                           submit, upload_pdf, verified_citizen)

TOWN = "361130102000"  # 秋口镇: WITH_STATION and WITHOUT_STATION are its villages
OTHER_TOWN_VILLAGE = "361130103001"  # 江湾居委会
FIGURE_NAMES = ("received", "accepted", "completed", "denied", "not_accepted", "withdrawn", "open", "overdue",
                "due_soon", "paused", "completion_cases")
COUNTY_ADMIN = Principal(kind="staff", account_id=0, roles=("admin",), jurisdiction_code="361130000000")


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.64") as client:
        yield client


def _refresh() -> dict:
    with session_scope() as session:
        return service.refresh(session)


def _clerk_for(api, case: dict) -> str:
    with session_scope() as session:
        point = session.get(ServicePoint, case["handling_point"]["id"])
        code = point.region_code if point.level == "village" else point.region_code[:9 if point.level == "town" else 6]
    return staff_token(api, f"clerk-{code}" if point.level != "county" else "clerk-361130-1")


def _apply(api, citizen: str, id_number: str, region: str) -> dict:
    response = submit(api, citizen, residence_application(id_number, upload_pdf(api, citizen), region_code=region))
    assert response.status_code == 201, response.text
    return response.json()


def _step(api, token: str, case: dict, action: str, **extra) -> dict:
    response = act(api, token, case, action, **extra)
    assert response.status_code == 200, (action, response.text)
    return response.json()


def _live(region_code: str) -> dict:
    with session_scope() as session:
        return service.live_region_figures(session, region_code=region_code)


def _get(api, token: str, path: str, **params):
    return api.get(f"/api/v1/figures/{path}", params=params, headers=auth(token))


def test_figures_equal_a_recomputation_from_cases_made_through_the_api(api):
    rng = random.Random(11)
    citizen, id_number = verified_citizen(api)
    paths = [[], ["accept"], ["accept", "approve", "complete"], ["refuse"], ["withdraw"], ["accept", "deny"],
             ["accept", "approve", "complete"]]
    for index in range(7):
        case = _apply(api, citizen, id_number, rng.choice([WITH_STATION, WITHOUT_STATION, OTHER_TOWN_VILLAGE]))
        clerk = _clerk_for(api, case)
        for action in paths[index]:
            extra = {"comment": "理由"} if action in ("refuse", "deny", "approve") else {}
            case = _step(api, citizen if action == "withdraw" else clerk, case, action, **extra)
            if action == "approve":
                run_jobs()
        if case["state"] == "completed":
            rated = api.post(f"/api/v1/cases/{case['id']}/evaluation", json={"level": rng.choice([2, 4, 5])},
                             headers=auth(citizen))
            assert rated.status_code == 201, rated.text
    _refresh()

    supervisor = staff_token(api, "supervisor-361130102")
    admin = staff_token(api, "admin")
    for token, region in ((supervisor, TOWN), (supervisor, WITH_STATION), (admin, "361130000000")):
        body = _get(api, token, f"regions/{region}").json()
        live = _live(region)
        assert body["ready"] is True and body["as_of"]
        assert {name: body["figures"][name] for name in FIGURE_NAMES} == {name: live["figures"][name]
                                                                          for name in FIGURE_NAMES}
        ratings = body["figures"]["satisfaction"]["by_level"]
        assert [ratings[str(level)] for level in range(1, 6)] == [live["figures"][f"rated_{level}"]
                                                                  for level in range(1, 6)]
        for child in body["children"]:
            expected = live["children"].get(child["code"])
            if child["figures"]["received"]:
                assert {name: child["figures"][name] for name in FIGURE_NAMES} == {
                    name: expected[name] for name in FIGURE_NAMES}, child["code"]
    town = _get(api, supervisor, f"regions/{TOWN}").json()
    assert {child["code"] for child in town["children"]} >= {WITH_STATION, WITHOUT_STATION}
    assert town["region"] == {"code": TOWN, "name": "秋口镇", "level": "town"}

    # the same cases per handling point and per clerk add up to the point's figures
    with session_scope() as session:
        station = session.execute(select(ServicePoint).where(ServicePoint.region_code == WITH_STATION)).scalar_one()
    point = _get(api, supervisor, f"points/{station.id}").json()
    assert point["service_point"]["id"] == station.id and point["ready"] is True
    for name in FIGURE_NAMES:
        assert point["figures"][name] == sum(clerk["figures"][name] for clerk in point["clerks"]), name
    assert any(clerk["role"] == "clerk" for clerk in point["clerks"])


def test_figures_are_stale_until_the_refresh_and_say_so(api):
    _refresh()
    supervisor = staff_token(api, "supervisor-361130102")
    before = _get(api, supervisor, f"regions/{WITH_STATION}").json()
    citizen, id_number = verified_citizen(api)
    case = _apply(api, citizen, id_number, WITH_STATION)
    stale = _get(api, supervisor, f"regions/{WITH_STATION}").json()
    assert stale["figures"] == before["figures"] and stale["as_of"] == before["as_of"]
    _refresh()
    fresh = _get(api, supervisor, f"regions/{WITH_STATION}").json()
    assert fresh["as_of"] > before["as_of"]
    assert fresh["figures"]["received"] == before["figures"]["received"] + 1
    assert fresh["figures"]["open_by_state"].get("submitted", 0) == before["figures"]["open_by_state"].get("submitted", 0) + 1

    _step(api, _clerk_for(api, case), case, "accept")
    assert _get(api, supervisor, f"regions/{WITH_STATION}").json()["figures"] == fresh["figures"]
    _refresh()
    accepted = _get(api, supervisor, f"regions/{WITH_STATION}").json()["figures"]
    assert accepted["accepted"] == fresh["figures"]["accepted"] + 1
    assert accepted["open_by_state"].get("accepted", 0) == fresh["figures"]["open_by_state"].get("accepted", 0) + 1
    assert accepted["open"] == fresh["figures"]["open"]


def test_only_inside_the_jurisdiction(api):
    _refresh()
    supervisor = staff_token(api, "supervisor-361130102")
    admin = staff_token(api, "admin")
    station_clerk = staff_token(api, f"clerk-{WITH_STATION}")
    town_clerk = staff_token(api, "clerk-361130102")
    helper = staff_token(api, f"helper-{WITH_STATION}")
    citizen, _ = verified_citizen(api)
    allowed = [(supervisor, TOWN), (supervisor, WITH_STATION), (admin, "361130000000"), (admin, TOWN),
               (station_clerk, WITH_STATION), (town_clerk, TOWN)]
    refused = [(supervisor, "361130000000"), (supervisor, "361130103000"), (admin, "360000000000"),
               (admin, "361100000000"), (station_clerk, TOWN), (station_clerk, WITHOUT_STATION),
               (town_clerk, WITH_STATION), (helper, WITH_STATION)]
    for token, region in allowed:
        assert _get(api, token, f"regions/{region}").status_code == 200, region
    for token, region in refused:
        response = _get(api, token, f"regions/{region}")
        assert response.status_code == 403 and response.json()["error"] == "outside_jurisdiction", region
    assert _get(api, citizen, f"regions/{TOWN}").json()["error"] == "staff_only"
    assert api.get(f"/api/v1/figures/regions/{TOWN}").status_code == 401

    with session_scope() as session:
        points = {point.region_code: point.id for point in session.execute(select(ServicePoint)).scalars()}
    assert _get(api, station_clerk, f"points/{points[WITH_STATION]}").status_code == 200
    assert _get(api, supervisor, f"points/{points[WITH_STATION]}").status_code == 200
    assert _get(api, supervisor, f"points/{points[TOWN]}").status_code == 200
    for token, point_id in ((station_clerk, points[TOWN]), (supervisor, points["361130000000"]),
                            (helper, points[WITH_STATION]), (admin, 2_147_483_647)):
        response = _get(api, token, f"points/{point_id}")
        assert response.status_code == 403 and response.json()["error"] == "outside_jurisdiction", point_id


def test_bad_input_is_a_4xx_with_a_reason(api):
    admin = staff_token(api, "admin")
    cases = [
        ("regions/36113010220", {}, "validation_error"),
        ("regions/abcdefghijkl", {}, "validation_error"),
        ("regions/3611301022001", {}, "validation_error"),
        ("regions/361130999999", {}, "unknown_region_code"),
        ("regions/361130000000", {"from": "2026-05-01", "to": "2026-04-01"}, "invalid_date_range"),
        ("regions/361130000000", {"from": "1999-12-31"}, "invalid_date_range"),
        ("regions/361130000000", {"to": "2101-01-01"}, "invalid_date_range"),
        ("regions/361130000000", {"from": "0001-01-01", "to": "9999-12-31"}, "invalid_date_range"),
        ("regions/361130000000", {"from": "yesterday"}, "validation_error"),
        ("regions/361130000000", {"from": "2026-02-30"}, "validation_error"),
        ("regions/361130000000", {"matter_code": "no-such-matter"}, "unknown_matter"),
        ("regions/361130000000", {"matter_code": ""}, "validation_error"),
        ("regions/361130000000", {"matter_code": "x" * 65}, "validation_error"),
        ("points/0", {}, "validation_error"),
        ("points/-1", {}, "validation_error"),
        ("points/2147483648", {}, "validation_error"),
        ("points/99999999999999999999", {}, "validation_error"),
        ("points/abc", {}, "validation_error"),
        ("cases", {"service_point_id": "2147483648"}, "validation_error"),
        ("cases", {"service_point_id": "0"}, "validation_error"),
    ]
    for path, params, error in cases:
        response = _get(api, admin, path, **params)
        assert response.status_code == 422 and response.json()["error"] == error, (path, params, response.text)
    ok = _get(api, admin, "regions/361130000000", **{"from": "2026-01-01", "to": "2026-01-01",
                                                       "matter_code": "residence-certificate"})
    assert ok.status_code == 200 and ok.json()["from"] == "2026-01-01" and ok.json()["to"] == "2026-01-01"
    assert ok.json()["matter_code"] == "residence-certificate"
