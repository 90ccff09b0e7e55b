"""The e-certificate registry: issue (exactly once per case and type), read, status lifecycle,
expiry, usage log, third-party grants and 免证办 (citing a certificate instead of a paper copy).

Status lifecycle (有效 / 暂扣 / 撤销 / 注销 / 失效 / 吊销):

    valid ⇄ suspended            staff of the issuing department (supervisor, admin), with a reason
    valid | suspended → annulled | cancelled | revoked    the same, terminal
    valid | suspended → expired  the expiry job, when the validity has ended (terminal)

Every change is recorded (from, to, who, when, why) and invalidates the cached public status
after the transaction commits. A certificate's status lives in the registry only: changing it
never touches a signature, so no other certificate is affected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import uuid
from typing import Any

from sqlalchemy import bindparam, event, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from services.accounts.principal import Principal
from services.cases import repository as case_repository
from services.cases.models import Case, CaseMaterial
from services.certificates.identifiers import build_identifier
from services.certificates.models import (STATUS_LABELS, Certificate, CertificateGrant, CertificatePublicCheck,
                                          CertificateStatusEvent, CertificateUsage)
from services.certificates.settings import get_certificate_settings
from services.certificates.types import HOLDER_CODE_TYPE_NAMES, find_certificate_type, load_certificate_types
from services.db import utcnow
from services.errors import Conflict, Forbidden, InvalidInput, NotFound, OnestopError
from services.files.storage import get_storage
from services.outbox.models import OutboxJob
from services.pagination import decode_cursor, encode_cursor
from services.points.models import ServicePoint
from services.sequences.repository import next_value
from services.subjects.identity_numbers import InvalidSubjectNumber, parse_subject_number, redact_numbers
from services.subjects.models import Subject
from services.subjects.protection import get_protector
from services.sla.calendar import CHINA

log = logging.getLogger("onestop.certificates")

PAGE_SIZE = 20

TERMINAL = frozenset({"annulled", "cancelled", "expired", "revoked"})
STAFF_TARGETS = frozenset({"valid", "suspended", "annulled", "cancelled", "revoked"})
TRANSITIONS = {
    "valid": frozenset({"suspended", "annulled", "cancelled", "revoked", "expired"}),
    "suspended": frozenset({"valid", "annulled", "cancelled", "revoked", "expired"}),
}
STATUS_MANAGERS = frozenset({"supervisor", "admin"})
USAGE_KINDS = {"holder": "持证人", "staff": "工作人员", "third_party": "授权第三方", "public": "公众核验"}


def today_in_china() -> dt.date:
    return dt.datetime.now(CHINA).date()


def parse_any_number(raw: str):
    """A citizen ID number (or permit) or a unified social credit code; InvalidSubjectNumber
    with the reason for the kind the input looks like."""
    try:
        return parse_subject_number(raw, subject_kind="person")
    except InvalidSubjectNumber as person_error:
        try:
            return parse_subject_number(raw, subject_kind="organization")
        except InvalidSubjectNumber as organisation_error:
            text = str(raw or "").strip().upper()
            looks_organisational = any(char.isalpha() and char != "X" for char in text)
            raise (organisation_error if looks_organisational else person_error) from None


# ---------------------------------------------------------------------------------------------
# Errors


class CertificateNotFound(NotFound):
    code = "certificate_not_found"
    message = "电子证照不存在"


class CertificateNotUsable(InvalidInput):
    """A certificate cited for a case that cannot stand in for the material. `reason`:
    not_found, not_holder, wrong_type, not_valid, expired."""

    code = "certificate_not_usable"
    message = "该电子证照不能用于本次申请"

    def __init__(self, reason: str, message: str | None = None, *, detail: Any = None):
        super().__init__(message, detail=detail if detail is not None else {"reason": reason})
        self.reason = reason


class StatusTransitionNotAllowed(Conflict):
    code = "status_transition_not_allowed"
    message = "证照当前状态下不能变更为该状态"


class StatusChangeForbidden(Forbidden):
    code = "certificate_status_forbidden"
    message = "只有发证部门的负责人或管理员可以变更证照状态"


class HolderOnly(Forbidden):
    code = "certificate_holder_only"
    message = "只有持证人可以执行该操作"


class GrantNotFound(NotFound):
    code = "grant_not_found"
    message = "授权不存在"


class GrantGone(OnestopError):
    status_code = 410
    code = "grant_expired"
    message = "该授权已过期或已被持证人撤回"


class CertificateNotValid(Conflict):
    code = "certificate_not_valid"
    message = "证照当前不是有效状态"


# ---------------------------------------------------------------------------------------------
# After commit / rollback: public status cache, orphaned PDFs

_INVALIDATE_KEY = "onestop.certificates.invalidate"


def _invalidate_after_commit(session: Session, identifier: str) -> None:
    session.info.setdefault(_INVALIDATE_KEY, set()).add(identifier)


@event.listens_for(OrmSession, "after_commit")
def _after_commit(session) -> None:
    identifiers = session.info.pop(_INVALIDATE_KEY, None)
    if identifiers:
        from services.certificates import cache

        cache.invalidate_status(identifiers)


@event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session) -> None:
    session.info.pop(_INVALIDATE_KEY, None)


# ---------------------------------------------------------------------------------------------
# Issuing


def _gender(number_value: str) -> str:
    if len(number_value) == 18 and number_value[16].isdigit():
        return "男" if int(number_value[16]) % 2 else "女"
    return ""


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳小明 -> 欧***."""
    name = name.strip()
    if len(name) <= 1:
        return "*" if name else ""
    return name[0] + "*" * (len(name) - 1)


