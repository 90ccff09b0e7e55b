"""Verifying an uploaded PDF the way a bank clerk needs it: is the signature valid and made by a
key we vouch for, is the file exactly what was signed (nothing appended), is it the file the
registry holds, and what is the certificate's status now.

- signature: pyHanko's validator trusting only the project's roots, revocation data from the
  document's DSS *and* the current CRL (so a key revoked after signing is caught), no network,
  hard-fail on missing revocation data;
- intact: the signature covers the ENTIRE file. pyHanko's bottom line alone accepts an
  appended incremental update it judges harmless; a certificate must not have any;
- registered: the SHA-256 of the uploaded bytes equals a registry entry's;
- status: the registry's, as the public status endpoint reports it.

Answers are verdicts, never errors, except for what is not a PDF at all (415), unreadable
(422) or too large (413).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, select

from services.certificates.identifiers import InvalidCertificateIdentifier, parse_identifier
from services.certificates.models import STATUS_LABELS, Certificate
from services.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

log = logging.getLogger("onestop.certificates.verification")

REASONS = {
    "no_signature": "文件没有电子签名",
    "signature_unreadable": "签名无法解析",
    "signature_invalid": "签名与文件内容不符（文件被改动或签名损坏）",
    "untrusted_signer": "签名者不是本平台信任的颁证单位",
    "signer_revoked": "签名证书已被吊销",
    "not_intact": "签名后文件又被追加或修改了内容",
    "not_registered": "文件与登记的电子证照不一致或未登记",
    "status_not_valid": "电子证照当前不是有效状态",
}


class NotAPdf(UnsupportedMediaType):
    code = "not_a_pdf"
    message = "只能核验 PDF 格式的电子证照文件"


class UploadTooLarge(PayloadTooLarge):
    code = "file_too_large"
    message = "文件超过核验大小限制"


class UnreadablePdf(InvalidInput):
    code = "pdf_unreadable"
    message = "PDF 文件已损坏，无法读取"


def read_limited(chunks: Iterable[bytes], *, limit: int) -> bytes:
    """The upload, refused (413) as soon as it passes `limit` bytes; 422 when empty."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(detail={"limit_bytes": limit})
        parts.append(chunk)
    if size == 0:
        raise InvalidInput("文件为空", detail=[{"field": "file", "reason": "empty"}])
    return b"".join(parts)


def _validation_context(reader):
    from asn1crypto import crl as asn1_crl
    from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
    from pyhanko_certvalidator import ValidationContext

    from services.certificates import pki
    from services.certificates.signing import to_asn1_cert

    crls = []
    try:
        crls.append(asn1_crl.CertificateList.load(pki.current_crl_der()))
    except pki.CrlUnavailable:
        pass
    kwargs = {"trust_roots": [to_asn1_cert(root) for root in pki.trust_roots()], "crls": crls,
              "allow_fetching": False, "revocation_mode": "hard-fail"}
    try:
        return DocumentSecurityStore.read_dss(reader).as_validation_context(kwargs)
    except (NoDSSFoundError, ValueError, KeyError, TypeError):
        return ValidationContext(**kwargs)


def _embedded_identifier(reader) -> str | None:
    try:
        info = reader.trailer["/Info"]
        text = str(info["/Subject"]).strip()
        parse_identifier(text)
        return text
    except (KeyError, TypeError, ValueError, InvalidCertificateIdentifier):
        return None
    except Exception:  # noqa: BLE001 - a broken Info dictionary is no identifier
        return None


