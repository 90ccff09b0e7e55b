"""Cases: submit, act, read, list. Rules live here; the engine decides transitions."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services.accounts.principal import Principal
from services.cases import repository
from services.cases.models import Case, CaseEvent, CaseMaterial, IdempotencyRecord
from services.certificates.models import Certificate
from services.db import utcnow
from services.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.files.service import get_own_unattached_file
from services.matters.service import get_matter, require_matter
from services.outbox.service import enqueue
from services.pagination import decode_cursor, encode_cursor
from services.points.models import ServicePoint, Staff
from services.routing.service import route
from services.sequences.repository import next_value
from services.subjects.identity_numbers import parse_subject_number
from services.subjects.models import Subject
from services.subjects.protection import get_protector
from services.subjects.repository import get_or_create_subject
from workflows.calendar import WorkingDayCalendar
from workflows.catalogue import Matter
from workflows.engine import (ActionNotAvailable, Actor, MissingNeeds, RoleNotAllowed, UnknownAction,
                              available_actions, decide)

CHINA = timezone(timedelta(hours=8))
GENESIS_HASH = "0" * 64
PAGE_SIZE = 20
calendar = WorkingDayCalendar()


class CaseNotFound(NotFound):
    code = "case_not_found"
    message = "办件不存在"


class StaleVersion(Conflict):
    code = "stale_version"
    message = "办件已被他人更新，请刷新后重试"


class ActionNotAllowed(Conflict):
    code = "action_not_allowed"
    message = "当前状态下不能执行该操作"


class ActionForbidden(Forbidden):
    code = "action_forbidden"
    message = "您的角色不能对该办件执行此操作"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"
    message = "该幂等键已用于另一个不同的请求"


class RealNameRequired(Forbidden):
    code = "real_name_required"
    message = "请先完成实名认证"


class ApplicantNotSelf(Forbidden):
    code = "applicant_not_self"
    message = "只能以本人（或本人任法定代表人的单位）名义申请；代办请通过帮办代办员并提供本人授权"


def today_in_china() -> date:
    return datetime.now(CHINA).date()


def _field_error(field: str, reason: str, message: str | None = None) -> dict[str, str]:
    error = {"field": field, "reason": reason}
    if message:
        error["message"] = message
    return error


def request_fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- submit

def submit_case(session: Session, *, principal: Principal, body: dict[str, Any],
                idempotency_key: str | None) -> tuple[Case, bool]:
    """Validate, route and store a new application. Returns (case, replayed)."""
    fingerprint = request_fingerprint(body)
    if idempotency_key:
        record = repository.find_idempotency_record(session, principal=principal.key, key=idempotency_key)
        if record is not None:
            if record.request_sha256 != fingerprint:
                raise IdempotencyKeyReused()
            return session.get(Case, record.case_id), True

    if principal.kind != "citizen":
        raise Forbidden("窗口收件和帮办代办申请尚未开放", code="channel_not_supported")
    if principal.subject_id is None:
        raise RealNameRequired()
    matter = require_matter(body["matter_code"])
    definition = matter.definition
    applicant = body["applicant"]
    number = _applicant_number(applicant, subject_kind=definition.subject_kind)
    _require_self(session, principal=principal, applicant=applicant, number_hash=get_protector().keyed_hash(number.value))
    _validate_form(definition.form_schema, body.get("form") or {})
    material_rows = _check_materials(session, principal=principal, matter=matter, materials=body.get("materials") or [])

    decision = route(session, handle_level=definition.handle_level, region_code=body["region_code"])
    subject = get_or_create_subject(session, number=number, name=applicant["name"].strip())
    now = utcnow()
    county = body["region_code"][:6]
    sequence = next_value(session, name=f"case:{county}:{today_in_china():%Y%m%d}")
    case = Case(
        id=str(uuid.uuid4()), number=f"{county}{today_in_china():%Y%m%d}{sequence:06d}",
        matter_code=definition.code, matter_version=definition.version, state=matter.lifecycle.initial,
        subject_id=subject.id, subject_hash=subject.number_hash, applicant_name=subject.name,
        region_code=body["region_code"], receiving_channel="online", receiving_point_id=None,
        handling_point_id=decision.handling_point.id,
        assignee_id=decision.assignee.id if decision.assignee else None, routing_reason=decision.reason,
        form=body.get("form") or {}, created_by="self", created_by_principal=principal.key,
        submitted_at=now, updated_at=now,
    )
    session.add(case)
    session.flush()
    for code, file_record, certificate in material_rows:
        session.add(CaseMaterial(case_id=case.id, code=code, file_id=file_record.id if file_record else None,
                                 certificate_id=certificate.id if certificate else None))
        if file_record is not None:
            file_record.case_id = case.id
            session.add(file_record)
    _append_event(session, case=case, action="submit", from_state=None, to_state=case.state,
                  principal=principal, comment=None, payload={"routing_reason": decision.reason})
    if idempotency_key:
        session.add(IdempotencyRecord(principal=principal.key, key=idempotency_key, request_sha256=fingerprint,
                                      case_id=case.id))
        try:
            session.flush()
        except IntegrityError as error:  # the same key is being submitted concurrently
            raise Conflict("相同幂等键的请求正在处理，请稍后重试", code="idempotency_in_progress") from error
    return case, False


def _applicant_number(applicant: dict[str, Any], *, subject_kind: str):
    kind = applicant.get("kind")
    if subject_kind != "either" and kind != subject_kind:
        raise InvalidInput("该事项不接受此类申请人", detail=[_field_error("applicant.kind", "not_allowed_for_matter")])
    if kind == "person":
        return parse_subject_number(applicant["id_number"], subject_kind="person")
    return parse_subject_number(applicant["credit_code"], subject_kind="organization")


def _require_self(session: Session, *, principal: Principal, applicant: dict[str, Any], number_hash: str) -> None:
    own = session.get(Subject, principal.subject_id)
    if applicant["kind"] == "person":
        if own.number_hash != number_hash:
            raise ApplicantNotSelf()
        return
    representative = applicant.get("legal_representative") or {}
    if not representative.get("id_number"):
        raise ApplicantNotSelf()
    rep_number = parse_subject_number(representative["id_number"], subject_kind="person")
    if get_protector().keyed_hash(rep_number.value) != own.number_hash:
        raise ApplicantNotSelf()


def _validate_form(schema: dict[str, Any], form: dict[str, Any]) -> None:
    errors = sorted(Draft202012Validator(schema).iter_errors(form), key=lambda e: list(e.path))
    if errors:
        raise InvalidInput("表单内容不符合要求", detail=[
            _field_error("form" + "".join(f".{part}" for part in error.path) if error.path else "form",
                         error.validator, error.message)
            for error in errors
        ])


def _check_materials(session: Session, *, principal: Principal, matter: Matter, materials: list[dict[str, Any]]):
    declared = {material.code: material for material in matter.definition.materials}
    rows = []
    seen = set()
    problems = []
    for index, item in enumerate(materials):
        code = item.get("code")
        where = f"materials[{index}]"
        if code not in declared:
            problems.append(_field_error(f"{where}.code", "unknown_material"))
            continue
        if code in seen:
            problems.append(_field_error(f"{where}.code", "duplicate"))
            continue
        seen.add(code)
        if item.get("file_id"):
            rows.append((code, get_own_unattached_file(session, principal=principal, file_id=item["file_id"]), None))
        elif item.get("certificate_id"):
            certificate = session.get(Certificate, item["certificate_id"])
            wanted = declared[code].certificate_type
            if (certificate is None or certificate.holder_subject_id != principal.subject_id
                    or certificate.status != "valid" or wanted is None or certificate.cert_type != wanted):
                problems.append(_field_error(f"{where}.certificate_id", "not_usable"))
                continue
            rows.append((code, None, certificate))
        else:
            problems.append(_field_error(where, "file_id_or_certificate_id_required"))
    for code, material in declared.items():
        if material.required and code not in seen:
            problems.append(_field_error("materials", "missing_required", f"缺少必交材料：{material.name}（{code}）"))
    if problems:
        raise InvalidInput("申请材料不完整或不正确", detail=problems, code="invalid_materials")
    return rows


# ---------------------------------------------------------------- history

def _event_hash(prev_hash: str, event: CaseEvent) -> str:
    body = json.dumps({
        "case_id": event.case_id, "seq": event.seq, "action": event.action, "from": event.from_state,
        "to": event.to_state, "actor": event.actor, "comment": event.comment, "payload": event.payload,
        "at": event.created_at.astimezone(timezone.utc).isoformat(timespec="microseconds"),
    }, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _append_event(session: Session, *, case: Case, action: str, from_state: str | None, to_state: str,
                  principal: Principal | None, comment: str | None, payload: dict[str, Any]) -> CaseEvent:
    previous = repository.last_event(session, case_id=case.id)
    event = CaseEvent(case_id=case.id, seq=(previous.seq + 1) if previous else 1, action=action,
                      from_state=from_state, to_state=to_state, actor=principal.key if principal else "system",
                      actor_name=principal.name if principal else "", comment=comment, payload=payload,
                      created_at=utcnow(), prev_hash=previous.hash if previous else GENESIS_HASH, hash="")
    event.hash = _event_hash(event.prev_hash, event)
    session.add(event)
    return event


def verify_chain(events: list[CaseEvent]) -> bool:
    """Whether a case's history is intact: consecutive, each hash recomputes, each links."""
    previous_hash = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq or event.prev_hash != previous_hash:
            return False
        if _event_hash(previous_hash, event) != event.hash:
            return False
        previous_hash = event.hash
    return True