def _matter_of(session: Session, case: Case):
    from services.matters import service as matters

    versioned = getattr(matters, "matter_version", None)
    if versioned is not None:
        try:
            return versioned(session, case.matter_code, case.matter_version)
        except NotFound:
            pass
    return matters.get_matter(case.matter_code)


def storage_key_for(*, case_id: str, cert_type: str, pdf_sha256: str) -> str:
    """Content-addressed: a retry or a racing worker can never overwrite the registered file."""
    return f"certificates/{case_id[:2]}/{case_id}/{cert_type}-{pdf_sha256[:16]}.pdf"


def issue_for_case(session: Session, *, case_id: str) -> Certificate | None:
    """Render, sign, store and register the case's certificate. Exactly once per case and type:
    the case row is locked first, so a racing worker waits and then finds the first one's row;
    a retry after a crash finds it too (or, if the crash came before the commit, issues it
    afresh: the earlier attempt left at most an unreferenced PDF, see `orphaned_pdfs`)."""
    case = session.exec(select(Case).where(Case.id == case_id).with_for_update()).first()
    if case is None:
        return None
    matter = _matter_of(session, case)
    type_slug = matter.definition.certificate_type
    if type_slug is None:
        return None
    existing = session.exec(select(Certificate).where(Certificate.case_id == case.id,
                                                      Certificate.cert_type == type_slug)).first()
    if existing is not None:
        return existing
    cert_type = load_certificate_types()[type_slug]
    subject = session.get(Subject, case.subject_id)
    point = session.get(ServicePoint, case.handling_point_id)
    issued = today_in_china()
    serial_number = next_value(session, name=f"certificate:{cert_type.type_code}:{cert_type.issuer_code}")
    serial = f"{issued:%Y}{serial_number:08d}"
    identifier = build_identifier(type_code=cert_type.type_code, issuer_code=cert_type.issuer_code,
                                  serial=serial, version=1)
    number_value = get_protector().decrypt(subject.number_encrypted)
    organisation = subject.kind == "organization"
    applicant = {"name": subject.name, "number_masked": subject.number_masked}
    if organisation:
        applicant["credit_code"] = number_value  # public, not personal data (shown in full)
    else:
        applicant["gender"] = _gender(number_value)
    context = {
        "applicant": applicant,
        "form": case.form,
        "case": {"number": case.number},
        "handling_point": {"name": point.name if point else ""},
        "operator": {"name": _last_staff_actor(session, case_id=case.id)},
    }
    holder_shown = number_value if organisation else subject.number_masked
    until = cert_type.valid_until(issued)
    # imported here: WeasyPrint and pyHanko belong to the worker; an API process that only reads
    # the registry keeps ~60,000 fewer objects for every full garbage collection to walk
    from services.certificates.pipeline import produce_certificate_pdf

    produced = produce_certificate_pdf(cert_type=cert_type, identifier=identifier, context=context,
                                       holder_masked=holder_shown, issued_at=issued, valid_until=until)
    certificate_id = str(uuid.uuid4())
    key = storage_key_for(case_id=case.id, cert_type=type_slug, pdf_sha256=produced.sha256)
    storage = get_storage()
    storage.put(key, produced.pdf)
    try:
        certificate = Certificate(
            id=certificate_id, identifier=identifier, cert_type=type_slug, type_code=cert_type.type_code,
            type_name=cert_type.name, case_id=case.id, holder_subject_id=subject.id,
            holder_hash=subject.number_hash, holder_masked=holder_shown if organisation else subject.number_masked,
            issuer_name=cert_type.issuer_name, issuer_code=cert_type.issuer_code, serial=serial,
            valid_from=issued, valid_until=until, storage_key=key, pdf_sha256=produced.sha256,
            content_sha256=produced.content_sha256, fields=[[label, value] for label, value in produced.fields],
            number=produced.number, holder_code_type=cert_type.holder_code_type,
            holder_name_masked=subject.name if organisation else mask_name(subject.name),
            jurisdiction_code=cert_type.jurisdiction_code, signer_fingerprint=produced.signer_fingerprint,
            status_changed_at=utcnow(),
        )
        session.add(certificate)
        session.add(CertificateStatusEvent(certificate_id=certificate_id, from_status=None, to_status="valid",
                                           reason="签发", actor="system", actor_name=cert_type.issuer_name))
        session.flush()
    except BaseException:
        storage.delete(key)  # nothing references it
        raise
    if until is not None:
        ensure_expiry_job(session, day=issued)
    log.info("certificate issued", extra={"certificate_id": certificate_id, "cert_type": type_slug})
    return certificate


def _last_staff_actor(session: Session, *, case_id: str) -> str:
    for event_ in reversed(case_repository.history(session, case_id=case_id)):
        if event_.actor.startswith("staff:"):
            return event_.actor_name
    return ""


