"""E-certificates: the holder's (list, download, usage, grants), the issuing department's
(status), the clerk's (免证办 search), and the public ones (status, verification, shared links,
trust chain)."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.certificates import checklog, pki, public as public_checks, service
from services.certificates.settings import get_certificate_settings
from services.certificates.types import load_certificate_types
from services.certificates.verification import read_limited, verify_pdf
from services.subjects.identity_numbers import SAMPLE_ID_NUMBER

router = APIRouter(tags=["certificates"], route_class=SessionRoute)
public = APIRouter(tags=["public"], route_class=SessionRoute)

CHUNK = 256 * 1024
VERIFY_BODY_LIMIT = get_certificate_settings().verify_max_bytes + 64 * 1024
IDENTIFIER_EXAMPLE = "1.2.156.3005.2.11360000MB1D500287001.11361130MB1C20012R.202600000001.001.2"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusChange(_Body):
    status: Literal["valid", "suspended", "annulled", "cancelled", "revoked"] = Field(
        examples=["suspended"], description="valid (恢复有效), suspended (暂扣), annulled (撤销), cancelled (注销), "
                                            "revoked (吊销); expired (失效) is set by the expiry job")
    reason: str = Field(min_length=1, max_length=500, examples=["持证人涉嫌违法经营，依法暂扣"])


class CertificateSearch(_Body):
    holder_number: str = Field(min_length=1, max_length=32, description="the holder's citizen ID number or credit code",
                               examples=[SAMPLE_ID_NUMBER])
    type_code: str | None = Field(default=None, max_length=64, description="type code (21 characters) or type slug",
                                  examples=["residence-certificate"])
    case_id: str = Field(min_length=1, max_length=36)


class GrantRequest(_Body):
    grantee: str = Field(min_length=1, max_length=200, examples=["中国农业银行婺源县支行"])
    grantee_code: str | None = Field(default=None, max_length=18, description="the third party's credit code")
    purpose: str = Field(min_length=1, max_length=300, examples=["办理个人住房贷款"])
    expires_at: datetime = Field(examples=["2026-12-31T23:59:59+08:00"])


def _client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


# ---------------------------------------------------------------------------------------------
# The holder and staff


@router.get("/certificates", summary="The caller's certificates", responses=errors(401, 422))
def list_certificates(status_: str | None = Query(default=None, alias="status", max_length=12),
                      cursor: str | None = Query(default=None, max_length=300),
                      principal: Principal = Depends(current_principal),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.list_certificates(session, principal=principal, status=status_, cursor=cursor)


@router.post("/certificates/search", summary="A holder's valid certificates for a case (免证办, staff)",
             responses=errors(401, 403, 404, 422))
def search_certificates(body: CertificateSearch, principal: Principal = Depends(current_principal),
                        session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.search_for_case(session, principal=principal, holder_number=body.holder_number,
                                   type_code=body.type_code, case_id=body.case_id)


@router.get("/certificates/{certificate_id}", summary="Certificate metadata (GB/T 36903), fields and status history",
            responses=errors(401, 404))
def get_certificate(certificate_id: str, principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.certificate_detail(session, principal=principal, certificate_id=certificate_id)


@router.get("/certificates/{certificate_id}/pdf", summary="The signed PDF", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}, **errors(401, 404)})
def certificate_pdf(certificate_id: str, principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> Response:
    data = service.certificate_pdf(session, principal=principal, certificate_id=certificate_id)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{certificate_id}.pdf"',
                             "Cache-Control": "private, no-store"})


@router.get("/certificates/{certificate_id}/usage", summary="Every use of the certificate: who, when, for what",
            responses=errors(401, 403, 404))
def certificate_usage(certificate_id: str, principal: Principal = Depends(current_principal),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.usage_log(session, principal=principal, certificate_id=certificate_id)


@router.post("/certificates/{certificate_id}/status", summary="Change the status (issuing department)",
             responses=errors(401, 403, 404, 409, 422))
def change_status(certificate_id: str, body: StatusChange, principal: Principal = Depends(current_principal),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    service.change_status(session, principal=principal, certificate_id=certificate_id, status=body.status,
                          reason=body.reason)
    return service.certificate_detail(session, principal=principal, certificate_id=certificate_id)


@router.post("/certificates/{certificate_id}/grants", status_code=status.HTTP_201_CREATED,
             summary="Let a third party see the certificate until a time, for a purpose (holder)",
             responses=errors(401, 403, 404, 409, 422))
def create_grant(certificate_id: str, body: GrantRequest, principal: Principal = Depends(current_principal),
                 session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.create_grant(session, principal=principal, certificate_id=certificate_id, grantee=body.grantee,
                                purpose=body.purpose, expires_at=body.expires_at, grantee_code=body.grantee_code)


@router.get("/certificates/{certificate_id}/grants", summary="The certificate's grants (holder)",
            responses=errors(401, 403, 404))
def list_grants(certificate_id: str, principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.list_grants(session, principal=principal, certificate_id=certificate_id)


@router.delete("/certificates/{certificate_id}/grants/{grant_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Take a grant back (holder)", response_class=Response, responses=errors(401, 403, 404))
def revoke_grant(certificate_id: str, grant_id: str, principal: Principal = Depends(current_principal),
                 session: Session = Depends(get_session)) -> Response:
    service.revoke_grant(session, principal=principal, certificate_id=certificate_id, grant_id=grant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------------
# Public


@public.get("/certificate-types", summary="The certificate types and their metadata")
def certificate_types() -> dict[str, Any]:
    return {"items": [{"code": t.code, "name": t.name, "certificate_name": t.certificate_name,
                       "type_code": t.type_code, "issuer_name": t.issuer_name, "issuer_code": t.issuer_code,
                       "holder_code_type": t.holder_code_type, "jurisdiction_code": t.jurisdiction_code,
                       "validity": t.validity.model_dump(exclude_none=True) if t.validity else None,
                       "fields": [{"key": f.key, "label": f.label} for f in t.fields]}
                      for t in load_certificate_types().values()]}


@public.get("/public/certificates/{identifier}/status", summary="Status of a certificate by its identifier",
            response_class=Response,
            responses={200: {"content": {"application/json": {"example": {
                "identifier": IDENTIFIER_EXAMPLE, "type_code": "11360000MB1D500287001", "type_name": "居住证明",
                "status": "valid", "status_label": "有效", "issued_at": "2026-11-26T10:00:00+08:00",
                "valid_until": "2027-05-26", "issuer_name": "婺源县政务服务数据管理局",
                "holder_masked": "3611**********0516", "holder_name_masked": "张*", "pdf_sha256": "…"}}}},
                       **errors(404, 429)})
async def certificate_status(identifier: str, request: Request) -> Response:
    body = await public_checks.status_json(identifier, client_address=_client_address(request))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})


def _chunks(upload: UploadFile) -> Iterator[bytes]:
    while chunk := upload.file.read(CHUNK):
        yield chunk


@public.post("/public/certificates/verify", summary="Verify an uploaded certificate PDF",
             responses=errors(413, 415, 422, 429), max_body_size=VERIFY_BODY_LIMIT)
def verify_certificate(request: Request, file: UploadFile,
                       session: Session = Depends(get_session)) -> dict[str, Any]:
    client = public_checks.check_verify_rate(_client_address(request))
    try:
        data = read_limited(_chunks(file), limit=get_certificate_settings().verify_max_bytes)
        answer = verify_pdf(session, data)
    except Exception as error:
        checklog.record(kind="verify", identifier=None, certificate_id=None,
                        result=getattr(error, "code", "error"), client=client)
        raise
    certificate_id = answer.pop("_certificate_id")
    checklog.record(kind="verify", identifier=answer["identifier"], certificate_id=certificate_id,
                    result="valid" if answer["valid"] else f"invalid:{(answer['reasons'] or ['?'])[0]}", client=client)
    return answer


@public.get("/public/shared-certificates/{token}", summary="A certificate its holder shared (third party)",
            responses={**errors(404, 410)})
def shared_certificate(token: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.shared_view(session, token=token)


@public.get("/public/shared-certificates/{token}/pdf", summary="The shared certificate's signed PDF",
            response_class=Response, responses={200: {"content": {"application/pdf": {}}}, **errors(404, 410)})
def shared_certificate_pdf(token: str, session: Session = Depends(get_session)) -> Response:
    certificate, data = service.shared_pdf(session, token=token)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{certificate.id}.pdf"',
                             "Cache-Control": "private, no-store"})


@public.get("/public/pki/ca", summary="The issuing chains' roots and intermediates (PEM)", response_class=Response,
            responses={200: {"content": {"application/x-pem-file": {}}}})
def ca_bundle() -> Response:
    return Response(pki.ca_bundle_pem(), media_type="application/x-pem-file")


@public.get("/public/pki/crl", summary="The current certificate revocation list (DER)", response_class=Response,
            responses={200: {"content": {"application/pkix-crl": {}}}, **errors(503)})
def crl() -> Response:
    return Response(pki.current_crl_der(), media_type="application/pkix-crl",
                    headers={"Cache-Control": "public, max-age=300"})
