"""新生儿出生一件事: one submission, four child cases each routed to its own point; the birth
certificate one child issues becomes the next child's material; the parent completes when every
child does and fails visibly when one is denied."""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from services.bundles.models import BundleCase
from tests.services.cases.helpers import ensure_routers, staff
from tests.support import WITH_STATION, act, auth, run_jobs, upload_pdf, verified_citizen

FORM = {"newborn_name": "李小明", "newborn_gender": "男", "birth_date": "2026-11-20", "birth_place": "婺源县人民医院",
        "mother_name": "王芳", "father_name": "李强", "household_head_name": "李强",
        "household_address": "婺源县秋口镇秋口村 12 号", "card_delivery": "window"}
COUNTY_CLERK, TOWN_CLERK = "clerk-361130-1", "clerk-361130102"


@pytest.fixture(scope="module")
def bundle_client(client):
    ensure_routers(client.app)
    return client


def application(client, token: str, id_number: str, **changes) -> dict:
    materials = [{"code": code, "file_id": upload_pdf(client, token)}
                 for code in ("parents-id", "combined-form", "household-register", "marriage-certificate")]
    return {"applicant": {"kind": "person", "id_number": id_number, "name": "李强"}, "region_code": WITH_STATION,
            "form": {**FORM, **changes}, "materials": materials}


def apply(client, token, body, key="k1"):
    return client.post("/api/v1/bundles/newborn/applications", json=body,
                       headers={**auth(token), "Idempotency-Key": key})


def child(parent: dict, matter_code: str) -> dict:
    return next(c for c in parent["children"] if c["matter_code"] == matter_code)


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_the_newborn_bundle_is_offered_with_its_four_matters(bundle_client):
    bundle = bundle_client.get("/api/v1/bundles/newborn").json()
    assert bundle["available"] is True and bundle["name"] == "新生儿出生一件事"
    assert [m["code"] for m in bundle["matters"]] == ["birth-medical-certificate", "newborn-household-registration",
                                                      "resident-medical-insurance-enrolment", "social-security-card"]
    assert bundle_client.get("/api/v1/bundles/nothing").status_code == 404


def test_one_submission_four_routed_children_and_the_parent_completes_with_them(bundle_client, engine):
    client = bundle_client
    token, id_number = verified_citizen(client, name="李强")
    with Session(engine) as session:
        before = session.exec(select(func.count()).select_from(BundleCase)).one()
    bad = apply(client, token, application(client, token, id_number, card_delivery="mail"))  # no mail address
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"].startswith("matters.social-security-card.form")
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(BundleCase)).one() == before

    body = application(client, token, id_number)
    created = apply(client, token, body)
    assert created.status_code == 201, created.text
    parent = created.json()
    assert parent["state"] == "in_progress" and len(parent["children"]) == 4
    assert apply(client, token, body).json()["id"] == parent["id"]  # the same key and body: the same parent
    assert apply(client, token, {**body, "form": {**FORM, "newborn_name": "李小红"}}).status_code == 422
    levels = {c["matter_code"]: c["handling_point"]["level"] for c in parent["children"]}
    assert levels == {"birth-medical-certificate": "county", "newborn-household-registration": "town",
                      "resident-medical-insurance-enrolment": "town", "social-security-card": "county"}
    household = child(parent, "newborn-household-registration")
    assert "birth-medical-certificate" not in [m["code"] for m in household["materials"]]
    assert all(c["bundle_case_id"] == parent["id"] for c in parent["children"])

    county, town = staff(client, COUNTY_CLERK), staff(client, TOWN_CLERK)
    actions = client.get(f"/api/v1/cases/{household['id']}/actions", headers=auth(town)).json()
    assert "accept" not in [a["action"] for a in actions]  # waits for the birth certificate

    birth = ok(act(client, county, child(parent, "birth-medical-certificate"), "accept"))  # 即办件
    assert birth["state"] == "approved"
    run_jobs()
    birth = ok(act(client, county, birth, "complete"))
    household = client.get(f"/api/v1/cases/{household['id']}", headers=auth(town)).json()
    assert [m for m in household["materials"] if m["code"] == "birth-medical-certificate"][0]["certificate_id"] \
        == birth["certificate_ids"][0]
    for case, clerk in ((household, town), (child(parent, "resident-medical-insurance-enrolment"), town)):
        case = ok(act(client, clerk, case, "accept"))
        assert case["state"] == "approved"
        ok(act(client, clerk, case, "complete"))
    card = ok(act(client, county, child(parent, "social-security-card"), "accept"))
    card = ok(act(client, county, card, "approve"))
    assert client.get(f"/api/v1/bundle-cases/{parent['id']}", headers=auth(token)).json()["state"] == "in_progress"
    ok(act(client, county, card, "complete"))
    done = client.get(f"/api/v1/bundle-cases/{parent['id']}", headers=auth(token)).json()
    assert done["state"] == "completed" and done["closed_at"]
    assert parent["id"] in [p["id"] for p in client.get("/api/v1/bundle-cases", headers=auth(token)).json()["items"]]
    seen_by_town = client.get(f"/api/v1/bundle-cases/{parent['id']}", headers=auth(town)).json()
    assert {c["handling_point"]["level"] for c in seen_by_town["children"]} == {"town"}
    stranger, _ = verified_citizen(client)
    assert client.get(f"/api/v1/bundle-cases/{parent['id']}", headers=auth(stranger)).status_code == 404