def orphaned_pdfs() -> list[str]:
    """Storage keys of certificate PDFs no registry row points at (an attempt that crashed
    between storing the PDF and committing). Filesystem storage only; harmless, never served."""
    from services.config import get_settings
    from services.db import get_engine

    root = get_settings().storage_dir
    folder = root / "certificates"
    if not folder.is_dir():
        return []
    on_disk = {str(path.relative_to(root)) for path in folder.rglob("*.pdf")}
    with Session(get_engine()) as session:
        registered = set(session.exec(select(Certificate.storage_key).where(Certificate.storage_key.in_(on_disk))))
    return sorted(on_disk - registered)


# ---------------------------------------------------------------------------------------------
# Expiry


def _next_china_midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0, 5), tzinfo=CHINA).astimezone(dt.timezone.utc)


def ensure_expiry_job(session: Session, *, day: dt.date) -> None:
    """Make sure the expiry job runs after the coming midnight (Asia/Shanghai): one outbox job
    per day (dedupe key), added in a savepoint so a concurrent insert does not fail the caller."""
    dedupe_key = f"expire_certificates:{day + dt.timedelta(days=1):%Y-%m-%d}"
    if session.exec(select(OutboxJob.id).where(OutboxJob.dedupe_key == dedupe_key)).first() is not None:
        return
    try:
        with session.begin_nested():
            session.add(OutboxJob(kind="expire_certificates", payload={}, dedupe_key=dedupe_key,
                                  run_after=_next_china_midnight_utc(day)))
    except IntegrityError:
        pass


def run_expiry(session: Session, today: dt.date | None = None) -> int:
    """Mark every valid or suspended certificate whose validity ended before `today` as
    expired (失效), with its history entry. Returns how many changed. Idempotent."""
    today = today or today_in_china()
    due = list(session.exec(
        select(Certificate).where(Certificate.status.in_(("valid", "suspended")),
                                  Certificate.valid_until.is_not(None), Certificate.valid_until < today)
        .order_by(Certificate.valid_until).with_for_update()
    ))
    now = utcnow()
    for certificate in due:
        _record_transition(session, certificate=certificate, to_status="expired",
                           reason=f"有效期已于{certificate.valid_until:%Y年%m月%d日}届满", actor="system",
                           actor_name="证照有效期检查", now=now)
    session.flush()
    return len(due)


# ---------------------------------------------------------------------------------------------
# Reading


def effective_status(certificate: Certificate, *, today: dt.date | None = None) -> str:
    """The status a verifier must see: a certificate past its validity is expired even before
    the nightly job has marked it."""
    today = today or today_in_china()
    if (certificate.status in ("valid", "suspended") and certificate.valid_until is not None
            and certificate.valid_until < today):
        return "expired"
    return certificate.status


def _is_holder(session: Session, *, principal: Principal, certificate: Certificate) -> bool:
    """The holder, or (for an organisation's certificate) the person who applied for it."""
    if principal.kind != "citizen":
        return False
    if principal.subject_id is not None and certificate.holder_subject_id == principal.subject_id:
        return True
    case = session.get(Case, certificate.case_id)
    return case is not None and case.created_by_principal == principal.key


def _visible(session: Session, *, principal: Principal, certificate: Certificate) -> bool:
    """The holder; staff who can see the case that issued it, or a case that cites it as a
    material (免证办: the clerk handling that case checks it against the registry)."""
    if principal.kind == "citizen":
        return _is_holder(session, principal=principal, certificate=certificate)
    if case_repository.get_visible_case(session, case_id=certificate.case_id, principal=principal) is not None:
        return True
    citing = session.exec(select(CaseMaterial.case_id).where(CaseMaterial.certificate_id == certificate.id)
                          .distinct().limit(50)).all()
    return any(case_repository.get_visible_case(session, case_id=case_id, principal=principal) is not None
               for case_id in citing)


def get_certificate(session: Session, *, principal: Principal, certificate_id: str) -> Certificate:
    """A certificate the caller may see (holder, or staff who can see its case); else 404."""
    certificate = session.get(Certificate, certificate_id)
    if certificate is None or not _visible(session, principal=principal, certificate=certificate):
        raise CertificateNotFound()
    return certificate


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(CHINA).isoformat() if moment else None


def certificate_view(certificate: Certificate) -> dict[str, Any]:
    """The list/detail shape of API.md (`id, identifier, type_code, type_name, status, issued_at,
    valid_until, case_id`) and more."""
    status = effective_status(certificate)
    return {
        "id": certificate.id, "identifier": certificate.identifier, "type_code": certificate.type_code,
        "type_name": certificate.type_name, "cert_type": certificate.cert_type, "number": certificate.number,
        "status": status, "status_label": STATUS_LABELS.get(status, status),
        "issued_at": _iso(certificate.issued_at),
        "valid_from": certificate.valid_from.isoformat(),
        "valid_until": certificate.valid_until.isoformat() if certificate.valid_until else None,
        "case_id": certificate.case_id, "issuer_name": certificate.issuer_name,
        "issuer_code": certificate.issuer_code, "holder_masked": certificate.holder_masked,
        "pdf_sha256": certificate.pdf_sha256,
    }


