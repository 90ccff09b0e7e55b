"""好差评: the applicant's rating, rectifications for supervisors, and the figures."""

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from api.limits import rate_limited_principal
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.evaluations import figures, service

router = APIRouter(tags=["evaluations"], route_class=SessionRoute)
CaseId = Path(min_length=1, max_length=36, examples=["3f2c9a8e-1b7d-4e0a-9c55-6d4e2b1a0f93"])
RectificationId = Path(ge=1, le=2_147_483_647, examples=[1])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewEvaluation(_Body):
    level: int = Field(ge=1, le=5, strict=True, description="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意", examples=[5])
    comment: str | None = Field(default=None, max_length=500, examples=["窗口人员耐心细致，一次办成"])


class ReturnVisit(_Body):
    method: Literal["phone", "visit", "wechat", "sms"] = Field(examples=["phone"])
    summary: str = Field(min_length=1, max_length=2000, examples=["电话回访申请人，说明整改情况，申请人表示认可"])
    applicant_satisfied: bool | None = Field(default=None, description="what the applicant said on the return visit")


class RectificationCompletion(_Body):
    measures: str = Field(min_length=1, max_length=2000, examples=["对窗口人员开展服务规范培训，优化取号流程"])
    return_visit: ReturnVisit


class EvaluationView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 1, "case_id": "3f2c9a8e-1b7d-4e0a-9c55-6d4e2b1a0f93", "round": 1, "level": 5, "label": "非常满意",
        "comment": "窗口人员耐心细致，一次办成", "created_at": "2026-11-26T15:20:00+08:00"}]})

    id: int
    case_id: str
    round: int = Field(description="1; 2 for the one re-rating after a rectification")
    level: int
    label: str
    comment: str | None
    created_at: str


class RectificationView(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "id": 1, "case_id": "3f2c9a8e-1b7d-4e0a-9c55-6d4e2b1a0f93", "state": "open", "due_date": "2026-12-17",
        "completed_at": None, "evaluation_id": 1, "service_point_id": 5, "supervisor_point_id": 3,
        "supervisor_id": 8, "overdue": False, "created_at": "2026-11-26T15:20:00+08:00", "measures": None,
        "return_visit": None}]})

    id: int
    case_id: str
    state: Literal["open", "done"]
    due_date: str
    completed_at: str | None


class CaseEvaluations(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "case_id": "3f2c9a8e-1b7d-4e0a-9c55-6d4e2b1a0f93", "items": [], "can_evaluate": True, "next_round": 1,
        "reason": None, "window_ends": "2026-12-03", "effective_level": None, "defaulted": False,
        "rectifications": []}]})

    case_id: str
    items: list[EvaluationView]
    can_evaluate: bool
    next_round: int | None
    reason: str | None = Field(description="why not: case_not_completed | evaluation_window_closed | already_evaluated")
    window_ends: str | None = Field(description="last day to rate; afterwards the case counts as 满意")
    effective_level: int | None
    defaulted: bool
    rectifications: list[RectificationView]


class RectificationList(BaseModel):
    items: list[RectificationView]
    next_cursor: str | None = None


class Figures(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "scope": "point:5", "since": None, "until": None, "as_of": "2026-11-26", "closed": 120, "rated": 80,
        "defaulted_satisfied": 30, "awaiting": 10, "by_level": {"5": 60, "4": 12, "3": 5, "2": 2, "1": 1},
        "satisfaction_rate": 0.9727, "rectifications": {"open": 1, "overdue": 0, "done": 2},
        "by_point": [], "by_clerk": []}]})

    scope: str
    closed: int
    rated: int
    defaulted_satisfied: int
    awaiting: int
    by_level: dict[str, int]
    satisfaction_rate: float | None
    rectifications: dict[str, int]
    by_point: list[dict[str, Any]]
    by_clerk: list[dict[str, Any]]


