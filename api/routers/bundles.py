"""一件事一次办: bundle definitions, one submission for several matters, and the parent case."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from api.limits import rate_limited_principal
from api.responses import PlainJSONResponse
from api.routers.cases import MaterialRef, OrganizationApplicant, PersonApplicant
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.bundles import service

router = APIRouter(tags=["bundles (一件事)"], route_class=SessionRoute)


class SubmitBundle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    applicant: Annotated[PersonApplicant | OrganizationApplicant, Field(discriminator="kind")]
    region_code: str = Field(pattern=r"^\d{12}$", examples=["361130102200"])
    form: dict[str, Any] = Field(default_factory=dict, examples=[{
        "newborn_name": "李小明", "newborn_gender": "男", "birth_date": "2026-11-20", "birth_place": "婺源县人民医院",
        "mother_name": "王芳", "father_name": "李强", "household_head_name": "李强",
        "household_address": "婺源县秋口镇秋口村 12 号", "card_delivery": "window"}])
    materials: list[MaterialRef] = Field(default_factory=list, max_length=50)


@router.get("/bundles", summary="一件事: the bundles on offer")
def list_bundles(session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.list_bundles(session)


@router.get("/bundles/{code}", summary="One bundle: its matters, combined form and materials",
            responses=errors(404))
def get_bundle(code: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.bundle_view(session, service.get_bundle(code))


@router.post("/bundles/{code}/applications", status_code=status.HTTP_201_CREATED,
             summary="Apply for every matter of a bundle at once (Idempotency-Key as for POST /cases)",
             description="Creates the parent case and one child case per matter, each routed to its own handling "
                         "point. The parent completes when every child completes, and fails (state `failed`, with "
                         "the reason) as soon as one is denied or not accepted.",
             responses=errors(401, 403, 404, 409, 422, 429))
def apply(code: str, body: SubmitBundle, principal: Principal = Depends(rate_limited_principal("submit")),
          session: Session = Depends(get_session),
          idempotency_key: str | None = Header(default=None, max_length=200, alias="Idempotency-Key")) -> dict[str, Any]:
    parent, _replayed = service.submit_bundle(session, principal=principal, code=code,
                                              body=body.model_dump(mode="json"), idempotency_key=idempotency_key)
    return PlainJSONResponse(service.bundle_case_view(session, parent, principal=principal),
                             status_code=status.HTTP_201_CREATED)


@router.get("/bundle-cases", summary="The caller's bundle applications", responses=errors(401))
def my_bundle_cases(principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> dict[str, Any]:
    return PlainJSONResponse(service.list_bundle_cases(session, principal=principal))


@router.get("/bundle-cases/{bundle_case_id}", summary="A bundle application with its child cases",
            responses=errors(401, 404))
def get_bundle_case(bundle_case_id: str, principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> dict[str, Any]:
    parent = service.get_bundle_case(session, principal=principal, bundle_case_id=bundle_case_id)
    return PlainJSONResponse(service.bundle_case_view(session, parent, principal=principal))