def metadata_view(certificate: Certificate, *, holder_name: str) -> dict[str, Any]:
    """The GB/T 36903 metadata of a certificate (names as the standard uses them)."""
    cert_type = find_certificate_type(certificate.cert_type)
    return {
        "certificate_name": cert_type.certificate_name if cert_type else certificate.type_name,  # 证照名称
        "type_name": certificate.type_name,  # 证照类型名称
        "type_code": certificate.type_code,  # 证照类型代码
        "number": certificate.number or certificate.serial,  # 证照编号
        "identifier": certificate.identifier,  # 证照标识
        "issuer_name": certificate.issuer_name,  # 证照颁发机构
        "issuer_code": certificate.issuer_code,  # 证照颁发机构代码
        "issued_on": certificate.valid_from.isoformat(),  # 证照颁发日期
        "holder_name": holder_name,  # 持证主体
        "holder_code": certificate.holder_masked,  # 持证主体代码 (masked for persons)
        "holder_code_type": certificate.holder_code_type,  # 持证主体代码类型
        "holder_code_type_name": HOLDER_CODE_TYPE_NAMES.get(certificate.holder_code_type, ""),
        "valid_from": certificate.valid_from.isoformat(),  # 有效期起始
        "valid_until": certificate.valid_until.isoformat() if certificate.valid_until else None,  # 有效期截止
        "jurisdiction_code": certificate.jurisdiction_code,  # 颁发机构所属行政区划代码
    }


def status_history(session: Session, *, certificate_id: str) -> list[dict[str, Any]]:
    rows = session.exec(select(CertificateStatusEvent).where(CertificateStatusEvent.certificate_id == certificate_id)
                        .order_by(CertificateStatusEvent.id))
    return [{"from_status": row.from_status, "to_status": row.to_status,
             "to_status_label": STATUS_LABELS.get(row.to_status, row.to_status), "reason": row.reason,
             "actor": row.actor, "actor_name": row.actor_name, "at": _iso(row.created_at)} for row in rows]


def certificate_detail(session: Session, *, principal: Principal, certificate_id: str) -> dict[str, Any]:
    """GET /certificates/{id}: the view, the metadata, the status history (and, for the holder,
    the active grants)."""
    certificate = get_certificate(session, principal=principal, certificate_id=certificate_id)
    subject = session.get(Subject, certificate.holder_subject_id)
    holder = _is_holder(session, principal=principal, certificate=certificate)
    detail = certificate_view(certificate)
    detail["metadata"] = metadata_view(certificate, holder_name=subject.name if subject else "")
    detail["fields"] = [{"label": label, "value": value} for label, value in certificate.fields]
    detail["status_reason"] = certificate.status_reason
    detail["status_changed_at"] = _iso(certificate.status_changed_at)
    detail["status_history"] = status_history(session, certificate_id=certificate.id)
    detail["is_holder"] = holder
    if holder:
        detail["grants"] = [grant_view(grant) for grant in _grants(session, certificate_id=certificate.id)
                            if grant_state(grant) == "active"]
    return detail


def certificate_pdf(session: Session, *, principal: Principal, certificate_id: str) -> bytes:
    """The signed PDF. A staff member's download is a use the holder can see."""
    certificate = get_certificate(session, principal=principal, certificate_id=certificate_id)
    if principal.kind == "staff":
        record_usage(session, certificate_id=certificate.id, actor=principal, purpose="工作人员查看证照文件",
                     case_id=certificate.case_id)
    return get_storage().get(certificate.storage_key)


def list_certificates(session: Session, *, principal: Principal, status: str | None = None,
                      cursor: str | None = None) -> dict[str, Any]:
    """The caller's certificates, newest first (a citizen: as holder, or as the applicant for an
    organisation); cursor-paginated."""
    if principal.kind != "citizen":
        return {"items": [], "next_cursor": None}
    mine = Certificate.case_id.in_(select(Case.id).where(Case.created_by_principal == principal.key))
    if principal.subject_id is not None:
        mine = or_(Certificate.holder_subject_id == principal.subject_id, mine)
    query = select(Certificate).where(mine)
    if status:
        query = query.where(Certificate.status == status)
    if cursor:
        try:
            moment, last_id = decode_cursor(cursor)
            before = dt.datetime.fromisoformat(moment)
        except (ValueError, TypeError) as error:
            raise InvalidInput("分页游标无效", detail=[{"field": "cursor", "reason": "invalid"}]) from error
        query = query.where(or_(Certificate.issued_at < before,
                                (Certificate.issued_at == before) & (Certificate.id < str(last_id))))
    rows = list(session.exec(query.order_by(Certificate.issued_at.desc(), Certificate.id.desc()).limit(PAGE_SIZE + 1)))
    page = rows[:PAGE_SIZE]
    next_cursor = (encode_cursor([page[-1].issued_at.astimezone(dt.timezone.utc).isoformat(), page[-1].id])
                   if len(rows) > PAGE_SIZE else None)
    return {"items": [certificate_view(row) for row in page], "next_cursor": next_cursor}


# ---------------------------------------------------------------------------------------------
# Status


def _record_transition(session: Session, *, certificate: Certificate, to_status: str, reason: str, actor: str,
                       actor_name: str, now: dt.datetime) -> None:
    from_status = certificate.status
    certificate.status = to_status
    certificate.status_changed_at = now
    certificate.status_reason = reason
    session.add(certificate)
    session.add(CertificateStatusEvent(certificate_id=certificate.id, from_status=from_status, to_status=to_status,
                                       reason=reason, actor=actor, actor_name=actor_name, created_at=now))
    _invalidate_after_commit(session, certificate.identifier)


