"""Consents to assisted applications (帮办代办授权), and the helpers a citizen may choose."""

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from api.limits import rate_limited_principal
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.consents import service
from services.subjects.identity_numbers import SAMPLE_ID_NUMBER

router = APIRouter(tags=["consents"], route_class=SessionRoute)
ConsentId = Path(min_length=1, max_length=36, examples=["0d6f3c1a-7a3e-4b8e-9d0c-5a1f2e3b4c5d"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewConsent(_Body):
    helper_id: int = Field(ge=1, le=2_147_483_647, description="the helper's staff id (GET /helpers)", examples=[12])
    matter_code: str = Field(min_length=1, max_length=64, examples=["residence-certificate"])


class PaperApplicant(_Body):
    id_number: str = Field(min_length=1, max_length=32, examples=[SAMPLE_ID_NUMBER])
    name: str = Field(min_length=1, max_length=50, examples=["张三"])


class NewPaperConsent(_Body):
    matter_code: str = Field(min_length=1, max_length=64, examples=["residence-certificate"])
    applicant: PaperApplicant
    file_id: str = Field(min_length=1, max_length=36, description="the scan of the signed consent (POST /files)",
                         examples=["5b0f2c1e-4a8d-4c6e-9f3b-2d7a1e0c9b44"])


class CodeLookup(_Body):
    code: str = Field(min_length=4, max_length=8, pattern=r"^[0-9A-Za-z]+$", examples=["K7Q2XM"])


class Confirmation(_Body):
    confirmed: bool = Field(description="true: the signature and the person's ID were checked; false: rejected")
    comment: str | None = Field(default=None, max_length=500, examples=["已核对本人身份证及签字"])


class HelperRef(BaseModel):
    id: int
    name: str
    service_point: dict[str, Any] | None


class ConsentView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "0d6f3c1a-7a3e-4b8e-9d0c-5a1f2e3b4c5d", "code": "K7Q2XM", "kind": "online", "status": "active",
        "matter_code": "residence-certificate", "matter_name": "居住证明开具",
        "helper": {"id": 12, "name": "李敏", "service_point": {"id": 5, "name": "秋口村便民服务站"}},
        "applicant": {"name_masked": "张*", "number_masked": "3611**********0516"},
        "created_at": "2026-11-26T10:00:00+08:00", "expires_at": "2026-12-26T10:00:00+08:00", "used_at": None,
        "case_id": None, "file_id": None, "confirmation": None}]})

    id: str
    code: str = Field(description="short code the citizen shows at the counter")
    kind: Literal["online", "paper"]
    status: Literal["active", "used", "revoked", "expired", "rejected"]
    matter_code: str
    matter_name: str
    helper: HelperRef
    applicant: dict[str, str]
    created_at: str
    expires_at: str
    used_at: str | None
    case_id: str | None
    file_id: str | None
    confirmation: dict[str, Any] | None = Field(description="paper consents: pending | confirmed | rejected")


class ConsentList(BaseModel):
    items: list[ConsentView]
    next_cursor: str | None = None


class HelperView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 12, "name": "李敏", "service_point": {"id": 5, "name": "秋口村便民服务站", "level": "village",
                                                  "address": "婺源县秋口镇秋口村（演示地址）", "hours": "周一至周五"}}]})

    id: int
    name: str
    service_point: dict[str, Any]


class HelperList(BaseModel):
    items: list[HelperView]
    next_cursor: str | None = None


@router.post("/consents", status_code=status.HTTP_201_CREATED, summary="Citizen: consent to be helped",
             response_model=ConsentView,
             description="The citizen (real-name verified) lets one helper apply for one matter on their behalf, "
                         "once, within 30 days. The helper passes the `id` as `consent_id` in POST /cases; the "
                         "`code` is what the citizen shows at the counter (POST /consents/lookup).",
             responses=errors(401, 403, 409, 422, 429))
