"""The e-certificate registry: issue (exactly once per case and type), read, status."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, select

from services.accounts.principal import Principal
from services.cases import repository as case_repository
from services.cases.models import Case
from services.cases.service import CHINA, today_in_china
from services.certificates.identifiers import build_identifier
from services.certificates.models import STATUS_LABELS, Certificate
from services.certificates.pipeline import produce_certificate_pdf
from services.certificates.types import load_certificate_types
from services.errors import NotFound
from services.files.storage import get_storage
from services.matters.service import get_matter
from services.points.models import ServicePoint, Staff
from services.sequences.repository import next_value
from services.subjects.models import Subject
from services.subjects.protection import get_protector


class CertificateNotFound(NotFound):
    code = "certificate_not_found"
    message = "电子证照不存在"


def _gender(number_value: str) -> str:
    if len(number_value) == 18 and number_value[16].isdigit():
        return "男" if int(number_value[16]) % 2 else "女"
    return ""


def issue_for_case(session: Session, *, case_id: str) -> Certificate | None:
    """Render, sign, store and register the case's certificate. Idempotent: a second call (a
    retry after a crash, or a racing worker) finds the first one's row and does nothing."""
    case = session.exec(select(Case).where(Case.id == case_id).with_for_update()).first()
    if case is None:
        return None
    matter = get_matter(case.matter_code)
    type_slug = matter.definition.certificate_type
    if type_slug is None:
        return None
    existing = session.exec(select(Certificate).where(Certificate.case_id == case.id,
                                                      Certificate.cert_type == type_slug)).first()
    if existing is not None:
        return existing
    cert_type = load_certificate_types()[type_slug]
    subject = session.get(Subject, case.subject_id)
    point = session.get(ServicePoint, case.handling_point_id)
    approver = _last_staff_actor(session, case_id=case.id)
    issued = today_in_china()
    serial_number = next_value(session, name=f"certificate:{cert_type.type_code}:{cert_type.issuer.credit_code}")
    serial = f"{issued:%Y}{serial_number:08d}"
    identifier = build_identifier(type_code=cert_type.type_code, issuer_code=cert_type.issuer.credit_code,
                                  serial=serial, version=1)
    number_value = get_protector().decrypt(subject.number_encrypted)
    context = {
        "applicant": {"name": subject.name, "number_masked": subject.number_masked, "gender": _gender(number_value)},
        "form": case.form,
        "case": {"number": case.number},
        "handling_point": {"name": point.name if point else ""},
        "operator": {"name": approver},
    }
    until = cert_type.valid_until(issued)
    produced = produce_certificate_pdf(cert_type=cert_type, identifier=identifier, context=context,
                                       holder_masked=subject.number_masked, issued_at=issued, valid_until=until)
    certificate_id = str(uuid.uuid4())
    key = f"certificates/{certificate_id[:2]}/{certificate_id}.pdf"
    get_storage().put(key, produced.pdf)
    certificate = Certificate(
        id=certificate_id, identifier=identifier, cert_type=type_slug, type_code=cert_type.type_code,
        type_name=cert_type.name, case_id=case.id, holder_subject_id=subject.id, holder_hash=subject.number_hash,
        holder_masked=subject.number_masked, issuer_name=cert_type.issuer.name,
        issuer_code=cert_type.issuer.credit_code, serial=serial, valid_from=issued, valid_until=until,
        storage_key=key, pdf_sha256=produced.sha256, content_sha256=produced.content_sha256,
        fields=[[label, value] for label, value in produced.fields],
    )
    session.add(certificate)
    session.flush()
    return certificate


def _last_staff_actor(session: Session, *, case_id: str) -> str:
    for event in reversed(case_repository.history(session, case_id=case_id)):
        if event.actor.startswith("staff:"):
            return event.actor_name
    return ""


def _visible(session: Session, *, principal: Principal, certificate: Certificate) -> bool:
    if principal.kind == "citizen":
        return principal.subject_id is not None and certificate.holder_subject_id == principal.subject_id
    case = session.get(Case, certificate.case_id)
    if case is None:
        return False
    return case_repository.get_visible_case(session, case_id=case.id, principal=principal) is not None


def get_certificate(session: Session, *, principal: Principal, certificate_id: str) -> Certificate:
    certificate = session.get(Certificate, certificate_id)
    if certificate is None or not _visible(session, principal=principal, certificate=certificate):
        raise CertificateNotFound()
    return certificate


def certificate_pdf(session: Session, *, principal: Principal, certificate_id: str) -> bytes:
    certificate = get_certificate(session, principal=principal, certificate_id=certificate_id)
    return get_storage().get(certificate.storage_key)


def certificate_view(certificate: Certificate) -> dict[str, Any]:
    return {
        "id": certificate.id, "identifier": certificate.identifier, "type_code": certificate.type_code,
        "type_name": certificate.type_name, "cert_type": certificate.cert_type, "status": certificate.status,
        "status_label": STATUS_LABELS.get(certificate.status, certificate.status),
        "issued_at": certificate.issued_at.astimezone(CHINA).isoformat(),
        "valid_from": certificate.valid_from.isoformat(),
        "valid_until": certificate.valid_until.isoformat() if certificate.valid_until else None,
        "case_id": certificate.case_id, "issuer_name": certificate.issuer_name,
        "issuer_code": certificate.issuer_code, "holder_masked": certificate.holder_masked,
        "pdf_sha256": certificate.pdf_sha256,
    }


def list_certificates(session: Session, *, principal: Principal) -> dict[str, Any]:
    if principal.kind != "citizen" or principal.subject_id is None:
        return {"items": [], "next_cursor": None}
    rows = session.exec(select(Certificate).where(Certificate.holder_subject_id == principal.subject_id)
                        .order_by(Certificate.issued_at.desc()))
    return {"items": [certificate_view(row) for row in rows], "next_cursor": None}


def public_status(session: Session, *, identifier: str) -> dict[str, Any]:
    """What anyone may learn about a certificate from its identifier: no names, a masked holder."""
    certificate = session.exec(select(Certificate).where(Certificate.identifier == identifier)).first()
    if certificate is None:
        raise CertificateNotFound()
    view = certificate_view(certificate)
    return {key: view[key] for key in ("identifier", "type_code", "type_name", "status", "status_label",
                                       "issued_at", "valid_until", "issuer_name", "holder_masked", "pdf_sha256")}