def change_status(session: Session, *, principal: Principal, certificate_id: str, status: str,
                  reason: str) -> Certificate:
    """Suspend, restore, annul, cancel or revoke a certificate (staff of the issuing department:
    a supervisor or admin whose jurisdiction holds the case). Checks: 404 (not visible), 403
    (role), 422 (status or reason), 409 (transition from the current status)."""
    certificate = get_certificate(session, principal=principal, certificate_id=certificate_id)
    if principal.kind != "staff" or not (set(principal.roles) & STATUS_MANAGERS):
        raise StatusChangeForbidden()
    if status not in STAFF_TARGETS:
        raise InvalidInput("状态只能是 valid、suspended、annulled、cancelled 或 revoked（失效由有效期检查设置）",
                           detail=[{"field": "status", "reason": "not_allowed", "allowed": sorted(STAFF_TARGETS)}])
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("变更证照状态须说明理由", detail=[{"field": "reason", "reason": "required"}])
    # lock the row: two supervisors acting at once see each other's change
    certificate = session.exec(select(Certificate).where(Certificate.id == certificate.id).with_for_update()).one()
    session.refresh(certificate)
    current = effective_status(certificate)
    if current == "expired" and certificate.status != "expired":  # past validity, not yet marked
        _record_transition(session, certificate=certificate, to_status="expired", reason="有效期已届满",
                           actor="system", actor_name="证照有效期检查", now=utcnow())
    if status not in TRANSITIONS.get(certificate.status, frozenset()):
        raise StatusTransitionNotAllowed(detail={"status": certificate.status, "requested": status,
                                                 "allowed": sorted(TRANSITIONS.get(certificate.status, frozenset()) - {"expired"})})
    _record_transition(session, certificate=certificate, to_status=status, reason=reason, actor=principal.key,
                       actor_name=principal.name, now=utcnow())
    session.flush()
    log.info("certificate status changed", extra={"certificate_id": certificate.id, "status": status})
    return certificate


# ---------------------------------------------------------------------------------------------
# Usage


def record_usage(session: Session, *, certificate_id: str, actor: Principal | str, purpose: str,
                 case_id: str | None = None, actor_kind: str | None = None, actor_name: str | None = None) -> None:
    """Log one use of a certificate for its holder to see. `actor`: the principal who used it
    (its kind gives holder/staff), or a label such as "grant:<id>" with `actor_kind`."""
    if isinstance(actor, Principal):
        kind = actor_kind or ("staff" if actor.kind == "staff" else "holder")
        key, name = actor.key, actor_name if actor_name is not None else actor.name
    else:
        kind, key, name = actor_kind or "third_party", actor, actor_name or ""
    if kind not in USAGE_KINDS:
        raise ValueError(f"unknown usage kind {kind!r}")
    session.add(CertificateUsage(certificate_id=certificate_id, actor_kind=kind, actor=key[:60],
                                 actor_name=redact_numbers(name or "")[:200], purpose=redact_numbers(purpose)[:300],
                                 case_id=case_id))


def _staff_display(session: Session, principal_key: str, name: str) -> str:
    if not principal_key.startswith("staff:"):
        return name
    from services.points.models import Staff

    staff = session.get(Staff, int(principal_key.split(":", 1)[1]))
    point = session.get(ServicePoint, staff.service_point_id) if staff else None
    return f"{point.name} {name}".strip() if point else name


def usage_log(session: Session, *, principal: Principal, certificate_id: str) -> dict[str, Any]:
    """Every use of a certificate, newest first: staff, third parties, the holder's own
    citations, and anonymous public checks (status and verification). The holder, or staff who
    manage the certificate's status."""
    certificate = get_certificate(session, principal=principal, certificate_id=certificate_id)
    if not _is_holder(session, principal=principal, certificate=certificate):
        if principal.kind != "staff" or not (set(principal.roles) & STATUS_MANAGERS):
            raise HolderOnly()
    items = []
    for row in session.exec(select(CertificateUsage).where(CertificateUsage.certificate_id == certificate.id)):
        items.append({"at": row.created_at, "actor_kind": row.actor_kind,
                      "actor_kind_label": USAGE_KINDS[row.actor_kind],
                      "actor_name": _staff_display(session, row.actor, row.actor_name),
                      "purpose": row.purpose, "case_id": row.case_id})
    from services.certificates import checklog

    checklog.flush(session)  # in this transaction (SQLite has one writer): a check a moment ago is listed
    checks = session.exec(select(CertificatePublicCheck).where(CertificatePublicCheck.certificate_id == certificate.id))
    for row in checks:
        purpose = {"status": "通过证照标识查询状态", "verify": "上传文件核验真伪",
                   "shared": "通过授权链接查看"}.get(row.kind, row.kind)
        if row.kind == "shared":
            continue  # listed from the usage row the grant wrote (with the grantee's name)
        items.append({"at": row.created_at, "actor_kind": "public", "actor_kind_label": USAGE_KINDS["public"],
                      "actor_name": "匿名核验者", "purpose": purpose, "case_id": None})
    items.sort(key=lambda item: item["at"], reverse=True)
    for item in items:
        item["at"] = _iso(item["at"])
    return {"items": items, "next_cursor": None}


# ---------------------------------------------------------------------------------------------
# 免证办: citing a certificate instead of uploading a copy