def create_consent(body: NewConsent, principal: Principal = Depends(rate_limited_principal("consent")),
                   session: Session = Depends(get_session)) -> dict[str, Any]:
    consent = service.create_consent(session, principal=principal, helper_id=body.helper_id,
                                     matter_code=body.matter_code)
    return service.consent_view(session, consent)


@router.post("/consents/paper", status_code=status.HTTP_201_CREATED,
             summary="Helper: record a signed paper consent", response_model=ConsentView,
             description="For a person without a phone: the helper uploads the scan of the signed consent "
                         "(POST /files) and records it here. The case filed with it cannot be accepted until a "
                         "clerk of the receiving point confirms it (POST /consents/{id}/confirmation).",
             responses=errors(401, 403, 404, 409, 422, 429))
def create_paper_consent(body: NewPaperConsent, principal: Principal = Depends(rate_limited_principal("consent")),
                         session: Session = Depends(get_session)) -> dict[str, Any]:
    consent = service.create_paper_consent(session, principal=principal, matter_code=body.matter_code,
                                           applicant_name=body.applicant.name, id_number=body.applicant.id_number,
                                           file_id=body.file_id)
    return service.consent_view(session, consent)


@router.get("/consents", summary="The caller's consents (citizen) or those naming the caller (helper)",
            response_model=ConsentList, responses=errors(401, 422))
def list_consents(status_: Literal["active", "used", "revoked", "expired", "rejected"] | None = Query(
                      default=None, alias="status", examples=["active"]),
                  principal: Principal = Depends(current_principal),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    rows = service.list_consents(session, principal=principal, status=status_)
    return {"items": [service.consent_view(session, row) for row in rows], "next_cursor": None}


@router.post("/consents/lookup", summary="Helper: find a consent by the code the citizen shows",
             response_model=ConsentView, responses=errors(401, 403, 404, 422, 429))
def lookup_consent(body: CodeLookup, principal: Principal = Depends(rate_limited_principal("consent")),
                   session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.consent_view(session, service.find_by_code(session, principal=principal, code=body.code))


@router.get("/consents/{consent_id}", summary="One consent", response_model=ConsentView,
            description="For the person who gave it, the helper it names, and the staff of the case that used it; "
                        "404 for anyone else.", responses=errors(401, 404))
def get_consent(consent_id: str = ConsentId, principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.consent_view(session, service.get_consent(session, principal=principal, consent_id=consent_id))


@router.delete("/consents/{consent_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Citizen: take back an unused consent", responses=errors(401, 403, 404, 409))
def revoke_consent(consent_id: str = ConsentId, principal: Principal = Depends(current_principal),
                   session: Session = Depends(get_session)) -> None:
    service.revoke_consent(session, principal=principal, consent_id=consent_id)


@router.post("/consents/{consent_id}/confirmation", summary="Clerk: confirm or reject a signed paper consent",
             response_model=ConsentView,
             description="A clerk (or supervisor) who can see the case filed with the paper consent checks the "
                         "signature against the person's ID. Rejecting needs a `comment`; 409 when already decided.",
             responses=errors(401, 403, 404, 409, 422))
def confirm_consent(body: Confirmation, consent_id: str = ConsentId,
                    principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> dict[str, Any]:
    consent = service.confirm_paper_consent(session, principal=principal, consent_id=consent_id,
                                            confirmed=body.confirmed, comment=body.comment)
    return service.consent_view(session, consent)


@router.get("/helpers", summary="Helpers (帮办代办员) serving a region, nearest point first",
            response_model=HelperList, responses=errors(401, 422))
def helpers(region_code: str = Query(pattern=r"^\d{12}$", examples=["361130102200"]),
            principal: Principal = Depends(current_principal),
            session: Session = Depends(get_session)) -> dict[str, Any]:
    return {"items": service.helpers_serving(session, region_code=region_code), "next_cursor": None}
