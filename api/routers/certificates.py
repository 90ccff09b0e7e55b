"""E-certificates: the holder's, and the public status and trust chain."""

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from services.accounts.principal import Principal
from services.certificates import pki
from services.certificates import service

router = APIRouter(tags=["certificates"])
public = APIRouter(tags=["public"])


@router.get("/certificates", summary="The caller's certificates", responses=errors(401))
def list_certificates(principal: Principal = Depends(current_principal),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.list_certificates(session, principal=principal)


@router.get("/certificates/{certificate_id}", summary="Certificate metadata", responses=errors(401, 404))
def get_certificate(certificate_id: str, principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.certificate_view(service.get_certificate(session, principal=principal,
                                                            certificate_id=certificate_id))


@router.get("/certificates/{certificate_id}/pdf", summary="The signed PDF", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}, **errors(401, 404)})
def certificate_pdf(certificate_id: str, principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> Response:
    data = service.certificate_pdf(session, principal=principal, certificate_id=certificate_id)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{certificate_id}.pdf"',
                             "Cache-Control": "private, no-store"})


@public.get("/public/certificates/{identifier}/status", summary="Status of a certificate by its identifier",
            responses=errors(404))
def certificate_status(identifier: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.public_status(session, identifier=identifier)


@public.get("/public/pki/ca", summary="The issuing chain's root and intermediates (PEM)", response_class=Response,
            responses={200: {"content": {"application/x-pem-file": {}}}})
def ca_bundle() -> Response:
    return Response(pki.ca_bundle_pem(), media_type="application/x-pem-file")


@public.get("/public/pki/crl", summary="The current certificate revocation list (DER)", response_class=Response,
            responses={200: {"content": {"application/pkix-crl": {}}}})
def crl() -> Response:
    return Response(pki.current_crl_der(), media_type="application/pkix-crl")