def _reason_message(reason: str) -> str:
    return {"not_found": "电子证照不存在", "not_holder": "该电子证照不属于申请人", "wrong_type": "该电子证照不是本项材料要求的证照类型",
            "not_valid": "该电子证照当前不是有效状态", "expired": "该电子证照已过有效期"}.get(reason, "该电子证照不能使用")


def usable_certificate(session: Session, *, certificate_id: str, cert_type: str | None,
                       holder_subject_id: int | None = None, holder_hash: str | None = None) -> Certificate:
    """The certificate if it can stand in for a material: it exists, belongs to the holder
    (by subject id or by the keyed hash of the applicant's number), is of the type the material
    names, and is valid today. Raises CertificateNotUsable (422) with the reason."""
    certificate = session.get(Certificate, certificate_id) if certificate_id else None
    if certificate is None:
        raise CertificateNotUsable("not_found", _reason_message("not_found"))
    owner = ((holder_subject_id is not None and certificate.holder_subject_id == holder_subject_id)
             or (holder_hash is not None and certificate.holder_hash == holder_hash))
    if not owner:
        # the same answer as an unknown id: nobody learns that someone else's certificate exists
        raise CertificateNotUsable("not_found", _reason_message("not_found"))
    if cert_type is None or certificate.cert_type != cert_type:
        raise CertificateNotUsable("wrong_type", _reason_message("wrong_type"),
                                   detail={"reason": "wrong_type", "expected": cert_type,
                                           "given": certificate.cert_type})
    status = effective_status(certificate)
    if status != "valid":
        reason = "expired" if status == "expired" else "not_valid"
        raise CertificateNotUsable(reason, _reason_message(reason),
                                   detail={"reason": reason, "status": status,
                                           "status_label": STATUS_LABELS.get(status, status)})
    return certificate


def certificate_material_view(session: Session, *, certificate_id: str) -> dict[str, Any]:
    """What a clerk sees for a material satisfied by a certificate: checked against the
    registry now (status, validity), not when it was cited."""
    return certificate_material_views(session, certificate_ids=[certificate_id]).get(
        certificate_id, {"certificate_id": certificate_id, "verified": False, "status": None, "reason": "not_found"})


def search_for_case(session: Session, *, principal: Principal, holder_number: str, case_id: str,
                    type_code: str | None = None) -> dict[str, Any]:
    """POST /certificates/search: the valid certificates a holder has, for use on a case the
    caller handles (免证办). Each one found records a use in its log (who, which case, why)."""
    if principal.kind != "staff":
        raise Forbidden("仅限工作人员", code="staff_only")
    case = case_repository.get_visible_case(session, case_id=case_id, principal=principal)
    if case is None:
        from services.cases.service import CaseNotFound

        raise CaseNotFound()
    try:
        number = parse_any_number(holder_number)
    except InvalidSubjectNumber as error:
        raise InvalidInput("证件号码不正确", code="invalid_holder_number",
                           detail=[{"field": "holder_number", "reason": getattr(error, "reason", "invalid")}]) from error
    query = select(Certificate).where(Certificate.holder_hash == get_protector().keyed_hash(number.value),
                                      Certificate.status == "valid")
    if type_code:
        cert_type = find_certificate_type(type_code)
        if cert_type is None:
            raise InvalidInput("证照类型不存在", code="unknown_certificate_type",
                               detail=[{"field": "type_code", "reason": "unknown"}])
        query = query.where(Certificate.cert_type == cert_type.code)
    found = [row for row in session.exec(query.order_by(Certificate.issued_at.desc()))
             if effective_status(row) == "valid"]
    matter_name = _matter_of(session, case).definition.name
    for certificate in found:
        record_usage(session, certificate_id=certificate.id, actor=principal, case_id=case.id,
                     purpose=f"免证办：办理「{matter_name}」（办件编号 {case.number}）时调取核验")
    session.flush()
    return {"items": [{**certificate_view(row), "verified": True} for row in found], "case_id": case.id,
            "next_cursor": None}


# ---------------------------------------------------------------------------------------------
# Grants: a time-limited view for a third party


