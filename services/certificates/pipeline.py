"""The one function the issuing job calls: case context in, signed PDF out.

    fields -> content hash -> QR token (ES256, issuer key) -> QR PNG -> HTML -> PDF -> PAdES

Pure apart from reading the issuing chain (and generating it on first use in development).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from services.certificates.identifiers import parse_identifier
from services.certificates.numbers import certificate_number
from services.certificates.pki import load_issuing_chain
from services.certificates.rendering import (
    content_sha256,
    make_qr_token,
    qr_payload,
    qr_png,
    shared_renderer,
)
from services.certificates.signing import sign_pdf
from services.certificates.types import HOLDER_CODE_TYPE_NAMES, CertificateType, resolve_fields
from services.config import Settings, get_settings
from services.errors import InvalidInput, ServiceUnavailable

# An unmasked citizen ID number (18 or 15 characters, no mask): must never reach a certificate.
_CLEAR_ID_NUMBER = re.compile(r"\d{17}[\dXx]|\d{15}")


class IssuerMismatch(ServiceUnavailable):
    code = "certificate_issuer_mismatch"
    message = "证照类型的颁证单位与签章证书不一致"


@dataclass(frozen=True)
class IssuedPdf:
    pdf: bytes
    sha256: str  # of the signed file (hex)
    content_sha256: str  # of what the certificate says (hex), also the QR token's `h`
    qr_token: str
    fields: tuple[tuple[str, str], ...] = ()  # (label, value) as printed
    number: str = ""  # the printed certificate number (证照编号)
    signer_fingerprint: str = ""  # SHA-256 (hex) of the issuer certificate that signed


def certificate_context(
    context: dict,
    *,
    identifier: str,
    serial: str,
    holder_masked: str,
    issued_at: dt.date,
    valid_until: dt.date | None,
    cert_type: CertificateType,
    number: str = "",
) -> dict:
    """The case context plus what the pipeline knows: `certificate.*` and `issuer.*`."""
    return {
        **context,
        "certificate": {
            "identifier": identifier,
            "serial": serial,
            "number": number or serial,
            "name": cert_type.certificate_name,
            "holder_masked": holder_masked,
            "holder_code_type": cert_type.holder_code_type,
            "holder_code_type_name": HOLDER_CODE_TYPE_NAMES[cert_type.holder_code_type],
            "issued_at": issued_at,
            "valid_from": issued_at,
            "valid_until": valid_until if valid_until is not None else "长期",
            "jurisdiction_code": cert_type.jurisdiction_code,
        },
        "issuer": {"name": cert_type.issuer_name, "credit_code": cert_type.issuer_code},
    }


def produce_certificate_pdf(
    *,
    cert_type: CertificateType,
    identifier: str,
    context: dict,
    holder_masked: str,
    issued_at: dt.date,
    valid_until: dt.date | None,
    settings: Settings | None = None,
) -> IssuedPdf:
    """Render, seal and sign one certificate. `context` is the case context the type's field
    sources point into; `holder_masked` is the holder's masked ID number (never pass the clear
    one), or for an organisation its credit code (public, shown in full)."""
    settings = settings or get_settings()
    if cert_type.holder_kind == "person" and _CLEAR_ID_NUMBER.fullmatch(holder_masked.strip()):
        raise InvalidInput("证照上只能显示脱敏的证件号码", code="holder_number_not_masked")
    parsed = parse_identifier(identifier)
    if parsed.type_code != cert_type.type_code or parsed.issuer_code != cert_type.issuer_code:
        raise InvalidInput(
            "电子证照标识与证照类型不符",
            code="certificate_identifier_mismatch",
            detail={"identifier": identifier, "certificate_type": cert_type.code},
        )
    chain = load_issuing_chain(settings, issuer_code=cert_type.issuer_code)
    signer_code = chain.issuer_credit_code
    if signer_code is not None and signer_code != cert_type.issuer_code:
        raise IssuerMismatch(detail={"type_issuer": cert_type.issuer_code, "signing_certificate": signer_code})

    number = certificate_number(cert_type, serial=parsed.serial, issued_at=issued_at,
                                holder_masked=holder_masked, context=context)
    fields = resolve_fields(
        cert_type,
        certificate_context(
            context,
            identifier=identifier,
            serial=parsed.serial,
            holder_masked=holder_masked,
            issued_at=issued_at,
            valid_until=valid_until,
            cert_type=cert_type,
            number=number,
        ),
    )
    content_hash = content_sha256(fields, identifier)
    token = make_qr_token(
        chain=chain,
        identifier=identifier,
        type_code=cert_type.type_code,
        issuer_code=cert_type.issuer_code,
        content_sha256=content_hash,
        issued_at=issued_at,
    )
    renderer = shared_renderer()
    unsigned = renderer.render(
        cert_type=cert_type,
        fields=fields,
        identifier=identifier,
        issued_at=issued_at,
        valid_until=valid_until,
        holder_masked=holder_masked,
        number=number,
        qr_png=qr_png(qr_payload(public_base_url=settings.public_base_url, identifier=identifier, token=token)),
    )
    signed = sign_pdf(
        unsigned,
        chain=chain,
        cert_type=cert_type,
        location=cert_type.issuer_name,
        settings=settings,
        seal_pdf=renderer.seal_pdf(cert_type),
    )
    return IssuedPdf(
        pdf=signed,
        sha256=hashlib.sha256(signed).hexdigest(),
        content_sha256=content_hash,
        qr_token=token,
        fields=tuple(fields),
        number=number,
        signer_fingerprint=chain.issuer_cert.fingerprint(hashes.SHA256()).hex(),
    )


def produce_sample_pdf(
    cert_type: CertificateType,
    *,
    serial: str = "202600000001",
    issued_at: dt.date | None = None,
    settings: Settings | None = None,
) -> IssuedPdf:
    """A certificate of `cert_type` filled with the made-up `sample:` context of its type.yaml
    (previews, `onestop certificates render-sample`, the tests of every type)."""
    from services.certificates.identifiers import build_identifier

    if not cert_type.sample:
        raise InvalidInput("该证照类型没有示例数据（type.yaml 的 sample）", code="certificate_type_without_sample")
    issued_at = issued_at or dt.date.today()
    context = dict(cert_type.sample)
    applicant = context.get("applicant") or {}
    holder = applicant.get("credit_code") if cert_type.holder_kind == "organization" else applicant.get("number_masked")
    identifier = build_identifier(type_code=cert_type.type_code, issuer_code=cert_type.issuer_code, serial=serial)
    return produce_certificate_pdf(
        cert_type=cert_type,
        identifier=identifier,
        context=context,
        holder_masked=holder or "",
        issued_at=issued_at,
        valid_until=cert_type.valid_until(issued_at),
        settings=settings,
    )
