"""免证办 end to end: a citizen who holds a valid certificate cites it instead of uploading a copy
when a matter's material names its type; the clerk sees it verified from the registry; the use
is in the holder's log. Someone else's, suspended or wrong-type certificates are refused with
the reason. Uses whichever pair of matters the catalogue has (a matter producing a person's
certificate, and a matter whose material that certificate can stand in for)."""

from __future__ import annotations

import inspect

import pytest
from sqlmodel import Session

from tests.services.certificates.support import FORWARD, staff_token
from tests.support import WITH_STATION, auth, run_jobs, submit, upload_pdf, verified_citizen


def _integrated() -> bool:
    from services.cases import service as cases

    return "usable_certificate" in inspect.getsource(cases)


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
    return None


pytestmark = [
    pytest.mark.skipif(_pair() is None, reason="no matter in the catalogue cites a certificate another one issues"),
    pytest.mark.skipif(not _integrated(), reason="services/cases/service.py does not cite through "
                                                 "services.certificates.service.usable_certificate yet"),
]


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


def test_citing_a_held_certificate_instead_of_a_file(client, engine, holder_with_certificate):
    token, id_number, certificate, citing, material_code = holder_with_certificate
    materials = _files_for(client, token, citing, skip=material_code)
    materials.append({"code": material_code, "certificate_id": certificate["id"]})
    created = _apply(client, token, id_number, "程秀英", citing, materials)
    assert created.status_code == 201, created.text
    case = created.json()

    clerk_names = _staff_of_point(engine, case["handling_point"]["id"])
    seen = client.get(f"/api/v1/cases/{case['id']}", headers=auth(staff_token(client, clerk_names[0]))).json()
    cited = next(m for m in seen["materials"] if m["code"] == material_code)
    assert cited["certificate_id"] == certificate["id"]
    assert cited.get("verified") is True and cited.get("status") == "valid"

    usage = client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(token)).json()["items"]
    assert any(item["case_id"] == case["id"] for item in usage), usage


def test_someone_elses_a_suspended_or_a_wrong_type_certificate_is_refused(client, engine, holder_with_certificate):
    token, id_number, certificate, citing, material_code = holder_with_certificate
    other_token, other_number = verified_citizen(client, name="胡明")
    materials = _files_for(client, other_token, citing, skip=material_code)
    materials.append({"code": material_code, "certificate_id": certificate["id"]})
    refused = _apply(client, other_token, other_number, "胡明", citing, materials)
    assert refused.status_code == 422, refused.text
    problem = next(item for item in refused.json()["detail"] if item["field"].endswith(".certificate_id"))
    assert problem["reason"] == "not_found"  # someone else's certificate is not even acknowledged

    admin = staff_token(client, "admin")  # the county's administrator: every certificate of the county
    response = client.post(f"/api/v1/certificates/{certificate['id']}/status",
                           json={"status": "suspended", "reason": "核查中"}, headers=auth(admin))
    assert response.status_code == 200, response.text
    materials = _files_for(client, token, citing, skip=material_code)
    materials.append({"code": material_code, "certificate_id": certificate["id"]})
    suspended = _apply(client, token, id_number, "程秀英", citing, materials)
    assert suspended.status_code == 422 and "not_valid" in suspended.text, suspended.text