def grant_state(grant: CertificateGrant, *, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if grant.revoked_at is not None:
        return "revoked"
    if grant.expires_at <= now:
        return "expired"
    return "active"


def grant_view(grant: CertificateGrant, *, token: str | None = None) -> dict[str, Any]:
    from services.config import get_settings

    view = {"id": grant.id, "certificate_id": grant.certificate_id, "grantee": grant.grantee,
            "grantee_code": grant.grantee_code, "purpose": grant.purpose, "created_at": _iso(grant.created_at),
            "expires_at": _iso(grant.expires_at), "revoked_at": _iso(grant.revoked_at),
            "last_used_at": _iso(grant.last_used_at), "use_count": grant.use_count, "state": grant_state(grant)}
    if token is not None:
        base = get_settings().public_base_url.rstrip("/")
        view["token"] = token
        view["url"] = f"{base}/api/v1/public/shared-certificates/{token}"
    return view


def _grants(session: Session, *, certificate_id: str) -> list[CertificateGrant]:
    return list(session.exec(select(CertificateGrant).where(CertificateGrant.certificate_id == certificate_id)
                             .order_by(CertificateGrant.created_at.desc())))


def _holder_certificate(session: Session, *, principal: Principal, certificate_id: str) -> Certificate:
    certificate = get_certificate(session, principal=principal, certificate_id=certificate_id)
    if not _is_holder(session, principal=principal, certificate=certificate):
        raise HolderOnly()
    return certificate


def _token_hash(token: str) -> str:
    return hashlib.sha256(b"onestop/certificate-grant/v1\x00" + token.encode("utf-8")).hexdigest()


def _is_self(session: Session, *, certificate: Certificate, grantee: str, grantee_code: str | None) -> bool:
    subject = session.get(Subject, certificate.holder_subject_id)
    normalised = "".join(grantee.split())
    if normalised in ("本人", "自己", "持证人") or (subject is not None and normalised == "".join(subject.name.split())):
        return True
    for candidate in (grantee_code, normalised):
        if not candidate:
            continue
        try:
            number = parse_any_number(candidate)
        except InvalidSubjectNumber:
            continue
        if get_protector().keyed_hash(number.value) == certificate.holder_hash:
            return True
    return False


def create_grant(session: Session, *, principal: Principal, certificate_id: str, grantee: str, purpose: str,
                 expires_at: dt.datetime, grantee_code: str | None = None) -> dict[str, Any]:
    """Let a third party (a bank, an employer) see the certificate until `expires_at`, for the
    stated purpose. Returns the grant with its link; the token is shown this once."""
    certificate = _holder_certificate(session, principal=principal, certificate_id=certificate_id)
    problems = []
    grantee, purpose = (grantee or "").strip(), (purpose or "").strip()
    if not grantee:
        problems.append({"field": "grantee", "reason": "required"})
    if not purpose:
        problems.append({"field": "purpose", "reason": "required"})
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=CHINA)  # a local time without offset
    now = utcnow()
    max_days = get_certificate_settings().grant_max_days
    if expires_at <= now:
        problems.append({"field": "expires_at", "reason": "in_the_past", "message": "授权截止时间已过"})
    elif expires_at > now + dt.timedelta(days=max_days):
        problems.append({"field": "expires_at", "reason": "too_far", "message": f"授权期限最长 {max_days} 天"})
    if grantee_code:
        try:
            parse_subject_number(grantee_code, subject_kind="organization")
        except InvalidSubjectNumber:
            problems.append({"field": "grantee_code", "reason": "invalid_credit_code"})
    if grantee and _is_self(session, certificate=certificate, grantee=grantee, grantee_code=grantee_code):
        problems.append({"field": "grantee", "reason": "self", "message": "不能授权给持证人本人"})
    if problems:
        raise InvalidInput("授权内容不正确", code="invalid_grant", detail=problems)
    status = effective_status(certificate)
    if status != "valid":
        raise CertificateNotValid(detail={"status": status, "status_label": STATUS_LABELS.get(status, status)})
    token = secrets.token_urlsafe(32)
    # free text: an ID number typed in it (a person as the third party) is kept masked only
    grant = CertificateGrant(id=str(uuid.uuid4()), certificate_id=certificate.id,
                             grantee=redact_numbers(grantee)[:200], grantee_code=grantee_code,
                             purpose=redact_numbers(purpose)[:300], token_hash=_token_hash(token),
                             created_by=principal.key, created_at=now, expires_at=expires_at)
    session.add(grant)
    session.flush()
    return grant_view(grant, token=token)


def list_grants(session: Session, *, principal: Principal, certificate_id: str) -> dict[str, Any]:
    certificate = _holder_certificate(session, principal=principal, certificate_id=certificate_id)
    return {"items": [grant_view(grant) for grant in _grants(session, certificate_id=certificate.id)],
            "next_cursor": None}


def revoke_grant(session: Session, *, principal: Principal, certificate_id: str, grant_id: str) -> None:
    """Take a grant back (idempotent: revoking a revoked or expired grant changes nothing)."""
    certificate = _holder_certificate(session, principal=principal, certificate_id=certificate_id)
    grant = session.get(CertificateGrant, grant_id)
    if grant is None or grant.certificate_id != certificate.id:
        raise GrantNotFound()
    if grant.revoked_at is None:
        grant.revoked_at = utcnow()
        session.add(grant)
        session.flush()


def open_grant(session: Session, *, token: str) -> tuple[Certificate, CertificateGrant]:
    """The certificate a third party's link shows; each opening is a use in the holder's log.
    404 for an unknown token, 410 for an expired or revoked grant."""
    if not token or len(token) > 200:
        raise GrantNotFound()
    grant = session.exec(select(CertificateGrant).where(CertificateGrant.token_hash == _token_hash(token))).first()
    if grant is None:
        raise GrantNotFound()
    state = grant_state(grant)
    if state != "active":
        raise GrantGone(detail={"state": state})
    certificate = session.get(Certificate, grant.certificate_id)
    session.execute(update(CertificateGrant).where(CertificateGrant.id == grant.id)
                    .values(use_count=CertificateGrant.use_count + 1, last_used_at=utcnow()))
    record_usage(session, certificate_id=certificate.id, actor=f"grant:{grant.id}", actor_kind="third_party",
                 actor_name=grant.grantee, purpose=f"授权查看：{grant.purpose}")
    return certificate, grant


