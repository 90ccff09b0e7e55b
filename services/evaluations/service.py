"""好差评: rate, rectify, re-rate."""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.accounts.principal import Principal
from services.cases.models import Case
from services.db import utcnow
from services.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.evaluations.models import Evaluation, Rectification
from services.evaluations.settings import get_evaluation_settings
from services.points.models import ServicePoint, Staff
from services.regions.repository import ancestors, subtree_prefix
from services.sla.calendar import CHINA

log = logging.getLogger("onestop.evaluations")

LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
BAD_LEVELS = frozenset({1, 2})
DEFAULT_LEVEL = 4  # 满意: what an unrated case counts as once its window is over
# Cases that reached an end the applicant can judge (办结): done, or decided against them.
EVALUABLE_STATES = frozenset({"completed", "delivered", "denied", "not_accepted"})
RETURN_VISIT_METHODS = {"phone": "电话回访", "visit": "上门回访", "wechat": "微信回访", "sms": "短信回访"}


class CaseNotFound(NotFound):
    code = "case_not_found"
    message = "办件不存在"


class ApplicantOnly(Forbidden):
    code = "applicant_only"
    message = "只有申请人本人可以评价"


class CaseNotCompleted(Conflict):
    code = "case_not_completed"
    message = "办件尚未办结，暂不能评价"


class AlreadyEvaluated(Conflict):
    code = "already_evaluated"
    message = "该办件已评价"


class EvaluationWindowClosed(Conflict):
    code = "evaluation_window_closed"
    message = "已超过评价期限，系统已默认“满意”"


class RectificationNotFound(NotFound):
    code = "rectification_not_found"
    message = "整改任务不存在"


class SupervisorOnly(Forbidden):
    code = "supervisor_only"
    message = "仅限服务点负责人"


class RectificationDone(Conflict):
    code = "rectification_done"
    message = "该整改任务已完成"


class OutsideJurisdiction(Forbidden):
    code = "outside_jurisdiction"
    message = "超出您的管辖范围"


def _today() -> date:
    return datetime.now(timezone.utc).astimezone(CHINA).date()


def _calendar(session: Session):
    from services.sla.calendar import get_calendar

    return get_calendar(session)


def window_end(session: Session, *, closed_at: datetime) -> date:
    """The last day a case closed at `closed_at` may be rated."""
    closed_day = closed_at.astimezone(CHINA).date()
    return _calendar(session).add_working_days(closed_day, get_evaluation_settings().window_working_days)


def _role(principal: Principal) -> str:
    return principal.roles[0] if principal.roles else ""


def _is_applicant(principal: Principal, case: Case) -> bool:
    return principal.kind == "citizen" and (
        (principal.subject_id is not None and case.subject_id == principal.subject_id)
        or case.created_by_principal == principal.key)


def _visible_case(session: Session, *, principal: Principal, case_id: str) -> Case:
    from services.cases.repository import get_visible_case

    case = get_visible_case(session, case_id=case_id, principal=principal)
    if case is None:
        raise CaseNotFound()
    return case


def _evaluations(session: Session, case_id: str) -> list[Evaluation]:
    return list(session.exec(select(Evaluation).where(Evaluation.case_id == case_id).order_by(Evaluation.round)))


def _rectification_of(session: Session, evaluation_id: int) -> Rectification | None:
    return session.exec(select(Rectification).where(Rectification.evaluation_id == evaluation_id)).first()


def next_round(session: Session, *, case: Case, evaluations: list[Evaluation] | None = None) -> tuple[int | None, str | None]:
    """(the round the applicant may rate now, None) or (None, why not: the error code)."""
    if case.state not in EVALUABLE_STATES:
        return None, CaseNotCompleted.code
    evaluations = _evaluations(session, case.id) if evaluations is None else evaluations
    if not evaluations:
        settings = get_evaluation_settings()
        if settings.default_satisfied and case.closed_at is not None \
                and _today() > window_end(session, closed_at=case.closed_at):
            return None, EvaluationWindowClosed.code
        return 1, None
    last = evaluations[-1]
    if last.round == 1 and last.level in BAD_LEVELS:
        rectification = _rectification_of(session, last.id)
        if rectification is not None and rectification.state == "done":
            return 2, None
    return None, AlreadyEvaluated.code