# ---------------------------------------------------------------- actions

def _roles_for_case(session: Session, *, principal: Principal, case: Case) -> frozenset[str]:
    if principal.kind == "citizen":
        return frozenset({"applicant"})
    role = principal.roles[0]
    if role == "helper":
        return frozenset({"applicant"}) if case.created_by_principal == principal.key else frozenset()
    if principal.service_point_id == case.handling_point_id:
        return frozenset({role})
    if role in ("supervisor", "admin"):
        return frozenset({role})  # visibility already limited them to their jurisdiction
    return frozenset()


def _load_case(session: Session, *, principal: Principal, case_id: str, lock: bool = False) -> Case:
    case = repository.get_visible_case(session, case_id=case_id, principal=principal, lock=lock)
    if case is None:
        raise CaseNotFound()
    return case


def act(session: Session, *, principal: Principal, case_id: str, action: str, version: int,
        comment: str | None, payload: dict[str, Any] | None) -> Case:
    """Take one action on a case. Checks in the API's order: 404, 403, 422, 409 stale, 409 state."""
    case = _load_case(session, principal=principal, case_id=case_id)
    matter = get_matter(case.matter_code)
    actor = Actor(roles=_roles_for_case(session, principal=principal, case=case))
    payload = payload or {}
    request = {"comment": comment, "items": payload.get("items")}
    try:
        decision = decide(matter.lifecycle, state=case.state, action=action, actor=actor, request=request)
    except UnknownAction:
        raise InvalidInput("未知的操作", detail=[_field_error("action", "unknown")], code="unknown_action")
    except RoleNotAllowed as error:
        raise ActionForbidden(detail={"action": action, "allowed_roles": list(error.roles)})
    except MissingNeeds as error:
        raise InvalidInput("该操作需要填写：" + "、".join(error.missing),
                           detail=[_field_error(need if need == "comment" else f"payload.{need}", "required")
                                   for need in error.missing])
    except ActionNotAvailable:
        if version != case.version:
            raise StaleVersion(detail={"current_version": case.version})
        raise ActionNotAllowed(detail={"state": case.state, "action": action})
    if version != case.version:
        raise StaleVersion(detail={"current_version": case.version})

    values: dict[str, Any] = {"state": decision.to_state, "updated_at": utcnow()}
    values.update(_sla_changes(case, matter=matter, sla=decision.sla))
    if not repository.update_if_version(session, case_id=case.id, expected_version=version, values=values):
        raise StaleVersion()
    session.refresh(case)
    _append_event(session, case=case, action=action, from_state=decision.from_state, to_state=decision.to_state,
                  principal=principal, comment=comment, payload=payload)
    for effect in decision.effects:
        enqueue(session, kind=effect, payload={"case_id": case.id}, dedupe_key=f"{effect}:{case.id}")
    session.flush()
    return case


