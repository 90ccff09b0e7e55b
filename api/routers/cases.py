"""Cases: submit, read, list, act."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from api.limits import rate_limited_principal
from api.responses import PlainJSONResponse
from api.routing import SessionRoute, autocommits, reads_only
from services.accounts.principal import Principal
from services.cases import service

router = APIRouter(tags=["cases"], route_class=SessionRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Representative(_Body):
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=50)


class PersonApplicant(_Body):
    kind: Literal["person"]
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=50)
    phone: str | None = Field(default=None, pattern=r"^1\d{10}$")


class OrganizationApplicant(_Body):
    kind: Literal["organization"]
    credit_code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    legal_representative: Representative | None = None
    phone: str | None = Field(default=None, pattern=r"^1\d{10}$")


class MaterialRef(_Body):
    code: str = Field(min_length=1, max_length=64)
    file_id: str | None = Field(default=None, max_length=36)
    certificate_id: str | None = Field(default=None, max_length=36)

    @model_validator(mode="after")
    def _exactly_one(self) -> "MaterialRef":
        if (self.file_id is None) == (self.certificate_id is None):
            raise ValueError("give exactly one of file_id and certificate_id")
        return self


class SubmitCase(_Body):
    matter_code: str = Field(min_length=1, max_length=64, examples=["residence-certificate"])
    applicant: Annotated[PersonApplicant | OrganizationApplicant, Field(discriminator="kind")]
    region_code: str = Field(pattern=r"^\d{12}$", examples=["361130102201"])
    form: dict[str, Any] = Field(default_factory=dict,
                                 examples=[{"address": "婺源县紫阳镇…", "since": "2020-05", "purpose": "子女入学"}])
    materials: list[MaterialRef] = Field(default_factory=list, max_length=50)
    consent_id: str | None = Field(default=None, max_length=36)


class CaseAction(_Body):
    action: str = Field(min_length=1, max_length=40, examples=["accept"])
    version: int = Field(ge=1, examples=[1])
    comment: str | None = Field(default=None, max_length=2000)
    payload: dict[str, Any] | None = Field(default=None, examples=[
        {"items": [{"material_code": "id-card", "problem": "身份证照片模糊，请重新上传正反面"},
                   {"field": "since", "problem": "起始年月与租赁合同不一致"}]},
        {"max_days": 10, "procedure": "现场核查"}, {"days": 3}, {"method": "mail", "tracking_number": "EMS1234567890"},
        {"to_point_id": 2, "to_staff_id": 7}, {"materials": [{"code": "id-card", "file_id": "…"}]}])


def _json(content: Any, status_code: int = 200) -> PlainJSONResponse:
    """The answer as it is: the service already built plain JSON values, so FastAPI's
    re-validation and re-encoding of a large dict is skipped."""
    return PlainJSONResponse(content, status_code=status_code)


@router.post("/cases", status_code=status.HTTP_201_CREATED, summary="Submit an application",
             responses=errors(401, 403, 404, 409, 422, 429))
@autocommits
def submit_case(body: SubmitCase, principal: Principal = Depends(rate_limited_principal("submit")),
                session: Session = Depends(get_session),
                idempotency_key: str | None = Header(default=None, max_length=200, alias="Idempotency-Key"),
                ) -> dict[str, Any]:
    submitted = service.submit_case(session, principal=principal, body=body.model_dump(mode="json"),
                                    idempotency_key=idempotency_key)
    return _json(service.case_view(session, submitted.case, principal=principal, details=submitted.details),
                 status.HTTP_201_CREATED)


@router.get("/cases", summary="The caller's cases (own, assisted, queue or region)",
            description="Citizens: their own cases and those a helper filed for them; helpers: the cases they "
                        "helped with; clerks: their assignments, their point's unclaimed pool and what came in at "
                        "their point; supervisors and administrators: their region. Staff get their work queue by "
                        "default: cases still in progress, those waiting for acceptance first (oldest first), "
                        "then the nearest deadline first; `sort=newest` lists everything newest first. `sla=due_soon` or "
                        "`sla=overdue` narrows to cases the SLA sweep has marked so. Pages of 20; pass "
                        "`next_cursor` back as `cursor`.",
            responses=errors(401, 422))
@reads_only
def list_cases(state: str | None = Query(default=None, max_length=20, examples=["accepted"]),
               matter_code: str | None = Query(default=None, max_length=64, examples=["residence-certificate"]),
               sla: Literal["due_soon", "overdue"] | None = Query(default=None),
               sort: Literal["newest", "deadline"] | None = Query(default=None),
               cursor: str | None = Query(default=None, max_length=300),
               principal: Principal = Depends(current_principal),
               session: Session = Depends(get_session)) -> dict[str, Any]:
    return _json(service.list_cases(session, principal=principal, state=state, cursor=cursor,
                                    matter_code=matter_code, sla=sla, sort=sort))


@router.get("/cases/{case_id}", summary="A case with its history", responses=errors(401, 404))
@reads_only
def get_case(case_id: str, principal: Principal = Depends(current_principal),
             session: Session = Depends(get_session)) -> dict[str, Any]:
    return _json(service.get_case_view(session, principal=principal, case_id=case_id))


@router.get("/cases/{case_id}/actions", summary="What the caller may do with the case now",
            responses=errors(401, 404))
@reads_only
def case_actions(case_id: str, principal: Principal = Depends(current_principal),
                 session: Session = Depends(get_session)) -> list[dict[str, Any]]:
    return _json(service.available_actions_for(session, principal=principal, case_id=case_id))


@router.post("/cases/{case_id}/actions", summary="Take an action (accept, approve, …) on a case",
             description="Actions: accept, refuse (comment), request_correction (comment, payload.items: the "
                         "complete 一次性告知 list), supplement (applicant: payload.materials / payload.form), "
                         "withdraw, suspend (comment, payload.max_days), resume, extend (comment, payload.days; "
                         "once, within the legal limit, else 422 extension_not_allowed), review steps, approve, "
                         "deny (comment), complete, deliver (payload.method: window | mail | online), "
                         "claim (a clerk takes an unassigned case; 403 category_not_handled when their "
                         "window does not take the matter's category), transfer (supervisor: comment, "
                         "payload.to_point_id / to_staff_id).",
             responses=errors(401, 403, 404, 409, 422))
@autocommits
def act(case_id: str, body: CaseAction, principal: Principal = Depends(current_principal),
        session: Session = Depends(get_session)) -> dict[str, Any]:
    acted = service.act(session, principal=principal, case_id=case_id, action=body.action, version=body.version,
                        comment=body.comment, payload=body.payload)
    return _json(service.case_view(session, acted.case, principal=principal, details=acted.details))
