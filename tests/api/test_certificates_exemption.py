"""免证办 end to end: a citizen who holds a valid certificate cites it instead of uploading a copy
when a matter's material names its type; the clerk sees it verified from the registry; the use
is in the holder's log. Someone else's, suspended, expired or wrong-type certificates are
refused with the reason. Uses whichever pair of matters the catalogue has (a matter producing a
person's certificate, and a matter whose material that certificate can stand in for)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import Session

from tests.services.certificates.support import FORWARD, staff_token
from tests.support import WITH_STATION, auth, residence_application, run_jobs, submit, upload_pdf, verified_citizen


def _pair():
    """(producing matter, citing matter, material code) with a person holder and applicant."""
    from workflows.catalogue import default_catalogue

    matters = default_catalogue().matters
    producers = {m.definition.certificate_type: m for m in matters.values() if m.definition.certificate_type}
    for matter in sorted(matters.values(), key=lambda m: m.code):
        for material in matter.definition.materials:
            producer = producers.get(material.certificate_type)
            if producer is not None and producer.definition.subject_kind == "person" \
                    and matter.definition.subject_kind in ("person", "either") and producer.code != matter.code:
                return producer, matter, material.code
    raise AssertionError("the catalogue has no matter whose material a person's certificate can stand in for")


def _staff_of_point(engine, point_id: int) -> list[str]:
    """The seeded demo accounts of a service point (by the seed's naming; never accounts other
    tests made, whose passwords we do not know), clerks first."""
    from services.points.models import ServicePoint

    with Session(engine) as session:
        point = session.get(ServicePoint, point_id)
    if point.level == "county":
        return [f"clerk-{point.region_code[:6]}-1", f"reviewer-{point.region_code[:6]}",
                f"supervisor-{point.region_code[:6]}"]
    if point.level == "town":
        return [f"clerk-{point.region_code[:9]}", f"supervisor-{point.region_code[:9]}"]
    return [f"clerk-{point.region_code}"]


def _drive(client, engine, case: dict) -> dict:
    tokens = [staff_token(client, name) for name in _staff_of_point(engine, case["handling_point"]["id"])]
    for _ in range(12):
        if case["state"] == "approved":
            return case
        for token in tokens:
            actions = {a["action"] for a in client.get(f"/api/v1/cases/{case['id']}/actions", headers=auth(token)).json()}
            action = next((name for name in FORWARD if name in actions), None)
            if action:
                response = client.post(f"/api/v1/cases/{case['id']}/actions",
                                       json={"action": action, "version": case["version"], "comment": "符合条件"},
                                       headers=auth(token))
                assert response.status_code == 200, response.text
                case = response.json()
                break
        else:
            raise AssertionError(f"stuck in {case['state']}")
    raise AssertionError("not approved")


def _files_for(client, token, matter, *, skip: str | None = None) -> list[dict]:
    return [{"code": material.code, "file_id": upload_pdf(client, token)}
            for material in matter.definition.materials if material.required and material.code != skip]


def _sample_form(cert_type_code: str) -> dict:
    from services.certificates.types import load_certificate_types

    return load_certificate_types()[cert_type_code].sample["form"]


def _form_for(matter) -> dict:
    """A valid form: the sample of the certificate type it produces, or built from its schema."""
    if matter.definition.certificate_type:
        return dict(_sample_form(matter.definition.certificate_type))
    form = {}
    schema = matter.definition.form_schema
    for key in schema.get("required", []):
        spec = schema["properties"][key]
        if "enum" in spec:
            form[key] = spec["enum"][0]
        elif spec.get("type") in ("integer", "number"):
            form[key] = max(1, spec.get("minimum", 1))
        elif spec.get("type") == "array":
            form[key] = [spec["items"]["enum"][0]] if "enum" in spec.get("items", {}) else ["x"]
        else:
            form[key] = "婺源县秋口镇秋口村 1 号" if "address" in key else ("2026-01-01" if "date" in key else "测试内容")
    return form


def _apply(client, token, id_number, name, matter, materials) -> object:
    return submit(client, token, {"matter_code": matter.code,
                                  "applicant": {"kind": "person", "id_number": id_number, "name": name},
                                  "region_code": WITH_STATION, "form": _form_for(matter), "materials": materials})


@pytest.fixture
def holder_with_certificate(client, engine):
    producer, citing, material_code = _pair()
    token, id_number = verified_citizen(client, name="程秀英")
    created = _apply(client, token, id_number, "程秀英", producer, _files_for(client, token, producer))
    assert created.status_code == 201, created.text
    case = _drive(client, engine, created.json())
    run_jobs()
    certificate = next(item for item in client.get("/api/v1/certificates", headers=auth(token)).json()["items"]
                       if item["case_id"] == case["id"])
    return token, id_number, certificate, citing, material_code


def _cite(client, token, citing, material_code, certificate_id) -> list[dict]:
    materials = _files_for(client, token, citing, skip=material_code)
    materials.append({"code": material_code, "certificate_id": certificate_id})
    return materials


def _refusal(response, reason: str) -> dict:
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_materials", response.text
    problem = next(item for item in response.json()["detail"] if item["field"].endswith(".certificate_id"))
    assert problem["reason"] == reason and problem["message"], problem
    return problem


def test_citing_a_held_certificate_instead_of_a_file(client, engine, holder_with_certificate):
    token, id_number, certificate, citing, material_code = holder_with_certificate
    created = _apply(client, token, id_number, "程秀英", citing,
                     _cite(client, token, citing, material_code, certificate["id"]))
    assert created.status_code == 201, created.text
    case = created.json()
    cited = next(m for m in case["materials"] if m["code"] == material_code)
    assert cited["certificate_id"] == certificate["id"] and cited["file_id"] is None

    # the clerk handling the new case checks the cited certificate against the registry: it is
    # visible to them (although another point issued it), valid, and its signed file verifies
    clerk = staff_token(client, _staff_of_point(engine, case["handling_point"]["id"])[0])
    seen = client.get(f"/api/v1/cases/{case['id']}", headers=auth(clerk))
    assert seen.status_code == 200
    assert next(m for m in seen.json()["materials"] if m["code"] == material_code)["certificate_id"] == certificate["id"]
    detail = client.get(f"/api/v1/certificates/{certificate['id']}", headers=auth(clerk))
    assert detail.status_code == 200, detail.text
    assert detail.json()["status"] == "valid" and detail.json()["identifier"] == certificate["identifier"]
    pdf = client.get(f"/api/v1/certificates/{certificate['id']}/pdf", headers=auth(clerk))
    assert pdf.status_code == 200
    verdict = client.post("/api/v1/public/certificates/verify", files={"file": ("c.pdf", pdf.content, "application/pdf")})
    assert verdict.json()["valid"] is True, verdict.text

    # the holder sees the citation in the certificate's log: by them, for that case
    usage = client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(token)).json()["items"]
    citation = [item for item in usage if item["case_id"] == case["id"] and item["actor_kind"] == "holder"]
    assert len(citation) == 1, usage
    assert "免证办" in citation[0]["purpose"] and case["number"] in citation[0]["purpose"]

    # a clerk of another town, who cannot see the citing case, still cannot see the certificate
    assert client.get(f"/api/v1/certificates/{certificate['id']}",
                      headers=auth(staff_token(client, "clerk-361130103"))).status_code == 404


def test_the_case_view_shows_a_cited_certificate_checked_against_the_registry_now(client, engine,
                                                                                 holder_with_certificate):
    """The clerk sees a citation checked against the registry at the moment they look."""
    token, id_number, certificate, citing, material_code = holder_with_certificate
    created = _apply(client, token, id_number, "程秀英", citing,
                     _cite(client, token, citing, material_code, certificate["id"]))
    assert created.status_code == 201, created.text
    case = created.json()
    clerk = staff_token(client, _staff_of_point(engine, case["handling_point"]["id"])[0])

    def cited_material() -> dict:
        seen = client.get(f"/api/v1/cases/{case['id']}", headers=auth(clerk)).json()
        return next(m for m in seen["materials"] if m["code"] == material_code)

    cited = cited_material()
    assert cited["certificate_id"] == certificate["id"]
    assert cited["verified"] is True and cited["status"] == "valid" and cited["status_label"] == "有效"
    assert cited["identifier"] == certificate["identifier"] and cited["checked_at"]
    # checked live: once the issuing department suspends it, the clerk sees it no longer verified
    response = client.post(f"/api/v1/certificates/{certificate['id']}/status",
                           json={"status": "suspended", "reason": "核查中"}, headers=auth(staff_token(client, "admin")))
    assert response.status_code == 200, response.text
    cited = cited_material()
    assert cited["verified"] is False and cited["status"] == "suspended"


def test_someone_elses_a_suspended_or_a_wrong_type_certificate_is_refused(client, engine, holder_with_certificate):
    token, id_number, certificate, citing, material_code = holder_with_certificate
    other_token, other_number = verified_citizen(client, name="胡明")
    refused = _apply(client, other_token, other_number, "胡明", citing,
                     _cite(client, other_token, citing, material_code, certificate["id"]))
    _refusal(refused, "not_found")  # someone else's certificate is not even acknowledged
    _refusal(_apply(client, token, id_number, "程秀英", citing,
                    _cite(client, token, citing, material_code, "no-such-certificate")), "not_found")

    # the holder's own certificate of another type (a residence certificate) cannot stand in
    from tests.services.certificates.support import TOWN_OF_STATION, drive_to_approved

    residence = submit(client, token, residence_application(id_number, upload_pdf(client, token), name="程秀英"))
    assert residence.status_code == 201, residence.text
    residence_case = drive_to_approved(client, residence.json(), [f"clerk-{WITH_STATION}", f"supervisor-{TOWN_OF_STATION}"])
    run_jobs()
    other_type = next(item for item in client.get("/api/v1/certificates", headers=auth(token)).json()["items"]
                      if item["case_id"] == residence_case["id"])
    problem = _refusal(_apply(client, token, id_number, "程秀英", citing,
                              _cite(client, token, citing, material_code, other_type["id"])), "wrong_type")
    assert problem["field"].startswith("materials[")

    admin = staff_token(client, "admin")  # the county's administrator: every certificate of the county
    response = client.post(f"/api/v1/certificates/{certificate['id']}/status",
                           json={"status": "suspended", "reason": "核查中"}, headers=auth(admin))
    assert response.status_code == 200, response.text
    _refusal(_apply(client, token, id_number, "程秀英", citing,
                    _cite(client, token, citing, material_code, certificate["id"])), "not_valid")

    # nothing was logged for refused citations
    usage = client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(token)).json()["items"]
    assert not any("免证办：申请" in item["purpose"] for item in usage), usage


def test_an_expired_certificate_is_refused(client, engine, holder_with_certificate):
    from services.certificates.models import Certificate

    token, id_number, certificate, citing, material_code = holder_with_certificate
    with Session(engine) as session:  # its validity ended yesterday; the nightly job has not run yet
        row = session.get(Certificate, certificate["id"])
        row.valid_until = dt.date.today() - dt.timedelta(days=2)
        session.add(row)
        session.commit()
    _refusal(_apply(client, token, id_number, "程秀英", citing,
                    _cite(client, token, citing, material_code, certificate["id"])), "expired")


def test_a_certificate_id_that_is_not_a_string_is_a_reason_not_a_500(engine, seeded):
    from services.accounts.principal import Principal
    from services.cases import service as cases
    from services.errors import InvalidInput

    _, citing, material_code = _pair()
    principal = Principal(kind="citizen", account_id=0, roles=(), name="测试")
    with Session(engine) as session:
        with pytest.raises(InvalidInput) as error:
            cases._check_materials(session, principal=principal, matter=citing, require_all=False,
                                   materials=[{"code": material_code, "certificate_id": {"id": 1}}])
    assert error.value.detail == [{"field": "materials[0].certificate_id", "reason": "not_a_string"}]