def _sla_changes(case: Case, *, matter: Matter, sla: str | None) -> dict[str, Any]:
    if sla == "start":
        today = today_in_china()
        definition = matter.definition
        return {"sla_state": "running", "accepted_at": utcnow(),
                "due_date": calendar.add_working_days(today, definition.promised_days),
                "legal_due_date": (calendar.add_working_days(today, definition.legal_days)
                                   if definition.legal_days is not None else None)}
    if sla == "stop":
        return {"sla_state": "stopped", "closed_at": utcnow()}
    return {}


def available_actions_for(session: Session, *, principal: Principal, case_id: str) -> list[dict[str, Any]]:
    case = _load_case(session, principal=principal, case_id=case_id)
    matter = get_matter(case.matter_code)
    actor = Actor(roles=_roles_for_case(session, principal=principal, case=case))
    return [{"action": name, "label": definition.label, "needs": list(definition.needs)}
            for name, definition in available_actions(matter.lifecycle, state=case.state, actor=actor)]


# ---------------------------------------------------------------- reading

def _local_iso(moment: datetime | None) -> str | None:
    return moment.astimezone(CHINA).isoformat() if moment else None


def sla_view(case: Case) -> dict[str, Any]:
    if case.due_date is None:
        return {"state": "not_started" if case.sla_state == "not_started" else case.sla_state,
                "working_days_left": None, "breached": False}
    end = case.closed_at.astimezone(CHINA).date() if case.closed_at else today_in_china()
    left = calendar.working_days_between(end, case.due_date)
    return {"state": case.sla_state, "working_days_left": left if case.sla_state == "running" else None,
            "breached": end > case.due_date, "due_date": case.due_date.isoformat(),
            "legal_due_date": case.legal_due_date.isoformat() if case.legal_due_date else None,
            "calendar_covered": calendar.is_covered(case.due_date)}