@router.post("/cases/{case_id}/evaluation", status_code=status.HTTP_201_CREATED,
             summary="Applicant: rate a finished case (好差评)", response_model=EvaluationView,
             description="Checks in order: 401, 404 (not your case), 403 `applicant_only`, 422 (level not 1–5), "
                         "409 `case_not_completed` | `already_evaluated` | `evaluation_window_closed` (an unrated "
                         "case counts as 满意 after the window). 不满意 / 非常不满意 opens a rectification for the "
                         "handling point's supervisor; once it is done the applicant may rate once more.",
             responses=errors(401, 403, 404, 409, 422, 429))
def evaluate(body: NewEvaluation, case_id: str = CaseId,
             principal: Principal = Depends(rate_limited_principal("evaluation")),
             session: Session = Depends(get_session)) -> dict[str, Any]:
    evaluation = service.evaluate(session, principal=principal, case_id=case_id, level=body.level,
                                  comment=body.comment)
    return service.evaluation_view(evaluation)


@router.get("/cases/{case_id}/evaluation", summary="A case's ratings and whether the caller may rate now",
            response_model=CaseEvaluations, responses=errors(401, 404))
def case_evaluations(case_id: str = CaseId, principal: Principal = Depends(current_principal),
                     session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.case_evaluation_state(session, principal=principal, case_id=case_id)


@router.get("/rectifications", summary="Supervisor: rectifications of bad ratings in the jurisdiction",
            response_model=RectificationList, responses=errors(401, 403, 422))
def list_rectifications(state: Literal["open", "done"] | None = Query(default=None, examples=["open"]),
                        principal: Principal = Depends(current_principal),
                        session: Session = Depends(get_session)) -> dict[str, Any]:
    rows = service.list_rectifications(session, principal=principal, state=state)
    return {"items": [service.rectification_detail(session, row) for row in rows], "next_cursor": None}


@router.get("/rectifications/{rectification_id}", summary="Supervisor: one rectification",
            response_model=RectificationView, responses=errors(401, 404))
def get_rectification(rectification_id: int = RectificationId, principal: Principal = Depends(current_principal),
                      session: Session = Depends(get_session)) -> dict[str, Any]:
    rectification = service.get_rectification(session, principal=principal, rectification_id=rectification_id)
    return service.rectification_detail(session, rectification)


@router.post("/rectifications/{rectification_id}/completion",
             summary="Supervisor: record the measures and the return visit (回访)", response_model=RectificationView,
             description="Closes the rectification; the applicant is notified and may rate the case once more. "
                         "409 `rectification_done` when already closed.",
             responses=errors(401, 404, 409, 422))
def complete_rectification(body: RectificationCompletion, rectification_id: int = RectificationId,
                           principal: Principal = Depends(current_principal),
                           session: Session = Depends(get_session)) -> dict[str, Any]:
    rectification = service.complete_rectification(
        session, principal=principal, rectification_id=rectification_id, measures=body.measures,
        return_visit_method=body.return_visit.method, return_visit_summary=body.return_visit.summary,
        applicant_satisfied=body.return_visit.applicant_satisfied)
    return service.rectification_detail(session, rectification)


@router.get("/evaluations/figures", summary="好差评 figures of a point or a region, per point and clerk",
            response_model=Figures,
            description="Staff only. Supervisors and admins: any point or region inside their jurisdiction "
                        "(default: all of it); clerks and reviewers: their own point. Cases closed between "
                        "`since` and `until` (China dates).",
            responses=errors(401, 403, 422))
def evaluation_figures(service_point_id: int | None = Query(default=None, ge=1, le=2_147_483_647, examples=[5]),
                       region_code: str | None = Query(default=None, pattern=r"^\d{12}$", examples=["361130102000"]),
                       since: date | None = Query(default=None, examples=["2026-01-01"]),
                       until: date | None = Query(default=None, examples=["2026-12-31"]),
                       principal: Principal = Depends(current_principal),
                       session: Session = Depends(get_session)) -> dict[str, Any]:
    return figures.evaluation_figures(session, principal=principal, service_point_id=service_point_id,
                                      region_code=region_code, since=since, until=until)