def test_the_parent_fails_visibly_when_one_child_is_denied(bundle_client):
    client = bundle_client
    token, id_number = verified_citizen(client, name="李强")
    parent = apply(client, token, application(client, token, id_number), key="k2").json()
    county = staff(client, COUNTY_CLERK)
    card = ok(act(client, county, child(parent, "social-security-card"), "accept"))
    ok(act(client, county, card, "deny", comment="新生儿信息与公安户籍数据不一致"))
    failed = client.get(f"/api/v1/bundle-cases/{parent['id']}", headers=auth(token)).json()
    assert failed["state"] == "failed" and child(parent, "social-security-card")["number"] in failed["outcome_reason"]


def test_parent_state_rules():
    from services.bundles.progress import parent_state

    assert parent_state({"a": "completed", "b": "delivered"})[0] == "completed"
    assert parent_state({"a": "completed", "b": "accepted"})[0] == "in_progress"
    assert parent_state({"a": "denied", "b": "accepted"})[0] == "failed"
    assert parent_state({"a": "withdrawn", "b": "withdrawn"})[0] == "withdrawn"
    assert parent_state({"a": "withdrawn", "b": "completed"})[0] == "completed"


def test_a_bundle_and_a_submission_citing_one_upload_at_once_only_one_takes_it(bundle_client, engine):
    """The bundle locks its uploads before writing its children: started while a submission that
    cites one of them is uncommitted, it waits, then finds the upload used and writes nothing."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite's writers queue on the whole database: the second request can't overlap the first")
    from services.bundles.service import submit_bundle
    from services.cases.models import Case
    from services.cases.service import submit_case
    from services.files.models import StoredFile
    from tests.support import outcome_once_first_commits, principal_of, residence_application

    client = bundle_client
    token, id_number = verified_citizen(client, name="李强")
    body = application(client, token, id_number)
    shared = body["materials"][0]["file_id"]
    principal = principal_of(engine, token)
    first = Session(engine, expire_on_commit=False)
    created = submit_case(first, principal=principal, body=residence_application(id_number, shared, name="李强"),
                          idempotency_key="single").case

    def bundle_request(session) -> str:
        return submit_bundle(session, principal=principal, code="newborn", body=body, idempotency_key="bundle")[0].id

    assert outcome_once_first_commits(first, lambda: Session(engine, expire_on_commit=False), bundle_request) \
        == "file_not_found"
    with Session(engine) as session:
        bundles = session.exec(select(func.count()).select_from(BundleCase)
                               .where(BundleCase.created_by_principal == principal.key)).one()
        cases = session.exec(select(Case.id).where(Case.created_by_principal == principal.key)).all()
        assert session.get(StoredFile, shared).case_id == created.id
    assert bundles == 0 and cases == [created.id]