def _point_ref(session: Session, point_id: int | None) -> dict[str, Any] | None:
    point = session.get(ServicePoint, point_id) if point_id else None
    return {"id": point.id, "name": point.name, "level": point.level} if point else None


def case_view(session: Session, case: Case, *, with_history: bool = True) -> dict[str, Any]:
    """The API's case shape (applicant numbers masked)."""
    matter = get_matter(case.matter_code)
    state = matter.lifecycle.states.get(case.state)
    subject = session.get(Subject, case.subject_id)
    assignee = session.get(Staff, case.assignee_id) if case.assignee_id else None
    view = {
        "id": case.id, "number": case.number, "matter_code": case.matter_code, "matter_name": matter.definition.name,
        "matter_version": case.matter_version, "state": case.state,
        "state_label": state.label if state else case.state,
        "national_status": state.national_status if state else None, "version": case.version,
        "applicant": {"kind": subject.kind, "name": subject.name, "number_masked": subject.number_masked},
        "region_code": case.region_code,
        "receiving_point": _point_ref(session, case.receiving_point_id) or {"id": None, "name": "网上申请", "level": None},
        "handling_point": _point_ref(session, case.handling_point_id),
        "assignee": {"id": assignee.id, "name": assignee.display_name} if assignee else None,
        "routing_reason": case.routing_reason, "submitted_at": _local_iso(case.submitted_at),
        "accepted_at": _local_iso(case.accepted_at),
        "due_date": case.due_date.isoformat() if case.due_date else None, "sla": sla_view(case),
        "form": case.form,
        "materials": [{"code": m.code, "file_id": m.file_id, "certificate_id": m.certificate_id}
                      for m in repository.materials(session, case_id=case.id)],
        "certificate_ids": repository.certificate_ids(session, case_id=case.id),
        "created_by": case.created_by,
    }
    if with_history:
        view["history"] = [
            {"seq": e.seq, "action": e.action, "from_state": e.from_state, "to_state": e.to_state,
             "actor": e.actor, "actor_name": e.actor_name, "comment": e.comment, "payload": e.payload,
             "at": _local_iso(e.created_at), "hash": e.hash}
            for e in repository.history(session, case_id=case.id)
        ]
    return view


def get_case(session: Session, *, principal: Principal, case_id: str) -> Case:
    return _load_case(session, principal=principal, case_id=case_id)


def _decode_case_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        moment, case_id = decode_cursor(cursor)
        return datetime.fromisoformat(moment), str(case_id)
    except (ValueError, TypeError) as error:
        raise InvalidInput("分页游标无效", detail=[_field_error("cursor", "invalid")]) from error


def list_cases(session: Session, *, principal: Principal, state: str | None, cursor: str | None) -> dict[str, Any]:
    before = _decode_case_cursor(cursor) if cursor else None
    cases = repository.list_visible_cases(session, principal=principal, state=state, before=before,
                                          limit=PAGE_SIZE + 1)
    page = cases[:PAGE_SIZE]
    return {"items": [case_view(session, case, with_history=False) for case in page],
            "next_cursor": (encode_cursor([page[-1].submitted_at.astimezone(timezone.utc).isoformat(), page[-1].id])
                            if len(cases) > PAGE_SIZE else None)}
