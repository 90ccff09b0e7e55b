"""Helpers for the certificate registry tests: approved cases through the API, certificates
issued by the worker, and cases of any matter built directly in the database."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tests.support import WITH_STATION, auth, residence_application, run_jobs, submit, upload_pdf, verified_citizen
from tests.support import staff_token as _sign_in

_staff_tokens: dict[str, str] = {}


def staff_token(client: TestClient, username: str) -> str:
    """A staff access token, signed in once per test session (sign-in is rate limited and
    hashes a password; access tokens live 15 minutes, far longer than these tests)."""
    token = _staff_tokens.get(username)
    if token is None or client.get("/api/v1/me", headers=auth(token)).status_code != 200:
        token = _staff_tokens[username] = _sign_in(client, username)
    return token

# The order a case moves towards a decision in any lifecycle of the catalogue.
FORWARD = ("accept", "start_review", "review_pass", "approve")
TOWN_OF_STATION = WITH_STATION[:9]


def drive_to_approved(client: TestClient, case: dict, staff: list[str]) -> dict:
    """Take whichever forward action one of these staff accounts may take, until approved."""
    tokens = [staff_token(client, username) for username in staff]
    for _ in range(12):
        if case["state"] == "approved":
            return case
        for token in tokens:
            actions = {item["action"] for item in client.get(f"/api/v1/cases/{case['id']}/actions",
                                                             headers=auth(token)).json()}
            action = next((name for name in FORWARD if name in actions), None)
            if action is None:
                continue
            extra = {"comment": "材料齐全，符合条件"} if action in ("approve", "review_pass") else {}
            response = client.post(f"/api/v1/cases/{case['id']}/actions",
                                   json={"action": action, "version": case["version"], **extra},
                                   headers=auth(token))
            assert response.status_code == 200, response.text
            case = response.json()
            break
        else:
            raise AssertionError(f"no forward action for case in state {case['state']}")
    raise AssertionError("case did not reach approved")


def approved_residence_case(client: TestClient, *, name: str = "张三") -> tuple[str, str, dict]:
    """A citizen's residence-certificate case, approved (its issuing job is pending).
    Returns (citizen token, id number, case)."""
    token, id_number = verified_citizen(client, name=name)
    created = submit(client, token, residence_application(id_number, upload_pdf(client, token), name=name))
    assert created.status_code == 201, created.text
    case = drive_to_approved(client, created.json(), [f"clerk-{WITH_STATION}", f"supervisor-{TOWN_OF_STATION}"])
    return token, id_number, case


def issued_residence_certificate(client: TestClient, *, name: str = "张三") -> tuple[str, str, dict]:
    """(citizen token, id number, certificate as GET /certificates lists it), issued by the worker."""
    token, id_number, case = approved_residence_case(client, name=name)
    run_jobs()
    items = client.get("/api/v1/certificates", headers=auth(token)).json()["items"]
    certificate = next(item for item in items if item["case_id"] == case["id"])
    return token, id_number, certificate


def certificates_of_case(engine, case_id: str) -> list:
    from services.certificates.models import Certificate

    with Session(engine) as session:
        return list(session.exec(select(Certificate).where(Certificate.case_id == case_id)))


def direct_case(session: Session, *, matter_code: str, form: dict, subject_number: str, name: str,
                region_code: str = WITH_STATION, state: str = "approved") -> str:
    """A case of any matter written straight into the database (no routing, no history beyond
    what issuing needs): for issuing every type the catalogue produces. Returns its id."""
    from services.cases.models import Case
    from services.matters.service import get_matter
    from services.points.models import ServicePoint
    from services.subjects.identity_numbers import parse_subject_number
    from services.subjects.repository import get_or_create_subject

    matter = get_matter(matter_code)
    kind = "organization" if matter.definition.subject_kind == "organization" else "person"
    subject = get_or_create_subject(session, number=parse_subject_number(subject_number, subject_kind=kind), name=name)
    point = session.exec(select(ServicePoint).order_by(ServicePoint.id)).first()
    case_id = str(uuid.uuid4())
    session.add(Case(id=case_id, number=f"T{uuid.uuid4().hex[:20]}", matter_code=matter_code,
                     matter_version=matter.definition.version, state=state, subject_id=subject.id,
                     subject_hash=subject.number_hash, applicant_name=name, region_code=region_code,
                     receiving_channel="online", handling_point_id=point.id, routing_reason="test",
                     form=form, created_by="self", created_by_principal="test:0"))
    session.flush()
    return case_id


def make_credit_code() -> str:
    """A valid, made-up unified social credit code (test data, not an organisation)."""
    import random

    from services.certificates.numbers import gb11714_check_character
    from services.certificates.types import uscc_check_character

    body = f"MA{random.randrange(10**6):06d}"
    first17 = f"91361130{body}{gb11714_check_character(body)}"
    return first17 + uscc_check_character(first17)
