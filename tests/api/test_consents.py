"""Assisted applications (帮办代办): consents in the citizen's own mini-program, signed paper
consents confirmed by a clerk, and what each party may see."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from services.files.models import StoredFile
from services.points.models import Staff
from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import (MINIMAL_PDF, WITH_STATION, WITHOUT_STATION, act, auth, citizen_token, make_id_number,
                           residence_application, staff_token, upload_pdf, verified_citizen)

HELPER = f"helper-{WITH_STATION}"  # 秋口村便民服务站
OTHER_HELPER = "helper-361130103200"  # 江湾村便民服务站
STATION_CLERK = f"clerk-{WITH_STATION}"


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.40") as client:
        yield client


@pytest.fixture(scope="module")
def helper_id(engine, seeded) -> int:
    with Session(engine) as session:
        return session.exec(select(Staff.id).where(Staff.username == HELPER)).one()


def _consent(api, token: str, helper_id: int, matter_code: str = "residence-certificate"):
    return api.post("/api/v1/consents", json={"helper_id": helper_id, "matter_code": matter_code}, headers=auth(token))


def test_a_citizen_consents_and_the_named_helper_finds_it_by_code(api, helper_id):
    token, _ = verified_citizen(api, name="李四")
    created = _consent(api, token, helper_id)
    assert created.status_code == 201, created.text
    consent = created.json()
    assert {"id", "code", "expires_at"} <= set(consent) and consent["status"] == "active"
    assert consent["kind"] == "online" and consent["helper"]["id"] == helper_id
    assert consent["applicant"]["name_masked"] == "李*"
    helper = staff_token(api, HELPER)
    found = api.post("/api/v1/consents/lookup", json={"code": consent["code"].lower()}, headers=auth(helper))
    assert found.status_code == 200 and found.json()["id"] == consent["id"]
    assert consent["id"] in [item["id"] for item in api.get("/api/v1/consents", headers=auth(helper)).json()["items"]]
    assert consent["id"] in [item["id"] for item in api.get("/api/v1/consents", headers=auth(token)).json()["items"]]
    # another helper, another citizen, a clerk: not theirs
    other = staff_token(api, OTHER_HELPER)
    assert api.post("/api/v1/consents/lookup", json={"code": consent["code"]}, headers=auth(other)).status_code == 404
    assert api.get(f"/api/v1/consents/{consent['id']}", headers=auth(other)).status_code == 404
    stranger = citizen_token(api)
    assert api.get(f"/api/v1/consents/{consent['id']}", headers=auth(stranger)).status_code == 404
    clerk = staff_token(api, STATION_CLERK)
    assert api.get(f"/api/v1/consents/{consent['id']}", headers=auth(clerk)).status_code == 404
    assert api.post("/api/v1/consents/lookup", json={"code": consent["code"]}, headers=auth(token)).status_code == 403


def test_consent_needs_a_verified_citizen_a_helper_and_a_matter(api, helper_id, engine):
    unverified = citizen_token(api)
    refused = _consent(api, unverified, helper_id)
    assert refused.status_code == 403 and refused.json()["error"] == "real_name_required"
    token, _ = verified_citizen(api)
    with Session(engine) as session:
        clerk_id = session.exec(select(Staff.id).where(Staff.username == STATION_CLERK)).one()
    for helper, matter, code in ((clerk_id, "residence-certificate", "unknown_helper"),
                                 (999_999, "residence-certificate", "unknown_helper"),
                                 (helper_id, "no-such-matter", "unknown_matter")):
        response = _consent(api, token, helper, matter)
        assert response.status_code == 422 and response.json()["error"] == code, response.text
    helper = staff_token(api, HELPER)
    assert _consent(api, helper, helper_id).json()["error"] == "citizen_only"


def test_the_citizen_takes_a_consent_back(api, helper_id):
    token, _ = verified_citizen(api)
    consent = _consent(api, token, helper_id).json()
    assert api.delete(f"/api/v1/consents/{consent['id']}", headers=auth(token)).status_code == 204
    assert api.get(f"/api/v1/consents/{consent['id']}", headers=auth(token)).json()["status"] == "revoked"
    again = api.delete(f"/api/v1/consents/{consent['id']}", headers=auth(token))
    assert again.status_code == 409 and again.json()["error"] == "consent_not_revocable"
    helper = staff_token(api, HELPER)
    assert api.delete(f"/api/v1/consents/{consent['id']}", headers=auth(helper)).status_code == 403


def test_helpers_serving_a_village(api):
    token = citizen_token(api)
    helpers = api.get("/api/v1/helpers", params={"region_code": WITH_STATION}, headers=auth(token)).json()["items"]
    assert [item["service_point"]["name"] for item in helpers] == ["秋口村便民服务站"]
    assert api.get("/api/v1/helpers", params={"region_code": WITHOUT_STATION}, headers=auth(token)).json()["items"] == []
    assert api.get("/api/v1/helpers", params={"region_code": "1"}, headers=auth(token)).status_code == 422


def test_a_paper_consent_keeps_its_scan_and_only_the_helper_sees_it(api, engine):
    helper = staff_token(api, HELPER)
    scan = upload_pdf(api, helper)
    body = {"matter_code": "residence-certificate", "file_id": scan,
            "applicant": {"id_number": make_id_number(), "name": "王大妈"}}
    created = api.post("/api/v1/consents/paper", json=body, headers=auth(helper))
    assert created.status_code == 201, created.text
    consent = created.json()
    assert consent["kind"] == "paper" and consent["confirmation"]["state"] == "pending"
    assert consent["file_id"] == scan and consent["applicant"]["name_masked"] == "王**"
    # the scan is kept (not cleaned up), and readable only by the helper for now
    from services.files.service import expire_if_unattached

    with Session(engine) as session:
        assert expire_if_unattached(session, file_id=scan) is False
        assert session.get(StoredFile, scan).kept_by == f"consent:{consent['id']}"
    assert api.get(f"/api/v1/files/{scan}", headers=auth(helper)).status_code == 200
    for other in (citizen_token(api), staff_token(api, STATION_CLERK), staff_token(api, OTHER_HELPER)):
        assert api.get(f"/api/v1/files/{scan}", headers=auth(other)).status_code == 404
    # the scan can't be reused for another consent, and citizens can't record paper consents
    reuse = api.post("/api/v1/consents/paper", json=body, headers=auth(helper))
    assert reuse.status_code == 404 and reuse.json()["error"] == "file_not_found"
    citizen = citizen_token(api)
    assert api.post("/api/v1/consents/paper", json={**body, "file_id": upload_pdf(api, citizen)},
                    headers=auth(citizen)).json()["error"] == "helper_only"


# ------------------------------------------------------------ applications filed by a helper

def _helper_application(id_number: str, file_id: str, consent_id: str | None, name: str = "张三",
                        region_code: str = WITH_STATION) -> dict:
    body = residence_application(id_number, file_id, name=name, region_code=region_code)
    if consent_id is not None:
        body["consent_id"] = consent_id
    return body


def _submit(api, token: str, body: dict):
    return api.post("/api/v1/cases", json=body, headers={**auth(token), "Idempotency-Key": uuid.uuid4().hex})


def test_a_helper_applies_with_the_citizen_s_consent_and_both_see_the_case(api, helper_id):
    villager, id_number = verified_citizen(api, name="赵六")
    consent = _consent(api, villager, helper_id).json()
    helper = staff_token(api, HELPER)
    created = _submit(api, helper, _helper_application(id_number, upload_pdf(api, helper), consent["id"], name="赵六"))
    assert created.status_code == 201, created.text
    case = created.json()
    assert case["created_by"] == "helper" and case["receiving_point"]["name"] == "秋口村便民服务站"
    assert case["applicant"]["name"] == "赵六"
    assert case["id"] in [item["id"] for item in api.get("/api/v1/cases", headers=auth(villager)).json()["items"]]
    assert case["id"] in [item["id"] for item in api.get("/api/v1/cases", headers=auth(helper)).json()["items"]]
    assert api.get(f"/api/v1/cases/{case['id']}", headers=auth(villager)).status_code == 200
    other = staff_token(api, OTHER_HELPER)
    assert api.get(f"/api/v1/cases/{case['id']}", headers=auth(other)).status_code == 404
    assert case["id"] not in [item["id"] for item in api.get("/api/v1/cases", headers=auth(other)).json()["items"]]
    used = api.get(f"/api/v1/consents/{consent['id']}", headers=auth(villager)).json()
    assert used["status"] == "used" and used["case_id"] == case["id"]
    # a consent is good for one application
    again = _submit(api, helper, _helper_application(id_number, upload_pdf(api, helper), consent["id"], name="赵六"))
    assert again.status_code == 422 and again.json()["error"] == "consent_not_usable"


def test_a_helper_needs_a_consent_for_that_person_and_matter(api, helper_id):
    villager, id_number = verified_citizen(api)
    helper = staff_token(api, HELPER)
    missing = _submit(api, helper, _helper_application(id_number, upload_pdf(api, helper), None))
    assert missing.status_code == 422 and missing.json()["error"] == "consent_required"
    someone_else, _ = verified_citizen(api)
    foreign = _consent(api, someone_else, helper_id).json()
    wrong = _submit(api, helper, _helper_application(id_number, upload_pdf(api, helper), foreign["id"]))
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["reason"] == "wrong_applicant"
    revoked = _consent(api, villager, helper_id).json()
    api.delete(f"/api/v1/consents/{revoked['id']}", headers=auth(villager))
    response = _submit(api, helper, _helper_application(id_number, upload_pdf(api, helper), revoked["id"]))
    assert response.status_code == 422 and response.json()["detail"][0]["reason"] == "revoked"


def test_a_helper_cannot_apply_outside_their_villages(api, helper_id, engine):
    with Session(engine) as session:
        other_helper_id = session.exec(select(Staff.id).where(Staff.username == OTHER_HELPER)).one()
    villager, id_number = verified_citizen(api)
    consent = _consent(api, villager, other_helper_id).json()
    other = staff_token(api, OTHER_HELPER)  # 江湾村: 秋口村 is not theirs
    response = _submit(api, other, _helper_application(id_number, upload_pdf(api, other), consent["id"]))
    assert response.status_code in (403, 422) and "region_code" in response.text


def test_a_paper_consent_must_be_confirmed_before_acceptance(api):
    helper = staff_token(api, HELPER)
    id_number = make_id_number()
    consent = api.post("/api/v1/consents/paper", headers=auth(helper), json={
        "matter_code": "residence-certificate", "file_id": upload_pdf(api, helper, MINIMAL_PDF),
        "applicant": {"id_number": id_number, "name": "王大妈"}}).json()
    created = _submit(api, helper, _helper_application(id_number, upload_pdf(api, helper), consent["id"], name="王大妈"))
    assert created.status_code == 201, created.text
    case = created.json()
    clerk = staff_token(api, STATION_CLERK)
    blocked = act(api, clerk, case, "accept")
    assert blocked.status_code == 409 and "paper_consent_unconfirmed" in blocked.text
    # the case's clerk now sees the consent and its scan
    assert api.get(f"/api/v1/consents/{consent['id']}", headers=auth(clerk)).status_code == 200
    assert api.get(f"/api/v1/files/{consent['file_id']}/content", headers=auth(clerk)).status_code == 200
    # a helper can't confirm their own paper; a rejection needs a reason
    assert api.post(f"/api/v1/consents/{consent['id']}/confirmation", json={"confirmed": True},
                    headers=auth(helper)).status_code == 403
    assert api.post(f"/api/v1/consents/{consent['id']}/confirmation", json={"confirmed": False},
                    headers=auth(clerk)).status_code == 422
    confirmed = api.post(f"/api/v1/consents/{consent['id']}/confirmation",
                         json={"confirmed": True, "comment": "已核对本人身份证及签字"}, headers=auth(clerk))
    assert confirmed.status_code == 200 and confirmed.json()["confirmation"]["state"] == "confirmed"
    assert api.post(f"/api/v1/consents/{consent['id']}/confirmation", json={"confirmed": True},
                    headers=auth(clerk)).status_code == 409
    accepted = act(api, clerk, case, "accept")
    assert accepted.status_code == 200, accepted.text
