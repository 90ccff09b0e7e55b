"""Materials: streamed uploads under a size limit, type by content, SHA-256; read access for the
uploader, the case's staff and the applicant only; clean-up of uploads nothing uses."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from services.config import get_settings
from services.files.models import StoredFile
from services.outbox.models import OutboxJob
from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import (MINIMAL_PDF, WITH_STATION, auth, citizen_token, residence_application, staff_token, submit,
                           upload_pdf, verified_citizen)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.50") as client:
        yield client


def _upload(api, token: str, data: bytes, name: str = "material.pdf", declared: str = "application/pdf"):
    return api.post("/api/v1/files", files={"file": (name, data, declared)}, headers=auth(token))


def _stored_files(test_var_dir) -> set[str]:
    root = get_settings().storage_dir / "files"
    return {path.name for path in root.rglob("*") if path.is_file()} if root.exists() else set()


@pytest.mark.parametrize("data, name, declared, expected", [
    (MINIMAL_PDF, "scan.png", "image/png", "application/pdf"),
    (JPEG, "photo.pdf", "application/pdf", "image/jpeg"),
    (PNG, "photo.jpg", "image/jpeg", "image/png"),
])
def test_the_type_comes_from_the_bytes(api, data, name, declared, expected):
    token = citizen_token(api)
    response = _upload(api, token, data, name, declared)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == expected and body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("data", [b"<html><script>alert(1)</script></html>", b"%PDF", b"%PDF-x.y\n", b"GIF89a" + b"0" * 20,
                                  b"PK\x03\x04" + b"0" * 40, b"\xff\xd8"])
def test_other_types_are_415_and_leave_nothing_behind(api, test_var_dir, data):
    token = citizen_token(api)
    before = _stored_files(test_var_dir)
    response = _upload(api, token, data)
    assert response.status_code == 415 and response.json()["error"] == "file_type_not_allowed"
    assert _stored_files(test_var_dir) == before


def test_the_size_limit_is_exact_and_a_refused_upload_leaves_nothing(api, test_var_dir, monkeypatch):
    monkeypatch.setattr(get_settings(), "upload_max_bytes", 4096)
    token = citizen_token(api)
    exact = MINIMAL_PDF + b"0" * (4096 - len(MINIMAL_PDF))
    assert _upload(api, token, exact).status_code == 201
    before = _stored_files(test_var_dir)
    over = _upload(api, token, exact + b"0")
    assert over.status_code == 413 and over.json()["error"] == "file_too_large"
    assert _stored_files(test_var_dir) == before


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(api):
    token = citizen_token(api)
    limit = get_settings().upload_max_bytes
    response = _upload(api, token, MINIMAL_PDF + b"0" * (limit + 128 * 1024))
    assert response.status_code == 413 and set(response.json()) == {"error", "message", "detail"}


def test_only_the_uploader_reads_an_unattached_file(api):
    owner = citizen_token(api)
    file_id = upload_pdf(api, owner)
    info = api.get(f"/api/v1/files/{file_id}", headers=auth(owner))
    assert info.status_code == 200 and info.json()["attached"] is False
    content = api.get(f"/api/v1/files/{file_id}/content", headers=auth(owner))
    assert content.status_code == 200 and content.content == MINIMAL_PDF
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["x-content-type-options"] == "nosniff"
    assert content.headers["content-disposition"].startswith("attachment;")
    assert "no-store" in content.headers["cache-control"]
    for other in (citizen_token(api), staff_token(api, f"clerk-{WITH_STATION}"), staff_token(api, "supervisor-361130")):
        assert api.get(f"/api/v1/files/{file_id}", headers=auth(other)).status_code == 404
        assert api.get(f"/api/v1/files/{file_id}/content", headers=auth(other)).status_code == 404
    assert api.get("/api/v1/files/no-such-file", headers=auth(owner)).status_code == 404
    assert api.get(f"/api/v1/files/{file_id}").status_code == 401


def test_a_case_s_material_is_read_by_its_staff_and_applicant_only(api):
    token, id_number = verified_citizen(api)
    file_id = upload_pdf(api, token)
    created = submit(api, token, residence_application(id_number, file_id))
    assert created.status_code == 201, created.text
    for reader in (token, staff_token(api, f"clerk-{WITH_STATION}"), staff_token(api, "supervisor-361130102"),
                   staff_token(api, "supervisor-361130")):
        response = api.get(f"/api/v1/files/{file_id}", headers=auth(reader))
        assert response.status_code == 200 and response.json()["case_id"] == created.json()["id"]
    for stranger in (citizen_token(api), staff_token(api, "clerk-361130103"), staff_token(api, "supervisor-361130103"),
                     staff_token(api, "helper-361130102200")):
        assert api.get(f"/api/v1/files/{file_id}/content", headers=auth(stranger)).status_code == 404


def test_an_upload_nothing_uses_is_deleted_after_a_day(api, engine, test_var_dir):
    from services.files.service import expire_if_unattached
    from services.outbox.service import _handlers
    from services.outbox.registry import register_all_handlers

    token = citizen_token(api)
    unused = upload_pdf(api, token)
    with Session(engine) as session:
        record = session.get(StoredFile, unused)
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"files_expire:{unused}")).one()
        assert job.kind == "files_expire" and job.state == "pending"
        assert timedelta(hours=23) < job.run_after - record.created_at <= timedelta(days=1, minutes=1)
    assert record.storage_key.rsplit("/", 1)[1] in _stored_files(test_var_dir)
    register_all_handlers()
    with Session(engine) as session:
        _handlers["files_expire"](session, {"file_id": unused})
        session.commit()
        assert session.get(StoredFile, unused) is None
    assert record.storage_key.rsplit("/", 1)[1] not in _stored_files(test_var_dir)
    assert api.get(f"/api/v1/files/{unused}", headers=auth(token)).status_code == 404
    # an attached one stays
    citizen, id_number = verified_citizen(api)
    used = upload_pdf(api, citizen)
    assert submit(api, citizen, residence_application(id_number, used)).status_code == 201
    with Session(engine) as session:
        assert expire_if_unattached(session, file_id=used) is False
        session.rollback()
    assert api.get(f"/api/v1/files/{used}", headers=auth(citizen)).status_code == 200
