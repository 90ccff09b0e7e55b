"""Object-level authorisation on every route: another person's case, file, certificate, grant,
consent or rectification is a 404 — for the wrong citizen, for a helper outside their villages,
for a clerk (and a supervisor) of another point. The routes come from the OpenAPI document, so
a new route with an id in its path is covered the day it is added."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import (WITH_STATION, act, auth, residence_application, run_jobs, staff_token, submit, upload_pdf,
                           verified_citizen)

OUTSIDERS = {
    "wrong citizen": None,  # a verified citizen, made in the fixture
    "helper outside their villages": "helper-361130103200",  # 江湾村; the case is in 秋口村
    "clerk of another point": "clerk-361130103",  # 江湾镇便民服务中心
    "supervisor of another town": "supervisor-361130103",
}
# Valid bodies, so that the answer is about the object and not about the body (FastAPI
# validates bodies before any route code runs).
BODIES = {
    ("POST", "/api/v1/cases/{case_id}/actions"): {"action": "deliver", "version": 1, "payload": {"method": "window"}},
    ("POST", "/api/v1/cases/{case_id}/evaluation"): {"level": 5},
    ("POST", "/api/v1/certificates/{certificate_id}/status"): {"status": "suspended", "reason": "测试"},
    ("POST", "/api/v1/certificates/{certificate_id}/grants"): {
        "grantee": "某银行", "purpose": "贷款", "expires_at": "2030-01-01T00:00:00+08:00"},
    ("POST", "/api/v1/consents/{consent_id}/confirmation"): {"confirmed": True, "comment": "ok"},
    ("POST", "/api/v1/rectifications/{rectification_id}/completion"): {
        "measures": "x", "return_visit": {"method": "phone", "summary": "x"}},
}
PUBLIC_PARAMS = {"identifier", "token", "code"}  # public by design: looked up by an unguessable value
# Role-guarded (403 for all but administrators), nobody's object: the admin calendar; service points,
# windows and staff (their jurisdiction 404s are tested in tests/api/test_admin_points.py); the
# figures of a region or a point (403 outside_jurisdiction, tested in tests/api/test_figures_regions.py).
NOT_OBJECTS = {"year", "day", "point_id", "window_id", "staff_id", "region_code", "service_point_id"}
NEWBORN_FORM = {"newborn_name": "钱小宝", "newborn_gender": "女", "birth_date": "2026-11-20",
                "birth_place": "婺源县人民医院", "mother_name": "孙红", "father_name": "钱八",
                "household_head_name": "钱八", "household_address": "婺源县秋口镇秋口村 12 号", "card_delivery": "window"}


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.70") as client:
        yield client


@pytest.fixture(scope="module")
def world(api, engine):
    """One citizen's objects: a completed case with its material and certificate, a grant on the
    certificate, a consent, and a rectification opened by a bad rating."""
    owner, id_number = verified_citizen(api, name="钱八")
    file_id = upload_pdf(api, owner)
    case = submit(api, owner, residence_application(id_number, file_id, name="钱八")).json()
    clerk = staff_token(api, f"clerk-{WITH_STATION}")
    for action, extra in (("accept", {}), ("approve", {"comment": "情况属实"})):
        case = act(api, clerk, case, action, **extra).json()
    run_jobs()
    case = act(api, clerk, case, "complete").json()
    assert case["state"] == "completed" and case["certificate_ids"], case
    certificate_id = case["certificate_ids"][0]
    grant = api.post(f"/api/v1/certificates/{certificate_id}/grants", headers=auth(owner), json={
        "grantee": "中国农业银行婺源县支行", "purpose": "办理个人住房贷款",
        "expires_at": (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()})
    from sqlmodel import Session, select

    from services.points.models import Staff

    with Session(engine) as session:
        helper_id = session.exec(select(Staff.id).where(Staff.username == f"helper-{WITH_STATION}")).one()
    consent = api.post("/api/v1/consents", json={"helper_id": helper_id, "matter_code": "residence-certificate"},
                       headers=auth(owner)).json()
    assert api.post(f"/api/v1/cases/{case['id']}/evaluation", json={"level": 1}, headers=auth(owner)).status_code == 201
    supervisor = staff_token(api, "supervisor-361130102")
    tasks = api.get("/api/v1/rectifications", headers=auth(supervisor)).json()["items"]
    rectification_id = next(task["id"] for task in tasks if task["case_id"] == case["id"])
    bundle = api.post("/api/v1/bundles/newborn/applications", headers={**auth(owner), "Idempotency-Key": uuid.uuid4().hex},
                      json={"applicant": {"kind": "person", "id_number": id_number, "name": "钱八"},
                            "region_code": WITH_STATION, "form": NEWBORN_FORM,
                            "materials": [{"code": code, "file_id": upload_pdf(api, owner)} for code in
                                          ("parents-id", "combined-form", "household-register", "marriage-certificate")]})
    assert bundle.status_code == 201, bundle.text
    ids = {"case_id": case["id"], "file_id": file_id, "certificate_id": certificate_id, "consent_id": consent["id"],
           "rectification_id": rectification_id, "bundle_case_id": bundle.json()["id"],
           "grant_id": grant.json().get("id") if grant.status_code == 201 else str(uuid.uuid4())}
    return {"owner": owner, "ids": ids, "case": case}


def _routes(api) -> list[tuple[str, str]]:
    paths = api.get("/openapi.json").json()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item
                  if method in ("get", "post", "put", "patch", "delete") and "{" in path
                  and not set(re.findall(r"{(\w+)}", path)) & (PUBLIC_PARAMS | NOT_OBJECTS))


def _call(api, method: str, path: str, ids: dict, token: str):
    url = path.format(**ids)
    body = BODIES.get((method, path))
    return api.request(method, url, json=body if method in ("POST", "PUT", "PATCH") else None, headers=auth(token))


def _outsider_tokens(api) -> dict[str, str]:
    tokens = {}
    for who, username in OUTSIDERS.items():
        tokens[who] = verified_citizen(api)[0] if username is None else staff_token(api, username)
    return tokens


def test_every_route_with_an_object_id_is_covered(api, world):
    routes = _routes(api)
    params = {name for _, path in routes for name in re.findall(r"{(\w+)}", path)}
    assert params <= set(world["ids"]), f"routes with ids this test can't fill: {params - set(world['ids'])}"
    assert len(routes) >= 15


def test_the_owner_reaches_their_objects(api, world):
    for path in ("/api/v1/cases/{case_id}", "/api/v1/files/{file_id}", "/api/v1/certificates/{certificate_id}",
                 "/api/v1/consents/{consent_id}", "/api/v1/cases/{case_id}/evaluation",
                 "/api/v1/bundle-cases/{bundle_case_id}"):
        assert _call(api, "GET", path, world["ids"], world["owner"]).status_code == 200, path


def test_someone_else_s_objects_are_404_on_every_route(api, world):
    tokens = _outsider_tokens(api)
    failures = []
    for method, path in _routes(api):
        for who, token in tokens.items():
            response = _call(api, method, path, world["ids"], token)
            if response.status_code != 404:
                failures.append(f"{method} {path} as {who}: {response.status_code} {response.text[:120]}")
            elif response.json().get("error") == "not_found":  # the router's 404: the route did not even match
                failures.append(f"{method} {path}: the test's URL matched no route")
    assert not failures, "\n".join(failures)


def test_lists_and_searches_do_not_leak_the_case(api, world):
    tokens = _outsider_tokens(api)
    for who, token in tokens.items():
        listed = api.get("/api/v1/cases", headers=auth(token))
        assert listed.status_code == 200 and world["ids"]["case_id"] not in listed.text, who
        consents = api.get("/api/v1/consents", headers=auth(token))
        assert world["ids"]["consent_id"] not in consents.text, who
        certificates = api.get("/api/v1/certificates", headers=auth(token))
        assert world["ids"]["certificate_id"] not in certificates.text, who
        bundles = api.get("/api/v1/bundle-cases", headers=auth(token))
        assert world["ids"]["bundle_case_id"] not in bundles.text, who


def test_someone_else_s_file_cannot_be_attached_to_an_application(api, world):
    thief, id_number = verified_citizen(api)
    body = residence_application(id_number, world["ids"]["file_id"])
    response = submit(api, thief, body)
    assert response.status_code in (404, 422) and world["case"]["number"] not in response.text
