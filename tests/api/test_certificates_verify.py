"""POST /public/certificates/verify: a bank clerk uploads a PDF and gets a verdict. Genuine
certificates pass; a changed byte, an appended update, a foreign signer, a revoked issuer key, a
revoked certificate, a PDF without signature fail with reasons; what is not a PDF, too large or
unreadable is a clear 4xx. Never a 500."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services.certificates import checklog
from services.certificates.models import CertificatePublicCheck
from services.certificates.settings import get_certificate_settings
from tests.services.certificates import verifiers
from tests.services.certificates.support import TOWN_OF_STATION, issued_residence_certificate, staff_token
from tests.services.certificates.test_pipeline import _append_update, _content_stream_offset
from tests.support import auth, forget_rate_limits

VERIFY = "/api/v1/public/certificates/verify"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    forget_rate_limits()
    yield
    forget_rate_limits()


@pytest.fixture
def genuine(client):
    """(holder token, certificate, its PDF bytes)."""
    token, _, certificate = issued_residence_certificate(client, name="王芳")
    pdf = client.get(f"/api/v1/certificates/{certificate['id']}/pdf", headers=auth(token)).content
    return token, certificate, pdf


def _verify(client, data: bytes, name: str = "certificate.pdf", content_type: str = "application/pdf"):
    return client.post(VERIFY, files={"file": (name, data, content_type)})


def _verdict(client, data: bytes) -> dict:
    response = _verify(client, data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"signature_valid", "document_intact", "registered", "status", "identifier"} <= set(body)
    return body


def test_a_genuine_certificate_is_valid(client, genuine, engine):
    _, certificate, pdf = genuine
    body = _verdict(client, pdf)
    assert body["valid"] is True and body["verdict"] == "有效"
    assert (body["signature_valid"], body["document_intact"], body["registered"]) == (True, True, True)
    assert body["status"] == "valid" and body["identifier"] == certificate["identifier"]
    assert body["signer"]["credit_code"] == "11361130MB1C20012R" and body["reasons"] == []
    checklog.flush()
    with Session(engine) as session:
        check = session.exec(select(CertificatePublicCheck).where(CertificatePublicCheck.kind == "verify",
                                                                  CertificatePublicCheck.identifier == certificate["identifier"])
                             .order_by(CertificatePublicCheck.id.desc())).first()
    assert check is not None and check.result == "valid" and check.certificate_id == certificate["id"]


def test_a_changed_byte_is_not_valid(client, genuine):
    _, certificate, pdf = genuine
    flipped = bytearray(pdf)
    flipped[_content_stream_offset(pdf)] ^= 0x01
    body = _verdict(client, bytes(flipped))
    assert body["valid"] is False and body["signature_valid"] is False and body["registered"] is False
    assert "signature_invalid" in body["reasons"] and body["identifier"] == certificate["identifier"]


@pytest.mark.parametrize("overlay", [False, True], ids=["info-title", "page-overlay"])
def test_an_appended_update_is_not_intact(client, genuine, overlay):
    _, _, pdf = genuine
    body = _verdict(client, _append_update(pdf, overlay=overlay))
    assert body["valid"] is False and body["document_intact"] is False and body["registered"] is False
    assert "not_intact" in body["reasons"]


def test_a_certificate_signed_by_someone_else_is_not_trusted(client, tmp_path):
    from services.certificates.pipeline import produce_sample_pdf
    from services.certificates.types import load_certificate_types
    from services.config import Settings

    stranger = Settings(var_dir=tmp_path / "someone-elses-ca", issuer_pkcs12_path=None)
    forged = produce_sample_pdf(load_certificate_types()["residence-certificate"], settings=stranger)
    body = _verdict(client, forged.pdf)
    assert body["valid"] is False and body["signature_valid"] is False
    assert "untrusted_signer" in body["reasons"] and "not_registered" in body["reasons"]
    assert body["document_intact"] is True  # intact, but by nobody we vouch for


def test_a_certificate_whose_issuer_key_was_revoked_is_not_valid(client, test_var_dir):
    """Signed by the session's own chain, then the authority's key is revoked (its CRL entry is
    in the CRL the verifier uses, newer than the one embedded in the file)."""
    from services.certificates import pki
    from services.certificates.pipeline import produce_sample_pdf
    from services.certificates.types import load_certificate_types

    cert_type = load_certificate_types()["homestead-approval"]
    signed = produce_sample_pdf(cert_type)
    before = _verdict(client, signed.pdf)
    assert before["signature_valid"] is True and before["registered"] is False  # a sample: never registered
    pki.revoke_issuer_certificate(issuer_code=cert_type.issuer_code, reason="key_compromise")
    after = _verdict(client, signed.pdf)
    assert after["signature_valid"] is False and "signer_revoked" in after["reasons"]
    # the same authority's new key signs valid certificates again
    assert _verdict(client, produce_sample_pdf(cert_type).pdf)["signature_valid"] is True

    path = Path(test_var_dir) / "revoked-signer.pdf"
    path.write_bytes(signed.pdf)
    report = verifiers.pdfsig_report(path, client.get("/api/v1/public/pki/ca").content,
                                     crl_der=client.get("/api/v1/public/pki/crl").content)
    assert "Certificate is Trusted." not in report


def test_rotating_the_issuer_key_keeps_issued_certificates_verifiable(client, genuine, test_var_dir):
    """A registered certificate signed before a key rotation still verifies everywhere after it
    (our endpoint, pdfsig and pyHanko with the served chain and CRL, its QR token); the next one
    is signed with the new key; the CRL served lists no rotated (not revoked) key."""
    from cryptography import x509

    from services.certificates import pki
    from services.certificates.rendering import verify_qr_token
    from tests.services.certificates.support import issued_residence_certificate

    token, certificate, pdf = genuine
    before = _verdict(client, pdf)
    assert before["valid"] is True
    pki.rotate_issuer_key(issuer_code="11361130MB1C20012R")

    after = _verdict(client, pdf)
    assert after["valid"] is True and after["signature_valid"] is True and after["reasons"] == []
    assert after["signer"]["certificate_serial"] == before["signer"]["certificate_serial"]
    ca, crl = client.get("/api/v1/public/pki/ca").content, client.get("/api/v1/public/pki/crl").content
    assert x509.load_der_x509_crl(crl).get_revoked_certificate_by_serial_number(
        int(before["signer"]["certificate_serial"], 16)) is None
    path = Path(test_var_dir) / "before-rotation.pdf"
    path.write_bytes(pdf)
    report = verifiers.pdfsig_report(path, ca, crl_der=crl)
    assert "Total document signed" in report and "Signature is Valid." in report and "Certificate is Trusted." in report
    status = verifiers.pyhanko_validate(pdf, ca, extra_crls=[crl])
    assert status.bottom_line and not status.revoked
    qr_token = next(line for line in (verifiers.read_qr(verifiers.page_png(path, Path(test_var_dir) / "rot", dpi=150)))
                    ).split("#", 1)[1]
    chain = pki.load_issuing_chain(issuer_code="11361130MB1C20012R")
    assert verify_qr_token(qr_token, certificates=chain.issuer_certificates)["id"] == certificate["identifier"]

    new_token, _, newer = issued_residence_certificate(client, name="钱七")
    newer_pdf = client.get(f"/api/v1/certificates/{newer['id']}/pdf", headers=auth(new_token)).content
    fresh = _verdict(client, newer_pdf)
    assert fresh["valid"] is True
    assert fresh["signer"]["certificate_serial"] != before["signer"]["certificate_serial"]
    assert int(fresh["signer"]["certificate_serial"], 16) == chain.issuer_cert.serial_number


def test_a_revoked_certificate_has_a_valid_signature_but_is_not_valid(client, genuine):
    _, certificate, pdf = genuine
    supervisor = staff_token(client, f"supervisor-{TOWN_OF_STATION}")
    client.post(f"/api/v1/certificates/{certificate['id']}/status", json={"status": "revoked", "reason": "依法吊销"},
                headers=auth(supervisor))
    body = _verdict(client, pdf)
    assert body["signature_valid"] is True and body["document_intact"] is True and body["registered"] is True
    assert body["status"] == "revoked" and body["valid"] is False and "status_not_valid" in body["reasons"]


def test_revoking_one_certificate_leaves_the_others_valid(client, genuine):
    _, certificate, pdf = genuine
    _, _, other = issued_residence_certificate(client, name="赵六")
    supervisor = staff_token(client, f"supervisor-{TOWN_OF_STATION}")
    client.post(f"/api/v1/certificates/{other['id']}/status", json={"status": "revoked", "reason": "依法吊销"},
                headers=auth(supervisor))
    assert _verdict(client, pdf)["valid"] is True


def test_a_pdf_without_a_signature_is_a_verdict(client):
    from weasyprint import HTML

    unsigned = HTML(string="<p>居住证明（复印件）</p>").write_pdf()
    body = _verdict(client, unsigned)
    assert body["valid"] is False and body["signature_valid"] is False and body["signatures"] == 0
    assert body["reasons"][0] == "no_signature" and body["messages"][0] == "文件没有电子签名"


def test_not_a_pdf_too_large_unreadable_and_missing_are_4xx(client, monkeypatch):
    response = _verify(client, PNG, "photo.png", "image/png")
    assert response.status_code == 415 and response.json()["error"] == "not_a_pdf"
    response = _verify(client, b"plain text pretending", "x.pdf")
    assert response.status_code == 415
    response = _verify(client, b"%PDF-1.7\n this is not really a PDF \n%%EOF")
    assert response.status_code == 422 and response.json()["error"] == "pdf_unreadable"
    response = _verify(client, b"")
    assert response.status_code == 422
    assert client.post(VERIFY).status_code == 422
    limit = get_certificate_settings().verify_max_bytes
    response = _verify(client, b"%PDF-1.7\n" + b"0" * limit)
    assert response.status_code == 413 and response.json()["error"] in ("file_too_large", "payload_too_large")


def test_verification_is_rate_limited(client, monkeypatch):
    from services.ratelimit import get_rate_limit_settings

    monkeypatch.setattr(get_rate_limit_settings(), "public_verify", "2/minute")
    assert [_verify(client, PNG).status_code for _ in range(2)] == [415, 415]
    limited = _verify(client, PNG)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_an_expired_certificate_is_reported_expired(client, genuine, engine):
    from services.certificates.models import Certificate

    _, certificate, pdf = genuine
    with Session(engine) as session:
        row = session.get(Certificate, certificate["id"])
        row.valid_until = dt.date(2020, 1, 1)
        session.add(row)
        session.commit()
    body = _verdict(client, pdf)
    assert body["status"] == "expired" and body["valid"] is False
    assert client.get(f"/api/v1/public/certificates/{certificate['identifier']}/status").json()["status"] == "expired"
