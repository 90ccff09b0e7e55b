"""Bad input: each a 4xx with the error body, and nothing half-written."""

from __future__ import annotations

import base64
import json
import time

import pytest
from jose import jwt
from sqlalchemy import func
from sqlmodel import Session, select

from services.cases.models import Case, CaseEvent
from services.files.models import StoredFile
from tests.support import (MINIMAL_PDF, auth, citizen_token, residence_application, submit, upload_pdf,
                                verified_citizen)


def _counts(engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return (session.exec(select(func.count()).select_from(Case)).one(),
                session.exec(select(func.count()).select_from(CaseEvent)).one(),
                session.exec(select(func.count()).select_from(StoredFile).where(StoredFile.case_id.is_not(None))).one())


def _is_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "detail"}
    if code:
        assert body["error"] == code
    return body


@pytest.fixture
def applicant(client):
    token, id_number = verified_citizen(client)
    return token, id_number, upload_pdf(client, token)


@pytest.mark.parametrize("mutate, status, code, field", [
    (lambda b: b["applicant"].update(id_number="36113019900307123"), 422, "invalid_id_number", None),
    (lambda b: b["applicant"].update(id_number=b["applicant"]["id_number"][:17] + ("0" if b["applicant"]["id_number"][17] != "0" else "1")), 422, "invalid_id_number", None),
    (lambda b: b["applicant"].update(id_number="361130199002301234"), 422, "invalid_id_number", None),
    (lambda b: b.update(matter_code="no-such-matter"), 422, "unknown_matter", None),
    (lambda b: b.update(region_code="361130999999"), 422, "unknown_region_code", None),
    (lambda b: b.update(region_code="36113"), 422, "validation_error", "region_code"),
    (lambda b: b.pop("applicant"), 422, "validation_error", "applicant"),
    (lambda b: b["form"].pop("address"), 422, "validation_error", "form"),
    (lambda b: b["form"].update(since="2019-13"), 422, "validation_error", "form.since"),
    (lambda b: b.update(materials=[]), 422, "invalid_materials", "materials"),
    (lambda b: b["materials"].append({"code": "nonsense", "file_id": "x"}), 422, "invalid_materials", None),
    (lambda b: b.update(unexpected=1), 422, "validation_error", "unexpected"),
])
def test_bad_applications_are_refused_and_write_nothing(client, engine, applicant, mutate, status, code, field):
    token, id_number, file_id = applicant
    body = residence_application(id_number, file_id)
    mutate(body)
    before = _counts(engine)
    response = submit(client, token, body)
    error = _is_error(response, status, code)
    if field:
        assert any(item.get("field", "").startswith(field) for item in error["detail"]), error
    assert _counts(engine) == before
    assert id_number not in response.text


def test_id_number_rejections_say_why(client):
    token = citizen_token(client)
    reasons = {}
    for number in ("1234", "36113019900307123A", "361130199002301234", "361130199003071230",
                   "361130199003071231"):
        response = client.post("/api/v1/me/real-name/start", json={"name": "李四", "id_number": number},
                               headers=auth(token))
        body = _is_error(response, 422, "invalid_id_number")
        reasons[number] = body["detail"]["reason"]
    assert reasons["1234"] == "length"
    assert reasons["36113019900307123A"] == "character"
    assert reasons["361130199002301234"] == "birth_date"
    assert "check_character" in {reasons["361130199003071230"], reasons["361130199003071231"]}


def test_someone_elses_number_is_refused(client, applicant):
    from tests.support import make_id_number

    token, _, file_id = applicant
    _is_error(submit(client, token, residence_application(make_id_number(), file_id)), 403, "applicant_not_self")


def test_unverified_citizen_cannot_apply(client):
    token = citizen_token(client)
    file_id = upload_pdf(client, token)
    from tests.support import make_id_number

    _is_error(submit(client, token, residence_application(make_id_number(), file_id)), 403, "real_name_required")