def shared_view(session: Session, *, token: str) -> dict[str, Any]:
    """What the third party sees: the certificate as issued (fields), its live status, and the
    terms of the grant."""
    certificate, grant = open_grant(session, token=token)
    subject = session.get(Subject, certificate.holder_subject_id)
    view = certificate_view(certificate)
    view["metadata"] = metadata_view(certificate, holder_name=subject.name if subject else "")
    view["fields"] = [{"label": label, "value": value} for label, value in certificate.fields]
    view["grant"] = {"grantee": grant.grantee, "purpose": grant.purpose, "expires_at": _iso(grant.expires_at)}
    return view


def shared_pdf(session: Session, *, token: str) -> tuple[Certificate, bytes]:
    certificate, _grant = open_grant(session, token=token)
    return certificate, get_storage().get(certificate.storage_key)


# ---------------------------------------------------------------------------------------------
# Public status (the uncached lookup; see public.py for caching, rate limits and the log)


PUBLIC_FIELDS = ("identifier", "type_code", "type_name", "status", "status_label", "issued_at", "valid_from",
                 "valid_until", "issuer_name", "issuer_code", "holder_masked", "pdf_sha256")
_PUBLIC_COLUMNS = (Certificate.id, Certificate.identifier, Certificate.type_code, Certificate.type_name,
                   Certificate.status, Certificate.issued_at, Certificate.valid_from, Certificate.valid_until,
                   Certificate.issuer_name, Certificate.issuer_code, Certificate.holder_masked,
                   Certificate.holder_name_masked, Certificate.holder_code_type, Certificate.pdf_sha256,
                   Certificate.status_changed_at)
# Built once: the same statement object each time skips SQLAlchemy's per-call construction and
# result-column adaptation (~250 µs of CPU per lookup).
_PUBLIC_STATUS_QUERY = select(*_PUBLIC_COLUMNS).where(Certificate.identifier == bindparam("identifier"))


def public_status_by_identifier(connection, *, identifier: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the public answer, certificate id), or (None, None) for an unknown identifier. No names
    of persons, a masked holder. One indexed SELECT of the columns it shows (no ORM entity: this
    runs on every cache miss of the busiest public endpoint); `connection` is a SQLAlchemy
    Connection or Session."""
    return public_answer(connection.execute(_PUBLIC_STATUS_QUERY, {"identifier": identifier}).first())


def public_status_sql(dialect) -> str:
    """The same SELECT as the driver's own SQL text (named parameter `identifier`), for callers
    that run it on a driver connection (public.py's asynchronous lookup)."""
    return str(_PUBLIC_STATUS_QUERY.compile(dialect=dialect))


def public_answer(row) -> tuple[dict[str, Any] | None, str | None]:
    """A row of `_PUBLIC_COLUMNS` (anything with those attribute names) as the public answer."""
    if row is None:
        return None, None
    today = today_in_china()
    status = row.status
    if status in ("valid", "suspended") and row.valid_until is not None and row.valid_until < today:
        status = "expired"
    return {
        "identifier": row.identifier, "type_code": row.type_code, "type_name": row.type_name, "status": status,
        "status_label": STATUS_LABELS.get(status, status), "issued_at": _iso(row.issued_at),
        "valid_from": row.valid_from.isoformat(),
        "valid_until": row.valid_until.isoformat() if row.valid_until else None,
        "issuer_name": row.issuer_name, "issuer_code": row.issuer_code, "holder_masked": row.holder_masked,
        "pdf_sha256": row.pdf_sha256, "holder_name_masked": row.holder_name_masked,
        "holder_code_type": row.holder_code_type, "status_changed_at": _iso(row.status_changed_at),
    }, row.id


def annotate_cited_materials(session: Session, materials) -> None:
    """Add to every case material that cites a certificate (免证办) what the registry says about
    it now: `verified` (valid today), `status`, `status_label`, `identifier`, `type_name`,
    `valid_until`, `checked_at`. One query for all of them (none when nothing is cited); the
    case views call it, so a clerk sees a citation checked live, not as it was when cited."""
    cited = [material for material in materials if material.get("certificate_id")]
    if not cited:
        return
    views = certificate_material_views(session, certificate_ids=[material["certificate_id"] for material in cited])
    for material in cited:
        material.update({key: value for key, value in views[material["certificate_id"]].items()
                         if key != "certificate_id"})


def certificate_material_views(session: Session, *, certificate_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`certificate_material_view` for many certificates in one query (case lists)."""
    wanted = sorted({certificate_id for certificate_id in certificate_ids if certificate_id})
    if not wanted:
        return {}
    rows = {row.id: row for row in session.exec(select(Certificate).where(Certificate.id.in_(wanted)))}
    now = _iso(utcnow())
    views = {}
    for certificate_id in wanted:
        certificate = rows.get(certificate_id)
        if certificate is None:
            views[certificate_id] = {"certificate_id": certificate_id, "verified": False, "status": None,
                                     "reason": "not_found"}
            continue
        status = effective_status(certificate)
        views[certificate_id] = {
            "certificate_id": certificate.id, "verified": status == "valid", "status": status,
            "status_label": STATUS_LABELS.get(status, status), "identifier": certificate.identifier,
            "type_name": certificate.type_name, "number": certificate.number, "issuer_name": certificate.issuer_name,
            "valid_until": certificate.valid_until.isoformat() if certificate.valid_until else None,
            "pdf_sha256": certificate.pdf_sha256, "checked_at": now}
    return views
