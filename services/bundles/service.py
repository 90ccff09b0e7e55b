"""一件事一次办: one submission with one combined form and one set of materials creates a parent
case and one child case per matter, each routed to its own handling point."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services.accounts.principal import Principal
from services.bundles.definitions import BundleDefinition, default_bundles
from services.bundles.models import BundleCase
from services.cases import repository as case_repository
from services.cases import service as cases
from services.cases.models import Case, IdempotencyRecord
from services.db import records, utcnow, write_guarded
from services.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.files.service import unattachable, unused_own_files
from services.matters.service import MatterNotFound, UnknownMatter
from services.sequences.repository import take_value
from services.subjects.repository import get_or_create_subject

STATE_LABELS = {"in_progress": "办理中", "completed": "已全部办结", "failed": "未能全部办成", "withdrawn": "已撤回"}


class BundleNotFound(NotFound):
    code = "bundle_not_found"
    message = "一件事不存在"


class BundleCaseNotFound(NotFound):
    code = "bundle_case_not_found"
    message = "一件事办件不存在"


class BundleUnavailable(InvalidInput):
    code = "bundle_unavailable"
    message = "该一件事包含的事项暂未上线"


def get_bundle(code: str) -> BundleDefinition:
    definition = default_bundles().get(code)
    if definition is None:
        raise BundleNotFound(detail={"bundle_code": code})
    return definition


def _matters(session: Session, definition: BundleDefinition) -> tuple[dict[str, Any], list[str]]:
    found, missing = {}, []
    for item in definition.matters:
        try:
            found[item.matter_code] = cases.current_matter(session, item.matter_code)
        except (UnknownMatter, MatterNotFound):  # not in the catalogue (yet)
            missing.append(item.matter_code)
    return found, missing


def bundle_view(session: Session, definition: BundleDefinition) -> dict[str, Any]:
    matters, missing = _matters(session, definition)
    return {"code": definition.code, "name": definition.name, "version": definition.version,
            "description": definition.description, "subject_kind": definition.subject_kind,
            "form_schema": definition.form_schema,
            "materials": [{"code": m.code, "name": m.name, "required": m.required, "certificate_type": m.certificate_type}
                          for m in definition.materials],
            "matters": [{"code": code, "name": matter.definition.name, "handle_level": matter.definition.handle_level,
                         "promise_kind": matter.definition.promise_kind, "promised_days": matter.definition.promised_days}
                        for code, matter in matters.items()],
            "available": not missing, "missing_matters": missing}


def list_bundles(session: Session) -> dict[str, Any]:
    return {"items": [bundle_view(session, definition) for _, definition in sorted(default_bundles().items())],
            "next_cursor": None}


def _with_defaults(schema: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    defaults = {key: spec["default"] for key, spec in (schema.get("properties") or {}).items()
                if isinstance(spec, dict) and "default" in spec and key not in form}
    return {**form, **defaults}


def submit_bundle(session: Session, *, principal: Principal, code: str, body: dict[str, Any],
                  idempotency_key: str | None) -> tuple[BundleCase, bool]:
    """Validate everything first (nothing is written on a 4xx), then the parent and the children."""
    definition = get_bundle(code)
    fingerprint = cases.request_fingerprint({"bundle": code, **body})
    key = f"bundle:{idempotency_key}" if idempotency_key else None
    if key:
        record = case_repository.find_idempotency_record(session, principal=principal.key, key=key)
        if record is not None:
            if record.request_sha256 != fingerprint:
                raise cases.IdempotencyKeyReused()
            return session.get(BundleCase, session.get(Case, record.case_id).bundle_case_id), True
    if principal.kind != "citizen":
        raise Forbidden("一件事申请目前只能由申请人本人在线提交", code="channel_not_supported")
    if principal.subject_id is None:
        raise cases.RealNameRequired()
    matters, missing = _matters(session, definition)
    if missing:
        raise BundleUnavailable(detail={"missing_matters": missing})
    applicant = body["applicant"]
    number = cases._applicant_number(applicant, subject_kind=definition.subject_kind)
    cases._require_self(principal=principal, applicant=applicant, number=number)
    form = _with_defaults(definition.form_schema, body.get("form") or {})
    cases._validate_form(definition.form_schema, form)
    given = cases._check_materials(session, principal=principal, matter=None, materials=body.get("materials") or [],
                                   declared_materials=definition.materials)
    by_code = {code: (file_record, certificate) for code, file_record, certificate in given}

    plans, problems = [], []
    for item in definition.matters:
        matter = matters[item.matter_code]
        child_form = {target: form[source] for target, source in item.form.items() if source in form}
        problems += cases.form_errors(matter.definition.form_schema, child_form, prefix=f"matters.{item.matter_code}.form")
        rows, pending = [], []
        for target, source in item.materials.items():
            if source.startswith("@"):
                pending.append(target)
            elif source in by_code:
                rows.append((target, *by_code[source]))
        present = {row[0] for row in rows} | set(pending)
        for material in matter.definition.materials:
            if material.required and material.code not in present:
                problems.append(cases._field_error(f"matters.{item.matter_code}.materials", "missing_required",
                                                   f"缺少必交材料：{material.name}（{material.code}）"))
        plans.append((matter, child_form, rows))
    if problems:
        raise InvalidInput("一件事申请内容不完整或不正确", detail=problems)

    # The uploads stay the caller's and unused until this transaction commits (the children share
    # them, so each child's write does not check them again): a submission citing one of them at
    # the same moment waits for the bundle, then finds it used — and the other way round.
    uploads = [file_record for _, file_record, _ in given if file_record is not None]
    if uploads and not write_guarded(session, unused_own_files(uploads, principal=principal)):
        raise unattachable(session, principal=principal, files=uploads)
    subject = get_or_create_subject(session, number=number, name=applicant["name"].strip())
    now = utcnow()
    county, today = body["region_code"][:6], cases.today_in_china()
    sequence = take_value(session, name=f"bundle:{county}:{today:%Y%m%d}")
    parent = BundleCase(id=str(uuid.uuid4()), number=f"YJS{county}{today:%Y%m%d}{sequence:06d}", bundle_code=code,
                        bundle_version=definition.version, state="in_progress", subject_id=subject.id,
                        subject_hash=subject.number_hash, applicant_name=subject.name, region_code=body["region_code"],
                        form=form, created_by_principal=principal.key, submitted_at=now, updated_at=now)
    session.add(parent)
    session.flush()
    children = [cases.create_case(session, principal=principal, matter=matter, subject=subject,
                                  region_code=body["region_code"], form=child_form, material_rows=rows,
                                  bundle_case_id=parent.id)
                for matter, child_form, rows in plans]
    if key:
        session.add(IdempotencyRecord(principal=principal.key, key=key, request_sha256=fingerprint,
                                      case_id=children[0].id))
        try:
            session.flush()
        except IntegrityError as error:
            raise Conflict("相同幂等键的请求正在处理，请稍后重试", code="idempotency_in_progress") from error
    return parent, False


def _owns(principal: Principal, parent: BundleCase) -> bool:
    return parent.created_by_principal == principal.key or (
        principal.kind == "citizen" and principal.subject_id is not None and parent.subject_id == principal.subject_id)


def bundle_case_view(session: Session, parent: BundleCase, *, principal: Principal) -> dict[str, Any]:
    """The parent with its children: all of them for the applicant, for staff those they may see."""
    query = case_repository.with_details_columns(case_repository.case_rows_for_view(), with_history=False).where(
        Case.bundle_case_id == parent.id)
    if not _owns(principal, parent):
        query = query.where(case_repository.visibility_filter(principal))
    rows = [(row, row) for row in records(session.execute(query.order_by(Case.submitted_at, Case.number)))]
    definition = default_bundles().get(parent.bundle_code)
    return {"id": parent.id, "number": parent.number, "bundle_code": parent.bundle_code,
            "bundle_name": definition.name if definition else parent.bundle_code,
            "bundle_version": parent.bundle_version, "state": parent.state,
            "state_label": STATE_LABELS.get(parent.state, parent.state), "outcome_reason": parent.outcome_reason,
            "version": parent.version, "applicant_name": parent.applicant_name, "region_code": parent.region_code,
            "submitted_at": cases._local_iso(parent.submitted_at), "closed_at": cases._local_iso(parent.closed_at),
            "children": cases.case_views(session, rows, principal=principal,
                                         details=case_repository.details_of(row for row, _ in rows))}


def get_bundle_case(session: Session, *, principal: Principal, bundle_case_id: str) -> BundleCase:
    parent = session.get(BundleCase, bundle_case_id)
    if parent is None:
        raise BundleCaseNotFound()
    if _owns(principal, parent):
        return parent
    visible = session.execute(select(Case.id).where(Case.bundle_case_id == parent.id,
                                                    case_repository.visibility_filter(principal)).limit(1)).first()
    if visible is None:
        raise BundleCaseNotFound()
    return parent


def list_bundle_cases(session: Session, *, principal: Principal, limit: int = 50) -> dict[str, Any]:
    """The applicant's bundle applications, newest first."""
    own = BundleCase.created_by_principal == principal.key
    if principal.kind == "citizen" and principal.subject_id is not None:
        own = or_(own, BundleCase.subject_id == principal.subject_id)
    parents = session.execute(select(BundleCase).where(own).order_by(BundleCase.submitted_at.desc())
                              .limit(limit)).scalars().all()
    return {"items": [bundle_case_view(session, parent, principal=principal) for parent in parents], "next_cursor": None}