def _signature_report(reader) -> dict[str, Any]:
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    from services.certificates.pki import credit_code_of

    try:
        signatures = reader.embedded_signatures
    except Exception:  # noqa: BLE001 - a malformed AcroForm
        return {"signature_valid": False, "document_intact": False, "reasons": ["signature_unreadable"],
                "signatures": 0, "signer": None}
    if not signatures:
        return {"signature_valid": False, "document_intact": False, "reasons": ["no_signature"], "signatures": 0,
                "signer": None}
    signature = next((sig for sig in signatures if sig.field_name == "IssuerSeal"), signatures[0])
    try:
        status = validate_pdf_signature(signature, signer_validation_context=_validation_context(reader),
                                        skip_diff=True)
    except Exception:  # noqa: BLE001 - a damaged or exotic signature is a verdict, not a 500
        log.info("signature could not be validated", exc_info=True)
        return {"signature_valid": False, "document_intact": False, "reasons": ["signature_unreadable"],
                "signatures": len(signatures), "signer": None}
    reasons = []
    if not (status.intact and status.valid):
        reasons.append("signature_invalid")
    if status.revoked:
        reasons.append("signer_revoked")
    elif not status.trusted:
        reasons.append("untrusted_signer")
    intact = bool(status.intact and status.coverage == SignatureCoverageLevel.ENTIRE_FILE)
    if status.intact and not intact:
        reasons.append("not_intact")
    signer_cert = status.signing_cert
    signer = None
    if signer_cert is not None:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(signer_cert.dump())
        organisation = cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)
        signer = {"name": str(organisation[0].value) if organisation else cert.subject.rfc4514_string(),
                  "credit_code": credit_code_of(cert), "certificate_serial": f"{cert.serial_number:x}"}
    return {"signature_valid": bool(status.intact and status.valid and status.trusted and not status.revoked),
            "document_intact": intact, "reasons": reasons, "signatures": len(signatures), "signer": signer,
            "signed_at": status.signer_reported_dt.isoformat() if status.signer_reported_dt else None}


def verify_pdf(session: Session, data: bytes) -> dict[str, Any]:
    """The verdict on an uploaded PDF (see the module docstring)."""
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader

    from services.certificates.service import effective_status

    if b"%PDF-" not in data[:1024]:
        raise NotAPdf()
    digest = hashlib.sha256(data).hexdigest()
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        reader.root  # noqa: B018 - force the trailer and catalog to parse
    except (PdfReadError, ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise UnreadablePdf(detail={"reason": type(error).__name__}) from error
    except Exception as error:  # noqa: BLE001 - whatever else a hostile file triggers in the parser
        raise UnreadablePdf(detail={"reason": "parse_error"}) from error

    report = _signature_report(reader)
    registered = session.exec(select(Certificate).where(Certificate.pdf_sha256 == digest)).first()
    identifier = registered.identifier if registered else _embedded_identifier(reader)
    certificate = registered
    if certificate is None and identifier:
        certificate = session.exec(select(Certificate).where(Certificate.identifier == identifier)).first()
    reasons = list(report["reasons"])
    if registered is None:
        reasons.append("not_registered")
    status = effective_status(certificate) if certificate is not None else None
    if certificate is not None and status != "valid":
        reasons.append("status_not_valid")
    valid = bool(report["signature_valid"] and report["document_intact"] and registered is not None
                 and status == "valid")
    answer = {
        "valid": valid,
        "verdict": "有效" if valid else "无效",
        "signature_valid": report["signature_valid"],
        "document_intact": report["document_intact"],
        "registered": registered is not None,
        "status": status,
        "status_label": STATUS_LABELS.get(status, status) if status else None,
        "identifier": identifier,
        "reasons": reasons,
        "messages": [REASONS[reason] for reason in reasons],
        "signer": report["signer"],
        "signatures": report["signatures"],
        "pdf_sha256": digest,
    }
    if certificate is not None:
        answer.update({"type_name": certificate.type_name, "issuer_name": certificate.issuer_name,
                       "holder_masked": certificate.holder_masked,
                       "valid_until": certificate.valid_until.isoformat() if certificate.valid_until else None,
                       "registered_pdf_sha256": certificate.pdf_sha256})
    answer["_certificate_id"] = certificate.id if certificate is not None else None
    return answer