def evaluate(session: Session, *, principal: Principal, case_id: str, level: int, comment: str | None) -> Evaluation:
    """The applicant rates a finished case (1–5). 不满意 / 非常不满意 opens a rectification; after
    it is done the applicant may rate once more. Checks: 404, 403, 422, 409."""
    case = _visible_case(session, principal=principal, case_id=case_id)
    if not _is_applicant(principal, case):
        raise ApplicantOnly()
    if level not in LEVELS:
        raise InvalidInput("评价等级应为 1–5", detail=[{"field": "level", "reason": "out_of_range"}])
    comment = (comment or "").strip() or None
    round_, why_not = next_round(session, case=case)
    if round_ is None:
        error = {CaseNotCompleted.code: CaseNotCompleted, EvaluationWindowClosed.code: EvaluationWindowClosed,
                 AlreadyEvaluated.code: AlreadyEvaluated}[why_not]
        raise error(detail={"state": case.state})
    evaluation = Evaluation(case_id=case.id, round=round_, level=level, comment=comment, account_id=principal.account_id,
                            service_point_id=case.handling_point_id, clerk_id=case.assignee_id,
                            region_code=case.region_code, matter_code=case.matter_code, created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(evaluation)
    except IntegrityError as error:  # the same rating submitted twice at once
        raise AlreadyEvaluated(detail={"state": case.state}) from error
    if level in BAD_LEVELS:
        open_rectification(session, evaluation=evaluation, case=case)
    log.info("case evaluated", extra={"case_id": case.id, "round": round_, "level": level})
    return evaluation


def responsible_supervisor(session: Session, *, point_id: int) -> tuple[ServicePoint, Staff | None]:
    """The point whose supervisor answers for a point's service: the point itself if it has an
    active supervisor, else the nearest point above it that has one (a village station has
    none: its town centre's supervisor answers for it)."""
    point = session.get(ServicePoint, point_id)
    region_codes = [point.region_code] + [region.code for region in reversed(ancestors(session, code=point.region_code))]
    for code in region_codes:
        points = [point] if code == point.region_code else list(session.exec(
            select(ServicePoint).where(ServicePoint.region_code == code, ServicePoint.active.is_(True))
            .order_by(ServicePoint.id)))
        for candidate in points:
            supervisor = session.exec(select(Staff).where(Staff.service_point_id == candidate.id,
                                                          Staff.role == "supervisor", Staff.active.is_(True))
                                      .order_by(Staff.id)).first()
            if supervisor is not None:
                return candidate, supervisor
    return point, None


def open_rectification(session: Session, *, evaluation: Evaluation, case: Case) -> Rectification:
    point, supervisor = responsible_supervisor(session, point_id=case.handling_point_id)
    due = _calendar(session).add_working_days(_today(), get_evaluation_settings().rectification_working_days)
    rectification = Rectification(evaluation_id=evaluation.id, case_id=case.id, service_point_id=case.handling_point_id,
                                  supervisor_point_id=point.id, supervisor_id=supervisor.id if supervisor else None,
                                  due_date=due, created_at=utcnow())
    session.add(rectification)
    session.flush()
    log.warning("bad rating: rectification opened", extra={"case_id": case.id, "rectification_id": rectification.id,
                                                           "supervisor_point_id": point.id})
    return rectification


# ---------------------------------------------------------------- rectifications

def _rectification_visible(session: Session, *, principal: Principal, rectification: Rectification) -> bool:
    if principal.kind != "staff" or _role(principal) not in ("supervisor", "admin"):
        return False
    if rectification.supervisor_id == principal.account_id:
        return True
    jurisdiction = principal.jurisdiction_code
    if not jurisdiction:
        return False
    point = session.get(ServicePoint, rectification.service_point_id)
    return point is not None and point.region_code.startswith(subtree_prefix(jurisdiction))


def _require_supervisor(principal: Principal) -> None:
    if principal.kind != "staff" or _role(principal) not in ("supervisor", "admin"):
        raise SupervisorOnly()


def list_rectifications(session: Session, *, principal: Principal, state: str | None, limit: int = 100) -> list[Rectification]:
    """The rectifications a supervisor answers for: assigned to them, or of points inside their
    jurisdiction; oldest deadline first."""
    _require_supervisor(principal)
    mine = Rectification.supervisor_id == principal.account_id
    if principal.jurisdiction_code:
        mine = mine | ServicePoint.region_code.startswith(subtree_prefix(principal.jurisdiction_code))
    query = (select(Rectification).join(ServicePoint, ServicePoint.id == Rectification.service_point_id)
             .where(mine))
    if state:
        query = query.where(Rectification.state == state)
    return list(session.exec(query.order_by(Rectification.due_date, Rectification.id).limit(limit)))


def get_rectification(session: Session, *, principal: Principal, rectification_id: int) -> Rectification:
    rectification = session.get(Rectification, rectification_id)
    if rectification is None or not _rectification_visible(session, principal=principal, rectification=rectification):
        raise RectificationNotFound()
    return rectification


def complete_rectification(session: Session, *, principal: Principal, rectification_id: int, measures: str,
                           return_visit_method: str, return_visit_summary: str,
                           applicant_satisfied: bool | None) -> Rectification:
    """The supervisor records the measures taken and the return visit; the applicant is told and
    may rate the case once more."""
    rectification = get_rectification(session, principal=principal, rectification_id=rectification_id)
    if return_visit_method not in RETURN_VISIT_METHODS:
        raise InvalidInput("回访方式不正确", detail=[{"field": "return_visit.method", "reason": "unknown"}])
    if rectification.state == "done":
        raise RectificationDone()
    rectification.state = "done"
    rectification.completed_at = utcnow()
    rectification.completed_by = principal.account_id
    rectification.measures = measures.strip()
    rectification.return_visit_method = return_visit_method
    rectification.return_visit_summary = return_visit_summary.strip()
    rectification.applicant_satisfied = applicant_satisfied
    session.add(rectification)
    from services.notifications.service import enqueue_case_notice

    enqueue_case_notice(session, case_id=rectification.case_id, event="rectified", key=str(rectification.id))
    return rectification


# ---------------------------------------------------------------- views

def _local(moment: datetime | None) -> str | None:
    return moment.astimezone(CHINA).isoformat() if moment else None


def evaluation_view(evaluation: Evaluation) -> dict[str, Any]:
    return {"id": evaluation.id, "case_id": evaluation.case_id, "round": evaluation.round, "level": evaluation.level,
            "label": LEVELS[evaluation.level], "comment": evaluation.comment, "created_at": _local(evaluation.created_at)}


def case_evaluation_state(session: Session, *, principal: Principal, case_id: str) -> dict[str, Any]:
    """The ratings of a case, whether the caller may rate now, and until when."""
    case = _visible_case(session, principal=principal, case_id=case_id)
    evaluations = _evaluations(session, case.id)
    round_, why_not = next_round(session, case=case, evaluations=evaluations)
    settings = get_evaluation_settings()
    ends = window_end(session, closed_at=case.closed_at) if case.closed_at and case.state in EVALUABLE_STATES else None
    defaulted = (not evaluations and settings.default_satisfied and why_not == EvaluationWindowClosed.code)
    rectifications = [_rectification_of(session, evaluation.id) for evaluation in evaluations]
    return {
        "case_id": case.id,
        "items": [evaluation_view(evaluation) for evaluation in evaluations],
        "can_evaluate": round_ is not None and _is_applicant(principal, case),
        "next_round": round_, "reason": why_not,
        "window_ends": ends.isoformat() if ends and not evaluations and settings.default_satisfied else None,
        "effective_level": (evaluations[-1].level if evaluations else (DEFAULT_LEVEL if defaulted else None)),
        "defaulted": defaulted,
        "rectifications": [rectification_view(r, applicant_view=principal.kind == "citizen") for r in rectifications if r],
    }


def rectification_view(rectification: Rectification, *, applicant_view: bool = False) -> dict[str, Any]:
    view = {"id": rectification.id, "case_id": rectification.case_id, "state": rectification.state,
            "due_date": rectification.due_date.isoformat(), "completed_at": _local(rectification.completed_at)}
    if applicant_view:
        return view
    return {**view, "evaluation_id": rectification.evaluation_id, "service_point_id": rectification.service_point_id,
            "supervisor_point_id": rectification.supervisor_point_id, "supervisor_id": rectification.supervisor_id,
            "overdue": rectification.state == "open" and rectification.due_date < _today(),
            "created_at": _local(rectification.created_at), "measures": rectification.measures,
            "return_visit": ({"method": rectification.return_visit_method,
                              "method_label": RETURN_VISIT_METHODS.get(rectification.return_visit_method or "", ""),
                              "summary": rectification.return_visit_summary,
                              "applicant_satisfied": rectification.applicant_satisfied}
                             if rectification.return_visit_method else None)}


def rectification_detail(session: Session, rectification: Rectification) -> dict[str, Any]:
    """A supervisor's view: the task with the rating that opened it."""
    evaluation = session.get(Evaluation, rectification.evaluation_id)
    case = session.get(Case, rectification.case_id)
    return {**rectification_view(rectification), "evaluation": evaluation_view(evaluation) if evaluation else None,
            "case_number": case.number if case else None, "matter_code": case.matter_code if case else None}
