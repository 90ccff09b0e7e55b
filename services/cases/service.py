"""Cases: submit, act, read, list. Rules live here; the engine decides transitions."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date, datetime, timezone
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from services.accounts.principal import Principal
from services.bundles.progress import child_changed
from services.cases import repository
from services.cases.models import Case, CaseEvent, CaseMaterial, IdempotencyRecord
from services.certificates.service import annotate_cited_materials
from services.consents.service import consent_guard_failures, require_consent, use_consent
from services.db import insert_now, inserting, new_row, transaction, utcnow, write_guarded
from services.errors import Conflict, Forbidden, InvalidInput, NotFound, OnestopError
from services.files.service import (FileNotFound, Upload, attach_to_case, attaching, own_unattached_files, unattachable,
                                    unused_own_files)
from services.matters import service as matters
from services.notifications.service import notice_of_action
from services.outbox.models import OutboxJob
from services.outbox.service import adding_jobs
from services.pagination import decode_cursor, encode_cursor
from services.points.models import ServicePoint, ServiceWindow, Staff
from services.points.repository import clerk_loads
from services.regions.repository import subtree_prefix
from services.routing.service import RoutingDecision, route
from services.sequences.repository import take_value
from services.sla import clock
from services.sla.calendar import CHINA, get_calendar
from services.sla.calendar import today_in_china as _today_in_china
from services.sla.settings import get_sla_settings
from services.subjects.identity_numbers import parse_subject_number
from services.subjects.models import Subject, SubjectRef
from services.subjects.protection import get_protector
from services.subjects.repository import create_subject, find_subject
from workflows.calendar import WorkingDayCalendar
from workflows.catalogue import Matter
from workflows.engine import (ActionNotAvailable, Actor, Decision, InvalidPreviousState, MissingNeeds, RoleNotAllowed,
                              UnknownAction, available_actions, decide)

__all__ = ["CHINA", "GENESIS_HASH", "PAGE_SIZE", "Submitted", "calendar", "submit_case", "act", "available_actions_for",
           "case_view", "case_views", "get_case", "get_case_view", "list_cases", "verify_chain"]

GENESIS_HASH = "0" * 64
PAGE_SIZE = 20
MAX_ID = 2_147_483_647  # ids are 32-bit integers in the database: larger ones are unknown, not a 500
# The statutory calendar without administrators' overrides, for code that has no session (the
# benchmark seeder). Requests use services.sla.calendar.get_calendar(session).
calendar = WorkingDayCalendar()

# Actions that decide on the application: the materials and the form must be complete and valid.
GUARDED_ACTIONS = frozenset({"accept", "approve", "review_pass"})
DELIVERY_METHODS = {"window": "窗口领取", "mail": "邮寄送达", "online": "网上送达"}


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


class AlreadyAssigned(Conflict):
    code = "already_assigned"
    message = "该办件已分配给其他工作人员"


class CategoryNotHandled(Forbidden):
    code = "category_not_handled"
    message = "您所在的窗口不办理该类事项，不能认领"


def today_in_china() -> date:
    return _today_in_china()


def _field_error(field: str, reason: str, message: str | None = None) -> dict[str, str]:
    error = {"field": field, "reason": reason}
    if message:
        error["message"] = message
    return error


def request_fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- matters

def current_matter(session: Session, code: str) -> Matter:
    """The version a new application uses (a code in a request body: unknown is a 422)."""
    return matters.current_matter(session, code, from_body=True)


_versions: dict[tuple[str, int], Matter] = {}


def matter_of(session: Session, case: Case) -> Matter:
    """The matter version a running case started with. Versions never change once stored, so
    each is looked up once per process (every case view and action needs one)."""
    key = (case.matter_code, case.matter_version)
    matter = _versions.get(key)
    if matter is None:
        matter = matters.matter_version(session, case.matter_code, case.matter_version)
        if len(_versions) > 1024:
            _versions.clear()
        _versions[key] = matter
    return matter


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


_validators_by_object: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def form_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """Compiled once per schema, not per request; found by the schema object (a loaded matter
    keeps its own) so that the schema's text, the compiled one's key, is made only once per object."""
    entry = _validators_by_object.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_validators_by_object) >= 512:  # schema objects made per call would pile up
            _validators_by_object.clear()
        entry = _validators_by_object[id(schema)] = (schema, _validator(json.dumps(schema, sort_keys=True)))
    return entry[1]


def form_errors(schema: dict[str, Any], form: dict[str, Any], *, prefix: str = "form") -> list[dict[str, str]]:
    errors = sorted(form_validator(schema).iter_errors(form), key=lambda e: list(e.path))
    return [_field_error(prefix + "".join(f".{part}" for part in error.path) if error.path else prefix,
                         error.validator, error.message) for error in errors]


def _validate_form(schema: dict[str, Any], form: dict[str, Any], *, prefix: str = "form") -> None:
    errors = form_errors(schema, form, prefix=prefix)
    if errors:
        raise InvalidInput("表单内容不符合要求", detail=errors)


# ---------------------------------------------------------------- submit

class Submitted(NamedTuple):
    case: Case
    replayed: bool  # an earlier submission with the same Idempotency-Key, answered again
    details: repository.CaseDetails | None  # what its view needs, when known without reading it back


def submit_case(session: Session, *, principal: Principal, body: dict[str, Any],
                idempotency_key: str | None) -> Submitted:
    """Validate, route and store a new application.

    With an Idempotency-Key, a request answered before is answered again with its case. The key's
    record is looked for only when this request fails: a repeated request does (its files are
    attached by then, its consent used, and at the latest its key's record breaks the unique
    constraint, after waiting for the first request's commit), so a first submission — nearly
    every one — costs no read for it."""
    fingerprint = request_fingerprint(body) if idempotency_key else None
    try:
        return _submit_new(session, principal=principal, body=body, idempotency_key=idempotency_key,
                           fingerprint=fingerprint)
    except (OnestopError, IntegrityError):
        if not idempotency_key:
            raise
        session.rollback()  # whatever the failure left: the look-up must be able to run
        record = repository.find_idempotency_record(session, principal=principal.key, key=idempotency_key)
        if record is None:
            raise
    if record.request_sha256 != fingerprint:
        raise IdempotencyKeyReused()
    return Submitted(session.get(Case, record.case_id), True, None)


def _submit_new(session: Session, *, principal: Principal, body: dict[str, Any], idempotency_key: str | None,
                fingerprint: str | None) -> Submitted:
    helper = principal.kind == "staff" and bool(principal.roles) and principal.roles[0] == "helper"
    if principal.kind != "citizen" and not helper:
        raise Forbidden("窗口收件申请尚未开放", code="channel_not_supported")
    if principal.kind == "citizen" and principal.subject_id is None:
        raise RealNameRequired()
    matter = current_matter(session, body["matter_code"])
    definition = matter.definition
    applicant = body["applicant"]
    number = _applicant_number(applicant, subject_kind=definition.subject_kind)
    if helper:
        _require_helpers_village(principal, region_code=body["region_code"])
        known = find_subject(session, number=number)
    else:
        _require_self(principal=principal, applicant=applicant, number=number)
        # applying as themself, a citizen is the subject their account is bound to: no read
        person = applicant["kind"] == "person"
        known = _own_subject(principal, number) if person else find_subject(session, number=number)
    _validate_form(definition.form_schema, body.get("form") or {})

    def idempotency_record(case: Case) -> list[IdempotencyRecord]:
        return [new_row(IdempotencyRecord, principal=principal.key, key=idempotency_key,
                        request_sha256=fingerprint, case_id=case.id)] if idempotency_key else []

    # A citizen's own application, for a subject already known and citing no certificate, writes
    # its case's rows only: on a statement session one statement. Anything more (a new subject, a
    # helper's consent used, a certificate's use logged) takes a transaction.
    alone = known is not None and not helper and not _cites_certificates(body)
    with (nullcontext(session) if alone else transaction(session)) as writing:
        subject = known or create_subject(writing, number=number, name=applicant["name"].strip())
        # the files are checked by the write itself (unused_own_files): no read before it
        material_rows = _check_materials(writing, principal=principal, matter=matter, read_files=False,
                                         materials=body.get("materials") or [], holder_subject_id=subject.id)
        consent = None
        if helper:  # 帮办代办: the applicant's consent for this helper and matter, consumed here
            consent = require_consent(writing, helper=principal, applicant_subject=subject,
                                      matter_code=definition.code, consent_id=body.get("consent_id"))
        try:
            case, routing, submitted = _create_case(writing, principal=principal, matter=matter, subject=subject,
                                                    region_code=body["region_code"], form=body.get("form") or {},
                                                    material_rows=material_rows,
                                                    receiving_point_id=principal.service_point_id if helper else None,
                                                    also_inserting=idempotency_record, check_files=True)
        except IntegrityError as error:
            if not _is_idempotency_key_taken(error):
                raise
            # the same key submitted concurrently: this record waited for the other request to
            # commit, then broke the unique constraint (submit_case answers with the other's case)
            raise Conflict("相同幂等键的请求正在处理，请稍后重试", code="idempotency_in_progress") from error
        if consent is not None:
            use_consent(writing, consent=consent, case_id=case.id)
    # An online application's view is known from what was just written; a helper's names a
    # receiving point, which case_views reads.
    details = None if helper else _details_of_new_case(case, subject=subject, routing=routing,
                                                       material_rows=material_rows, events=[submitted])
    return Submitted(case, False, details)


def _cites_certificates(body: dict[str, Any]) -> bool:
    return any(isinstance(item, dict) and item.get("certificate_id") for item in body.get("materials") or [])


def _details_of_new_case(case: Case, *, subject: Subject, routing: RoutingDecision, material_rows: list,
                         events: list[CaseEvent]) -> repository.CaseDetails:
    """The details a read of a case created in this transaction would give (get_case_for_view)."""
    details = repository.CaseDetails()
    details.extras[case.id] = SimpleNamespace(
        subject_kind=subject.kind, subject_name=subject.name, subject_number_masked=subject.number_masked,
        assignee_name=routing.assignee.display_name if routing.assignee else None,
        handling_point_name=routing.handling_point.name, handling_point_level=routing.handling_point.level,
        receiving_point_name=None, receiving_point_level=None)
    details.materials[case.id] = [{"code": code, "file_id": file_record.id if file_record else None,
                                   "certificate_id": certificate.id if certificate else None}
                                  for code, file_record, certificate in material_rows]
    details.events[case.id] = events
    return details


def create_case(session: Session, *, principal: Principal, matter: Matter, subject: Subject, region_code: str,
                form: dict[str, Any], material_rows: list, bundle_case_id: str | None = None,
                receiving_point_id: int | None = None) -> Case:
    """Route and store one validated application with its materials and its first event. A
    receiving point means a helper's station took it in (帮办代办); none, the applicant's own
    online application."""
    return _create_case(session, principal=principal, matter=matter, subject=subject, region_code=region_code,
                        form=form, material_rows=material_rows, bundle_case_id=bundle_case_id,
                        receiving_point_id=receiving_point_id)[0]


def _create_case(session: Session, *, principal: Principal, matter: Matter, subject: Subject, region_code: str,
                 form: dict[str, Any], material_rows: list, bundle_case_id: str | None = None,
                 receiving_point_id: int | None = None,
                 also_inserting: Callable[[Case], list[SQLModel]] = lambda case: [],
                 check_files: bool = False) -> tuple[Case, RoutingDecision, CaseEvent]:
    """create_case, also returning the routing decision and the first event. `also_inserting`:
    records to write with the case (given the new case), in the same round trip. `check_files`:
    the write stores the case only if its files are the caller's to attach (unused_own_files),
    else raises FileNotFound (in a transaction, to be rolled back) — the check that makes two
    submissions citing one upload at once safe. A bundle's children share their uploads, so
    create_case does not check them: submit_bundle locks them once for all its children."""
    definition = matter.definition
    decision = route(session, handle_level=definition.handle_level, region_code=region_code,
                     category=definition.category, anywhere_in_county=definition.anywhere_in_county,
                     receiving_point_id=receiving_point_id, receive_levels=definition.receive_levels)
    now = utcnow()
    county = region_code[:6]
    today = today_in_china()
    sequence = take_value(session, name=f"case:{county}:{today:%Y%m%d}")
    case = new_row(
        Case, id=str(uuid.uuid4()), number=f"{county}{today:%Y%m%d}{sequence:06d}",
        matter_code=definition.code, matter_version=definition.version, state=matter.lifecycle.initial,
        subject_id=subject.id, subject_hash=subject.number_hash, applicant_name=subject.name,
        region_code=region_code, receiving_channel="helper" if receiving_point_id else "online",
        receiving_point_id=receiving_point_id,
        handling_point_id=decision.handling_point.id,
        assignee_id=decision.assignee.id if decision.assignee else None, routing_reason=decision.reason,
        form=form, created_by="helper" if receiving_point_id else "self", created_by_principal=principal.key,
        submitted_at=now, updated_at=now, bundle_case_id=bundle_case_id,
    )
    submitted = _new_event(case=case, action="submit", from_state=None, to_state=case.state, principal=principal,
                           comment=None, payload={"routing_reason": decision.reason}, previous=None)
    files = _files_of(material_rows)
    # the case, its materials, its first event, what the caller adds (a submission's idempotency
    # record) and the files it keeps: one round trip on PostgreSQL
    if not insert_now(session, case, *_material_records(case, material_rows), submitted, *also_inserting(case),
                      persistent=[case], then=[attaching(files, case_id=case.id)] if files else [],
                      guard=unused_own_files(files, principal=principal) if check_files and files else None):
        raise unattachable(session, principal=principal, files=files)
    _record_citations(session, case=case, material_rows=material_rows)
    return case, decision, submitted


def _material_records(case: Case, material_rows: list) -> list[CaseMaterial]:
    return [new_row(CaseMaterial, case_id=case.id, code=code, file_id=file_record.id if file_record else None,
                    certificate_id=certificate.id if certificate else None)
            for code, file_record, certificate in material_rows]


def _files_of(material_rows: list) -> list:
    return [file_record for _, file_record, _ in material_rows if file_record is not None]


def _attach_materials(session: Session, *, principal: Principal, case: Case, material_rows: list) -> None:
    """What a stored case's materials change elsewhere: its uploaded files are kept, and a cited
    certificate (免证办) is a use its holder sees in the certificate's log."""
    attach_to_case(session, _files_of(material_rows), case_id=case.id, principal=principal)
    _record_citations(session, case=case, material_rows=material_rows)


def _record_citations(session: Session, *, case: Case, material_rows: list) -> None:
    """A cited certificate's use, in its log: who cited it (the applicant, or the helper filing
    for them), for which case."""
    from services.certificates.service import record_usage

    cited_by = session.info.get("onestop.cases.cited_by", {})
    material_names = None
    for code, _, certificate in material_rows:
        if certificate is None:
            continue
        if material_names is None:
            definition = matter_of(session, case).definition
            material_names = {material.code: material.name for material in definition.materials}
            matter_name = definition.name
        purpose = (f"免证办：申请「{matter_name}」（办件编号 {case.number}）时引用，"
                   f"代替提交「{material_names.get(code, code)}」")
        actor = cited_by.get(certificate.id)
        if actor is not None:
            record_usage(session, certificate_id=certificate.id, actor=actor, case_id=case.id, purpose=purpose)
        else:  # rows not checked in this session: the case's filer cited it
            filer = case.created_by_principal
            record_usage(session, certificate_id=certificate.id, actor=filer, case_id=case.id, purpose=purpose,
                         actor_kind="staff" if filer.startswith("staff:") else "holder",
                         actor_name="" if filer.startswith("staff:") else case.applicant_name)


def _applicant_number(applicant: dict[str, Any], *, subject_kind: str):
    kind = applicant.get("kind")
    if subject_kind != "either" and kind != subject_kind:
        raise InvalidInput("该事项不接受此类申请人", detail=[_field_error("applicant.kind", "not_allowed_for_matter")])
    if kind == "person":
        return parse_subject_number(applicant["id_number"], subject_kind="person")
    return parse_subject_number(applicant["credit_code"], subject_kind="organization")


def _require_helpers_village(principal: Principal, *, region_code: str) -> None:
    """A helper applies only for people of the villages their station serves."""
    if not principal.jurisdiction_code or not region_code.startswith(subtree_prefix(principal.jurisdiction_code)):
        raise InvalidInput("帮办代办员只能为本服务站所辖村（社区）的群众代办",
                           detail=[_field_error("region_code", "outside_jurisdiction")])


def _own_subject(principal: Principal, number) -> SubjectRef:
    """The subject a verified citizen's account is bound to, as their Principal carries it: the
    applicant of their own application (`_require_self` has checked the number is theirs)."""
    return SubjectRef(id=principal.subject_id, kind="person", name=principal.name,
                      number_hash=principal.subject_hash, number_masked=number.masked)


def _require_self(*, principal: Principal, applicant: dict[str, Any], number) -> None:
    """A citizen applies for themself, or for an organisation as its legal representative."""
    if applicant["kind"] == "person":
        own_number = number
    else:
        representative = applicant.get("legal_representative") or {}
        if not representative.get("id_number"):
            raise ApplicantNotSelf()
        own_number = parse_subject_number(representative["id_number"], subject_kind="person")
    if get_protector().keyed_hash(own_number.value) != principal.subject_hash:
        raise ApplicantNotSelf()


def _check_materials(session: Session, *, principal: Principal, matter: Matter, materials: list[dict[str, Any]],
                     require_all: bool = True, prefix: str = "materials", declared_materials=None,
                     holder_subject_id: int | None = None, read_files: bool = True):
    """[(code, file, certificate)] for the materials given, or 422 listing every problem.
    `declared_materials`: what may be given, if not the matter's own list (a bundle's);
    `holder_subject_id`: whose e-certificates may be cited (default: the caller's own). A cited
    certificate must be the holder's, of the type the material names, and valid today; otherwise
    the problem's reason says why (not_found, wrong_type, not_valid, expired). `read_files`: an
    uploaded file is checked to be the caller's, unused, now (FileNotFound); without, it is left
    to the write that attaches it (unused_own_files)."""
    from services.certificates.service import CertificateNotUsable, usable_certificate

    holder = holder_subject_id if holder_subject_id is not None else principal.subject_id
    declared = {material.code: material for material in
                (declared_materials if declared_materials is not None else matter.definition.materials)}
    rows = []
    seen = set()
    problems = []
    file_ids = [item["file_id"] for item in materials if isinstance(item, dict) and isinstance(item.get("file_id"), str)]
    files = (own_unattached_files(session, principal=principal, file_ids=file_ids) if read_files
             else {file_id: Upload(file_id) for file_id in file_ids})
    for index, item in enumerate(materials):
        code = item.get("code")
        where = f"{prefix}[{index}]"
        if code not in declared:
            problems.append(_field_error(f"{where}.code", "unknown_material"))
            continue
        if code in seen:
            problems.append(_field_error(f"{where}.code", "duplicate"))
            continue
        seen.add(code)
        if item.get("file_id"):
            file_record = files.get(item["file_id"]) if isinstance(item["file_id"], str) else None
            if file_record is None:
                raise FileNotFound(detail={"file_id": item["file_id"]})
            rows.append((code, file_record, None))
        elif item.get("certificate_id"):
            # 免证办: checked against the registry now (the applicant's, the material's type, valid today)
            if not isinstance(item["certificate_id"], str):
                problems.append(_field_error(f"{where}.certificate_id", "not_a_string"))
                continue
            try:
                certificate = usable_certificate(session, certificate_id=item["certificate_id"],
                                                 cert_type=declared[code].certificate_type, holder_subject_id=holder)
            except CertificateNotUsable as error:
                problems.append(_field_error(f"{where}.certificate_id", error.reason, error.message))
                continue
            # who cited it, for the holder's usage log written when the material is attached
            session.info.setdefault("onestop.cases.cited_by", {})[certificate.id] = principal
            rows.append((code, None, certificate))
        else:
            problems.append(_field_error(where, "file_id_or_certificate_id_required"))
    if require_all:
        for code, material in declared.items():
            if material.required and code not in seen:
                problems.append(_field_error(prefix, "missing_required", f"缺少必交材料：{material.name}（{code}）"))
    if problems:
        raise InvalidInput("申请材料不完整或不正确", detail=problems, code="invalid_materials")
    return rows


# ---------------------------------------------------------------- history

EVENT_SEQ_CONSTRAINT = "uq_case_events_case_id_seq"  # one event per (case, seq): two appends race on it


IDEMPOTENCY_KEY_CONSTRAINT = "uq_idempotency_records_principal_key"  # one case per (account, key)


def _is_idempotency_key_taken(error: IntegrityError) -> bool:
    constraint = _constraint_of(error)
    if constraint is not None:
        return constraint == IDEMPOTENCY_KEY_CONSTRAINT
    return "idempotency_records.principal" in str(error.orig)  # SQLite's message names the columns


def _constraint_of(error: IntegrityError) -> str | None:
    """The constraint PostgreSQL names in the error (SQLite names none)."""
    return getattr(getattr(error.orig, "diag", None), "constraint_name", None)


def _event_hash(prev_hash: str, event: CaseEvent) -> str:
    body = json.dumps({
        "case_id": event.case_id, "seq": event.seq, "action": event.action, "from": event.from_state,
        "to": event.to_state, "actor": event.actor, "comment": event.comment, "payload": event.payload,
        "at": event.created_at.astimezone(timezone.utc).isoformat(timespec="microseconds"),
    }, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _append_event(session: Session, *, case: Case, action: str, from_state: str | None, to_state: str,
                  principal: Principal | None, comment: str | None, payload: dict[str, Any],
                  head: tuple[int, str] | None = None) -> CaseEvent:
    """`head`: the (seq, hash) of the newest event when the caller read it with the case at the
    version it has just moved on from (else it is read here)."""
    previous = head or repository.last_event(session, case_id=case.id)
    event = _new_event(case=case, action=action, from_state=from_state, to_state=to_state, principal=principal,
                       comment=comment, payload=payload, previous=previous)
    insert_now(session, event)  # append-only: nothing changes it later
    return event


def _new_event(*, case: Case, action: str, from_state: str | None, to_state: str, principal: Principal | None,
               comment: str | None, payload: dict[str, Any], previous: tuple[int, str] | None) -> CaseEvent:
    """The case's next event, chained to `previous` (seq, hash), or its first when None."""
    event = new_row(CaseEvent, case_id=case.id, seq=(previous[0] + 1) if previous else 1, action=action,
                    from_state=from_state, to_state=to_state, actor=principal.key if principal else "system",
                    actor_name=principal.name if principal else "", comment=comment, payload=payload,
                    created_at=utcnow(), prev_hash=previous[1] if previous else GENESIS_HASH, hash="")
    event.hash = _event_hash(event.prev_hash, event)
    return event


def chain_problems(events: list[CaseEvent]) -> list[dict[str, Any]]:
    """What is wrong with a case's history, event by event: a gap or reordering in `seq`, a
    `prev_hash` that doesn't link, a `hash` that doesn't recompute (an edited row). [] if intact."""
    problems = []
    previous_hash = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            problems.append({"seq": event.seq, "problem": "sequence", "expected_seq": expected_seq})
        if event.prev_hash != previous_hash:
            problems.append({"seq": event.seq, "problem": "link"})
        if _event_hash(event.prev_hash, event) != event.hash:
            problems.append({"seq": event.seq, "problem": "hash"})
        previous_hash = event.hash
    return problems


def verify_chain(events: list[CaseEvent]) -> bool:
    """Whether a case's history is intact: consecutive, each hash recomputes, each links."""
    return not chain_problems(events)


# ---------------------------------------------------------------- actions

def _roles_for_case(principal: Principal, case: Case) -> frozenset[str]:
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


def _decide(matter: Matter, case: Case, *, action: str, actor: Actor, request: dict[str, Any]) -> Decision:
    """The engine's decision (`@previous` resolved from the state the case was suspended in)."""
    try:
        return decide(matter.lifecycle, state=case.state, action=action, actor=actor, request=request,
                      previous_state=case.previous_state)
    except InvalidPreviousState:  # no remembered state to go back to: the data is broken, not the request
        raise ActionNotAllowed(detail={"state": case.state, "action": action, "reason": "no_previous_state"})


class Acted(NamedTuple):
    case: Any  # a plain record of the case's row as the action left it
    details: repository.CaseDetails | None  # what its view needs, when known without reading it back


def act(session: Session, *, principal: Principal, case_id: str, action: str, version: int,
        comment: str | None, payload: dict[str, Any] | None) -> Acted:
    """Take one action on a case. Checks in the API's order: 404, 403, 422, 409 stale, 409 state;
    then the rules that depend on the case (guards, extension limits, assignment)."""
    # The case with everything its answer's view needs, in one statement: a guarded action checks
    # the materials in it, and the answer is built from it and the new event, not read back. The
    # case is a plain record of its row, not an ORM object: the write below is a version-checked
    # UPDATE of its own, and loading the ORM object cost more than the statement.
    found = repository.get_visible_case_for_view(session, case_id=case_id, principal=principal)
    if found is None:
        raise CaseNotFound()
    row, details = found
    case = SimpleNamespace(**row._asdict())
    details.extras[case.id] = row
    events = details.events[case.id]
    head = (events[-1].seq, events[-1].hash) if events else None
    matter = matter_of(session, case)
    actor = Actor(roles=_roles_for_case(principal, case))
    payload = dict(payload or {})
    state_error = None
    try:
        decision = _decide(matter, case, action=action, actor=actor, request={**payload, "comment": comment})
    except UnknownAction:
        raise InvalidInput("未知的操作", detail=[_field_error("action", "unknown")], code="unknown_action")
    except RoleNotAllowed as error:
        raise ActionForbidden(detail={"action": action, "allowed_roles": list(error.roles)})
    except MissingNeeds as error:
        raise InvalidInput("该操作需要填写：" + "、".join(error.missing),
                           detail=[_field_error(need if need == "comment" else f"payload.{need}",
                                                "invalid" if need in error.invalid else "required")
                                   for need in error.missing])
    except ActionNotAvailable:
        decision = None
        state_error = ActionNotAllowed(detail={"state": case.state, "action": action})
    rules = ACTION_RULES.get(action, NO_PAYLOAD)
    prepared = rules.validate(session, principal=principal, case=case, matter=matter, comment=comment,
                              payload=payload)
    if version != case.version:
        raise StaleVersion(detail={"current_version": case.version})
    if state_error is not None:
        raise state_error
    if action in GUARDED_ACTIONS:
        failed = guard_failures(session, case=case, matter=matter,
                                present={material["code"] for material in details.materials[case.id]})
        if failed:
            raise ActionNotAllowed("办件材料或表单不完整，请先一次性告知补正",
                                   detail={"state": case.state, "action": action, "guards": failed})

    to_state = decision.to_state
    now = utcnow()
    working_days = get_calendar(session)
    today = today_in_china()
    # Most actions change the case row alone (with its event and jobs): on a statement session
    # that is one statement (write_guarded). Changes to other rows take a transaction.
    with (nullcontext(session) if _writes_the_case_alone(rules, case) else transaction(session)) as writing:
        values: dict[str, Any] = {"state": to_state, "updated_at": now}
        changes, event_payload = rules.apply(writing, principal=principal, case=case, matter=matter, comment=comment,
                                             prepared=prepared, calendar=working_days, today=today)
        values.update(changes)
        values.update(_clock_changes(case, matter=matter, sla=decision.sla, to_state=to_state,
                                     calendar=working_days, today=today, now=now, payload=payload))
        event = _new_event(case=case, action=action, from_state=decision.from_state, to_state=to_state,
                           principal=principal, comment=comment, payload=event_payload, previous=head)
        jobs = [OutboxJob(kind=effect, payload={"case_id": case.id}, dedupe_key=f"{effect}:{case.id}")
                for effect in decision.effects]
        notice = notice_of_action(case_id=case.id, action=action, to_state=to_state, seq=event.seq)
        jobs += [notice] if notice is not None else []
        # the change, its history event and its effects: one round trip on PostgreSQL
        try:
            changed = write_guarded(writing, repository.version_checked_update(
                case_id=case.id, expected_version=version, values=values),
                *inserting(event), *([adding_jobs(writing, jobs)] if jobs else []))
        except IntegrityError as error:
            if _constraint_of(error) != EVENT_SEQ_CONSTRAINT:
                raise
            changed = False  # another action appended this seq first: it moved the case on
        if not changed:  # nothing of this action stays (rolled back, or never written)
            raise StaleVersion()
        for name, value in {**values, "version": version + 1}.items():
            setattr(case, name, value)
        if case.bundle_case_id:
            child_changed(writing, case=case)
        writing.flush()
    if rules.changes_view_details:  # materials, assignee or points: the view is read after the action
        return Acted(case, None)
    events.append(event)
    return Acted(case, details)


def _writes_the_case_alone(rules: ActionRules, case: Case) -> bool:
    """Whether the action changes the case's own row only (plus its event and outbox jobs)."""
    return not rules.writes_other_rows and not case.bundle_case_id  # a bundle's child moves its parent


CLOCK_FIELDS = ("sla_state", "due_date", "legal_due_date", "sla_days_left", "sla_legal_days_left", "sla_paused_at",
                "extension_days", "accepted_at", "closed_at")


def _clock_changes(case: Case, *, matter: Matter, sla: str | None, to_state: str, calendar, today: date,
                   now: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    """What the action does to the SLA clock: the engine's `sla` effect, then the target state's
    clock (a 即办件 accepted straight into a decision starts and stops at once)."""
    changes: dict[str, Any] = {}

    def current() -> SimpleNamespace:  # the clock as the changes so far leave it
        return SimpleNamespace(**{name: changes.get(name, getattr(case, name)) for name in CLOCK_FIELDS})

    if sla == "start":
        definition = matter.definition
        changes.update(clock.start(calendar=calendar, today=today, now=now, promised_days=definition.promised_days,
                                   legal_days=definition.legal_days))
    elif sla == "pause":
        changes.update(clock.pause(current(), calendar=calendar, today=today, now=now))
    elif sla == "resume":
        changes.update(clock.resume(current(), calendar=calendar, today=today))
    elif sla == "extend":
        changes.update(clock.extend(current(), calendar=calendar, today=today, days=payload.get("days")))
    elif sla == "stop":
        changes.update(clock.stop(current(), calendar=calendar, today=today, now=now))
    target = matter.lifecycle.states.get(to_state)
    if target is not None and target.clock == "stopped" and current().sla_state != "stopped":
        changes.update(clock.stop(current(), calendar=calendar, today=today, now=now))
    return changes


def guard_failures(session: Session, *, case: Case, matter: Matter, present: set[str] | None = None) -> list[dict[str, str]]:
    """Why the application can't be accepted or decided as it stands: required materials
    missing, or the form no longer valid against the matter's schema. [] if none. `present`: the
    codes of the case's materials, when the caller has read them already."""
    failures = form_errors(matter.definition.form_schema, case.form or {})
    if case.created_by == "helper":  # a signed paper consent must have been checked by a clerk
        failures += consent_guard_failures(session, case_id=case.id)
    if present is None:
        present = repository.material_codes(session, case_id=case.id)
    for material in matter.definition.materials:
        if material.required and material.code not in present:
            failures.append(_field_error("materials", "missing_required", f"缺少必交材料：{material.name}（{material.code}）"))
    return failures


# ---------------------------------------------------------------- rules of particular actions

class ActionRules:
    """Checks of an action's payload (422, before the version and state checks) and its changes
    to the case beyond the state (after them)."""

    changes_view_details = False  # whether apply changes the details act() read (materials, assignee, points)
    # whether apply writes rows other than the case's: then act() runs it in a transaction.
    # Without it, apply may read through its session but must not write through it.
    writes_other_rows = False

    def validate(self, session: Session, *, principal: Principal, case: Case, matter: Matter, comment: str | None,
                 payload: dict[str, Any]) -> Any:
        _only_keys(payload, set())  # an action without rules of its own takes no payload
        return None

    def apply(self, session: Session, *, principal: Principal, case: Case, matter: Matter, comment: str | None,
              prepared: Any, calendar, today: date) -> tuple[dict[str, Any], dict[str, Any]]:
        """(column changes, the event's payload)."""
        return {}, prepared if isinstance(prepared, dict) else {}


def _only_keys(payload: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise InvalidInput("操作参数中有未知字段", detail=[_field_error(f"payload.{key}", "unknown") for key in unknown])


def _positive_int(payload: dict[str, Any], key: str, *, maximum: int) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(f"{key} 必须是 1 到 {maximum} 之间的整数（工作日）",
                           detail=[_field_error(f"payload.{key}", "out_of_range")])
    return value


class RequestCorrection(ActionRules):
    """一次性告知: the complete list of what is missing or wrong, each item naming a material or
    a form field of the matter (or neither, for anything else) and the problem."""

    def validate(self, session, *, principal, case, matter, comment, payload):
        _only_keys(payload, {"items"})
        items = payload.get("items")
        if not isinstance(items, list) or not items or len(items) > 50:
            raise InvalidInput("补正告知必须列出全部问题（1 至 50 项）", detail=[_field_error("payload.items", "required")])
        materials = {m.code for m in matter.definition.materials}
        fields = set((matter.definition.form_schema.get("properties") or {}).keys())
        problems, clean = [], []
        for index, item in enumerate(items):
            where = f"payload.items[{index}]"
            if not isinstance(item, dict):
                problems.append(_field_error(where, "object_expected"))
                continue
            extra = set(item) - {"material_code", "field", "problem"}
            if extra:
                problems.extend(_field_error(f"{where}.{key}", "unknown") for key in sorted(extra))
            problem = item.get("problem")
            if not isinstance(problem, str) or not problem.strip() or len(problem) > 500:
                problems.append(_field_error(f"{where}.problem", "required"))
            if "material_code" in item and item["material_code"] not in materials:
                problems.append(_field_error(f"{where}.material_code", "unknown_material"))
            if "field" in item and (not isinstance(item["field"], str) or (fields and item["field"] not in fields)):
                problems.append(_field_error(f"{where}.field", "unknown_field"))
            if "material_code" in item and "field" in item:
                problems.append(_field_error(where, "material_code_or_field"))
            clean.append({key: (value.strip() if isinstance(value, str) else value) for key, value in item.items()})
        if problems:
            raise InvalidInput("补正告知内容不正确", detail=problems)
        return {"items": clean}

    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        return {"correction_items": prepared["items"]}, prepared


class Supplement(ActionRules):
    """The applicant answers a correction request: new files or certificates for some materials
    (each replacing that material), a corrected form (replacing the form), or both."""

    changes_view_details = True  # the materials
    writes_other_rows = True

    def validate(self, session, *, principal, case, matter, comment, payload):
        _only_keys(payload, {"materials", "form"})
        materials = payload.get("materials") or []
        if not isinstance(materials, list) or any(not isinstance(item, dict) for item in materials):
            raise InvalidInput("补正材料格式不正确", detail=[_field_error("payload.materials", "list_of_objects")])
        form = payload.get("form")
        if form is not None:
            if not isinstance(form, dict):
                raise InvalidInput("表单格式不正确", detail=[_field_error("payload.form", "object_expected")])
            _validate_form(matter.definition.form_schema, form, prefix="payload.form")
        if case.state != "correcting" or principal.kind != "citizen":
            rows = []  # the state check (409) or the role check answers; don't look at files
        else:
            rows = _check_materials(session, principal=principal, matter=matter, materials=materials,
                                    require_all=False, prefix="payload.materials")
        return {"rows": rows, "form": form}

    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        rows, form = prepared["rows"], prepared["form"]
        if rows:
            repository.remove_materials(session, case_id=case.id, codes=[code for code, _, _ in rows])
            insert_now(session, *_material_records(case, rows))
            _attach_materials(session, principal=principal, case=case, material_rows=rows)
        changes: dict[str, Any] = {}
        summary: dict[str, Any] = {"materials": [code for code, _, _ in rows]}
        if form is not None:
            changes["form"] = form
            summary["form_fields"] = sorted(key for key in set(form) | set(case.form or {})
                                            if form.get(key) != (case.form or {}).get(key))
        return changes, summary


class Suspend(ActionRules):
    def validate(self, session, *, principal, case, matter, comment, payload):
        _only_keys(payload, {"max_days", "procedure"})
        max_days = _positive_int(payload, "max_days", maximum=get_sla_settings().max_suspend_days)
        procedure = payload.get("procedure")
        if procedure is not None and (not isinstance(procedure, str) or len(procedure) > 40):
            raise InvalidInput("特别程序名称不正确", detail=[_field_error("payload.procedure", "invalid")])
        return {"max_days": max_days, **({"procedure": procedure} if procedure else {})}

    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        until = calendar.add_working_days(today, prepared["max_days"])
        return ({"previous_state": case.state, "suspend_until": until},
                {**prepared, "suspend_until": until.isoformat()})


class Resume(ActionRules):
    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        return {"previous_state": None, "suspend_until": None}, {}


class Extend(ActionRules):
    def validate(self, session, *, principal, case, matter, comment, payload):
        _only_keys(payload, {"days"})
        return {"days": _positive_int(payload, "days", maximum=365)}

    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        return {}, prepared  # the clock's `extend` effect moves the deadline (or refuses: 422)


class Deliver(ActionRules):
    def validate(self, session, *, principal, case, matter, comment, payload):
        _only_keys(payload, {"method", "tracking_number", "address"})
        method = payload.get("method")
        if method not in DELIVERY_METHODS:
            raise InvalidInput("送达方式必须是窗口领取、邮寄或网上送达",
                               detail=[_field_error("payload.method", "one_of:" + ",".join(DELIVERY_METHODS))])
        for key in ("tracking_number", "address"):
            if key in payload and (not isinstance(payload[key], str) or not 1 <= len(payload[key]) <= 200):
                raise InvalidInput("送达信息不正确", detail=[_field_error(f"payload.{key}", "invalid")])
        if method == "mail" and not payload.get("tracking_number"):
            raise InvalidInput("邮寄送达需要填写运单号", detail=[_field_error("payload.tracking_number", "required")])
        return {**payload, "method_label": DELIVERY_METHODS[method]}

    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        return {"delivery_method": prepared["method"]}, prepared


class Claim(ActionRules):
    changes_view_details = True  # the assignee

    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        if case.assignee_id is not None and case.assignee_id != principal.account_id:
            raise AlreadyAssigned(detail={"assignee_id": case.assignee_id})
        if not _window_handles(session, principal=principal, category=matter.definition.category):
            raise CategoryNotHandled(detail={"category": matter.definition.category})
        return {"assignee_id": principal.account_id}, {}


def _window_handles(session: Session, *, principal: Principal, category: str | None) -> bool:
    """Whether the clerk's window takes this category of matter, as routing requires of the clerks
    it assigns to (services.points.repository.clerk_loads): a clerk without a window takes all."""
    staff = session.get(Staff, principal.account_id)
    window = session.get(ServiceWindow, staff.window_id) if staff is not None and staff.window_id else None
    return window is None or window.handles(category)


class Transfer(ActionRules):
    """A supervisor moves the case to another point of their jurisdiction and/or another clerk,
    with a reason; the routing reason records it."""

    changes_view_details = True  # the handling point and assignee

    def validate(self, session, *, principal, case, matter, comment, payload):
        _only_keys(payload, {"to_point_id", "to_staff_id"})
        if not comment or not comment.strip():
            raise InvalidInput("转办需要填写理由", detail=[_field_error("comment", "required")])
        point_id, staff_id = payload.get("to_point_id"), payload.get("to_staff_id")
        if point_id is None and staff_id is None:
            raise InvalidInput("请指定转办的服务点或工作人员", detail=[_field_error("payload.to_point_id", "required")])
        for key, value in (("to_point_id", point_id), ("to_staff_id", staff_id)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 1 <= value <= MAX_ID):
                raise InvalidInput("转办对象不正确", detail=[_field_error(f"payload.{key}", "integer_expected")])
        staff = session.get(Staff, staff_id) if staff_id is not None else None
        if staff_id is not None and (staff is None or not staff.active or staff.status != "on_duty"
                                     or staff.role not in ("clerk", "reviewer")):
            raise InvalidInput("转办对象不是在岗的窗口或审查人员", detail=[_field_error("payload.to_staff_id", "unknown")])
        point_id = point_id if point_id is not None else (staff.service_point_id if staff else case.handling_point_id)
        point = session.get(ServicePoint, point_id)
        jurisdiction = principal.jurisdiction_code or ""
        if point is None or not point.active or not point.region_code.startswith(subtree_prefix(jurisdiction)):
            raise InvalidInput("转办的服务点不在您的管辖范围内", detail=[_field_error("payload.to_point_id", "outside_jurisdiction")])
        if staff is not None and staff.service_point_id != point.id:
            raise InvalidInput("该工作人员不属于所选服务点", detail=[_field_error("payload.to_staff_id", "not_at_point")])
        return {"point": point, "staff": staff}

    def apply(self, session, *, principal, case, matter, comment, prepared, calendar, today):
        point, staff = prepared["point"], prepared["staff"]
        if staff is None and point.routing_mode == "assign":
            loads = clerk_loads(session, service_point_id=point.id, category=matter.definition.category)
            staff = loads[0][0] if loads else None
        target = f"{point.name}" + (f" {staff.display_name}" if staff else "（待认领队列）")
        reason = f"{case.routing_reason}；{principal.name or principal.key} 转办至 {target}：{comment.strip()}"
        return ({"handling_point_id": point.id, "assignee_id": staff.id if staff else None, "routing_reason": reason},
                {"to_point_id": point.id, "to_staff_id": staff.id if staff else None,
                 "from_point_id": case.handling_point_id, "from_staff_id": case.assignee_id})


NO_PAYLOAD = ActionRules()
ACTION_RULES: dict[str, ActionRules] = {
    "request_correction": RequestCorrection(), "supplement": Supplement(), "suspend": Suspend(),
    "resume": Resume(), "extend": Extend(), "deliver": Deliver(), "claim": Claim(), "transfer": Transfer(),
}


def _still_possible(case: Case, action: str, principal: Principal) -> bool:
    """What the engine can't know: a case-dependent rule that would refuse the action now."""
    if action == "claim":
        return case.assignee_id is None and principal.kind == "staff" and principal.roles[0] == "clerk"
    if action == "extend":
        return case.extension_days == 0 and case.sla_state in ("running", "paused") and case.legal_due_date is not None
    if action == "resume":
        return case.previous_state is not None
    return True


def available_actions_for(session: Session, *, principal: Principal, case_id: str) -> list[dict[str, Any]]:
    """Exactly what this caller may do with the case now: role and jurisdiction, state, and the
    guards (materials and form for decisions, the clock for extensions, assignment for claims)."""
    case = _load_case(session, principal=principal, case_id=case_id)
    matter = matter_of(session, case)
    actor = Actor(roles=_roles_for_case(principal, case))
    candidates = [(name, definition) for name, definition in
                  available_actions(matter.lifecycle, state=case.state, actor=actor)
                  if _still_possible(case, name, principal)]
    if any(name == "claim" for name, _ in candidates) and not _window_handles(
            session, principal=principal, category=matter.definition.category):
        candidates = [(name, definition) for name, definition in candidates if name != "claim"]
    if any(name in GUARDED_ACTIONS for name, _ in candidates) and guard_failures(session, case=case, matter=matter):
        candidates = [(name, definition) for name, definition in candidates if name not in GUARDED_ACTIONS]
    return [{"action": name, "label": definition.label, "needs": list(definition.needs)}
            for name, definition in candidates]


# ---------------------------------------------------------------- reading

def _local_iso(moment: datetime | None) -> str | None:
    return moment.astimezone(CHINA).isoformat() if moment else None


def sla_view(case: Case, *, working_days: WorkingDayCalendar | None = None, today: date | None = None) -> dict[str, Any]:
    view = clock.view(case, calendar=working_days or calendar, today=today or today_in_china())
    if case.state == "suspended" and case.suspend_until:
        view["suspend_until"] = case.suspend_until.isoformat()
    return view


def _point(point_id: int | None, name: str | None, level: str | None) -> dict[str, Any] | None:
    return {"id": point_id, "name": name, "level": level} if point_id is not None else None


def case_views(session: Session, rows: list[tuple[Any, Any]], *, details: repository.CaseDetails,
               principal: Principal | None = None, with_history: bool = False) -> list[dict[str, Any]]:
    """The API's case shape (applicant numbers masked) for cases (Case objects or plain rows of
    its columns) with their view extras (None: they are in `details`) and their details."""
    if not rows:
        return []
    working_days = get_calendar(session)
    today = today_in_china()
    staff_view = principal is None or principal.kind == "staff"
    views = []
    for case, extras in rows:
        extras = extras if extras is not None else details.extras[case.id]
        matter = matter_of(session, case)
        state = matter.lifecycle.states.get(case.state)
        view = {
            "id": case.id, "number": case.number, "matter_code": case.matter_code,
            "matter_name": matter.definition.name, "matter_version": case.matter_version, "state": case.state,
            "state_label": state.label if state else case.state,
            "national_status": state.national_status if state else None, "version": case.version,
            "applicant": {"kind": extras.subject_kind, "name": extras.subject_name,
                          "number_masked": extras.subject_number_masked},
            "region_code": case.region_code,
            "receiving_point": (_point(case.receiving_point_id, extras.receiving_point_name, extras.receiving_point_level)
                                or {"id": None, "name": "网上申请", "level": None}),
            "handling_point": _point(case.handling_point_id, extras.handling_point_name, extras.handling_point_level),
            "assignee": {"id": case.assignee_id, "name": extras.assignee_name} if case.assignee_id else None,
            "routing_reason": case.routing_reason, "submitted_at": _local_iso(case.submitted_at),
            "accepted_at": _local_iso(case.accepted_at), "closed_at": _local_iso(case.closed_at),
            "due_date": case.due_date.isoformat() if case.due_date else None,
            "sla": sla_view(case, working_days=working_days, today=today),
            "form": case.form, "materials": details.materials.get(case.id, []),
            "certificate_ids": details.certificates.get(case.id, []),
            "created_by": case.created_by, "bundle_case_id": case.bundle_case_id,
            "correction": ({"items": case.correction_items, "open": case.state == "correcting"}
                           if case.correction_items else None),
            "delivery_method": case.delivery_method,
        }
        if staff_view:
            view["sla"]["flag"] = case.sla_flag
            view["sla"]["escalation_level"] = case.escalation_level
        if with_history:
            view["history"] = [
                {"seq": e.seq, "action": e.action, "from_state": e.from_state, "to_state": e.to_state,
                 "actor": e.actor, "actor_name": e.actor_name, "comment": e.comment, "payload": e.payload,
                 "at": _local_iso(e.created_at), "hash": e.hash}
                for e in details.events.get(case.id, [])]
        views.append(view)
    # 免证办: a cited certificate is shown as the registry has it now, not as it was when cited
    annotate_cited_materials(session, [material for view in views for material in view["materials"]])
    return views


def case_view(session: Session, case: Case, *, principal: Principal | None = None,
              details: repository.CaseDetails | None = None) -> dict[str, Any]:
    """One case in the API's shape with its history, right after a write: built from `details`
    when the write knows them, else read (in one statement) as the write left it."""
    if details is None:
        row, details = repository.get_case_for_view(session, case_id=case.id)
        return case_views(session, [(row, row)], principal=principal, with_history=True, details=details)[0]
    return case_views(session, [(case, None)], principal=principal, with_history=True, details=details)[0]


def get_case(session: Session, *, principal: Principal, case_id: str) -> Case:
    return _load_case(session, principal=principal, case_id=case_id)


def get_case_view(session: Session, *, principal: Principal, case_id: str) -> dict[str, Any]:
    """`GET /cases/{id}`: the case with its history, or 404 for anyone not entitled to it."""
    found = repository.get_visible_case_for_view(session, case_id=case_id, principal=principal)
    if found is None:
        raise CaseNotFound()
    row, details = found
    return case_views(session, [(row, row)], principal=principal, with_history=True, details=details)[0]


SORTS = ("newest", "deadline")
SLA_FLAGS = ("due_soon", "overdue")


def _decode_case_cursor(cursor: str, *, sort: str) -> tuple:
    try:
        key = decode_cursor(cursor)
        if sort == "deadline":
            due, moment, case_id = key
            return date.fromisoformat(due), datetime.fromisoformat(moment), str(case_id)
        moment, case_id = key
        return datetime.fromisoformat(moment), str(case_id)
    except (ValueError, TypeError) as error:
        raise InvalidInput("分页游标无效", detail=[_field_error("cursor", "invalid")]) from error


def _cursor_of(row: Any, *, sort: str) -> str:
    key = [row.submitted_at.astimezone(timezone.utc).isoformat(), row.id]
    if sort == "deadline":
        key.insert(0, (row.due_date or repository.NO_DEADLINE).isoformat())
    return encode_cursor(key)


def list_cases(session: Session, *, principal: Principal, state: str | None = None, cursor: str | None = None,
               matter_code: str | None = None, sla: str | None = None, sort: str | None = None) -> dict[str, Any]:
    """The caller's cases, a page at a time. Staff see their queue by deadline (cases still in
    progress: waiting for acceptance first, then the nearest deadline) unless they ask for `sort=newest`; citizens and helpers see
    the newest first. `sla` narrows to due-soon or overdue cases, `state` to one state (then
    finished cases are included), `matter_code` to one matter."""
    staff_queue = principal.kind == "staff" and "helper" not in principal.roles
    sort = sort or ("deadline" if staff_queue else "newest")
    if sort not in SORTS:
        raise InvalidInput("排序方式不正确", detail=[_field_error("sort", "one_of:" + ",".join(SORTS))])
    if sla is not None and sla not in SLA_FLAGS:
        raise InvalidInput("时限筛选不正确", detail=[_field_error("sla", "one_of:" + ",".join(SLA_FLAGS))])
    filters = repository.CaseFilters(state=state, matter_code=matter_code, sla_flag=sla,
                                     unfinished=sort == "deadline")
    after = _decode_case_cursor(cursor, sort=sort) if cursor else None
    rows = repository.list_visible_cases(session, principal=principal, filters=filters, sort=sort, after=after,
                                         limit=PAGE_SIZE + 1)
    page = rows[:PAGE_SIZE]
    return {"items": case_views(session, page, principal=principal,
                                details=repository.details_of(row for row, _ in page)),
            "next_cursor": _cursor_of(page[-1][0], sort=sort) if len(rows) > PAGE_SIZE else None}