def test_uploads_are_checked_by_content_and_size(client):
    token = citizen_token(client)
    mistyped = client.post("/api/v1/files", files={"file": ("scan.pdf", b"MZ\x90\x00not a pdf", "application/pdf")},
                           headers=auth(token))
    _is_error(mistyped, 415, "file_type_not_allowed")
    empty = client.post("/api/v1/files", files={"file": ("empty.pdf", b"", "application/pdf")}, headers=auth(token))
    _is_error(empty, 422)
    png_named_pdf = client.post("/api/v1/files", files={"file": ("x.pdf", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "application/pdf")},
                                headers=auth(token))
    assert png_named_pdf.status_code == 201 and png_named_pdf.json()["content_type"] == "image/png"
    from services.config import get_settings

    limit = get_settings().upload_max_bytes
    oversized = client.post("/api/v1/files", files={"file": ("big.pdf", MINIMAL_PDF + b"0" * limit, "application/pdf")},
                            headers=auth(token))
    _is_error(oversized, 413)


def test_idempotency_key_replays_the_same_case_and_refuses_another_body(client, engine, applicant):
    token, id_number, file_id = applicant
    body = residence_application(id_number, file_id)
    first = submit(client, token, body, key="key-123456")
    assert first.status_code == 201
    before = _counts(engine)
    again = submit(client, token, body, key="key-123456")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert _counts(engine) == before
    body["form"]["purpose"] = "其他用途"
    _is_error(submit(client, token, body, key="key-123456"), 422, "idempotency_key_reused")
    assert _counts(engine) == before


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_forged_and_expired_tokens_are_401(client):
    from services.accounts.tokens import public_key_pem
    from services.config import get_settings

    settings = get_settings()
    claims = {"sub": "staff:1", "roles": ["admin"], "jti": "x", "iss": settings.jwt_issuer,
              "aud": settings.jwt_audience, "typ": "access", "fam": "f",
              "iat": int(time.time()), "exp": int(time.time()) + 600}
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    signature = hmac.new(public_key_pem().encode(), signing_input.encode(), hashlib.sha256).digest()
    hs256_with_public_key = signing_input + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")

    from services.accounts.tokens import _keys

    private_pem = _keys()[0]
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, private_pem, algorithm="ES256")
    wrong_audience = jwt.encode({**claims, "aud": "someone-else"}, private_pem, algorithm="ES256")
    valid_control = jwt.encode(claims, private_pem, algorithm="ES256")
    for token in (alg_none, hs256_with_public_key, expired, wrong_audience, "not-a-token", valid_control[:-4] + "AAAA"):
        _is_error(client.get("/api/v1/me", headers=auth(token)), 401)
    _is_error(client.get("/api/v1/me"), 401)
    assert client.get("/api/v1/me", headers=auth(valid_control)).status_code == 200  # the control is accepted


def test_unknown_routes_and_malformed_json_use_the_error_body(client):
    _is_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    token = citizen_token(client)
    response = client.post("/api/v1/cases", content=b"{not json", headers={**auth(token), "Content-Type": "application/json"})
    _is_error(response, 422, "validation_error")
    _is_error(client.get("/api/v1/matters/no-such-matter"), 404, "matter_not_found")
    _is_error(client.get("/api/v1/service-points", params={"region_code": "999999999999"}), 422, "unknown_region_code")
    _is_error(client.get("/api/v1/public/certificates/1.2.156.3005.2.X/status"), 404)


def test_oversized_json_body_is_413(client):
    token = citizen_token(client)
    response = client.post("/api/v1/cases", content=b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}',
                           headers={**auth(token), "Content-Type": "application/json"})
    _is_error(response, 413)


def test_staff_login_failure_is_the_same_for_unknown_user_and_wrong_password(client):
    unknown = client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"})
    wrong = client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong"})
    assert _is_error(unknown, 401, "invalid_credentials") == _is_error(wrong, 401, "invalid_credentials")
