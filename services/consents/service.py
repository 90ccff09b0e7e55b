"""Consents to assisted applications: create, find, revoke, confirm, and the checks the case
engine calls when a helper submits (`require_consent`, `use_consent`) and before acceptance
(`paper_consent_confirmed`, `consent_guard_failures`)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.accounts.principal import Principal
from services.consents.models import Consent
from services.consents.settings import get_consent_settings
from services.db import utcnow
from services.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.files.service import get_own_unattached_file
from services.files.models import StoredFile
from services.points.models import ServicePoint, Staff
from services.subjects.identity_numbers import parse_person_number
from services.subjects.models import Subject
from services.subjects.repository import get_or_create_subject
from services.sla.calendar import CHINA

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud at a counter
CODE_LENGTH = 6


class ConsentNotFound(NotFound):
    code = "consent_not_found"
    message = "授权不存在"


class RealNameRequired(Forbidden):
    code = "real_name_required"
    message = "请先完成实名认证"


class CitizenOnly(Forbidden):
    code = "citizen_only"
    message = "仅限群众账号"


class HelperOnly(Forbidden):
    code = "helper_only"
    message = "仅限帮办代办员"


class ClerkOnly(Forbidden):
    code = "clerk_only"
    message = "仅限窗口人员或负责人"


class UnknownHelper(InvalidInput):
    code = "unknown_helper"
    message = "帮办代办员不存在或已停用"


class ConsentRequired(InvalidInput):
    code = "consent_required"
    message = "代办申请须提供申请人本人的授权（consent_id）"


class ConsentNotUsable(InvalidInput):
    code = "consent_not_usable"
    message = "授权不可用"


class TooManyConsents(Conflict):
    code = "too_many_consents"
    message = "有效授权过多，请先撤回不再需要的授权"


class ConsentNotRevocable(Conflict):
    code = "consent_not_revocable"
    message = "授权已使用、已撤回或已过期，不能撤回"


class NotAPaperConsent(Conflict):
    code = "not_a_paper_consent"
    message = "只有纸质授权书需要窗口确认"


class ConsentAlreadyDecided(Conflict):
    code = "consent_already_decided"
    message = "该纸质授权书已确认或已退回"


_REASONS = {
    "not_found": "授权不存在或不是给您的",
    "wrong_applicant": "授权人与申请人不一致",
    "wrong_matter": "授权的事项与申请的事项不一致",
    "expired": "授权已过期",
    "used": "授权已使用",
    "revoked": "授权已被撤回",
    "rejected": "纸质授权书已被退回",
}


def _not_usable(reason: str) -> ConsentNotUsable:
    return ConsentNotUsable(f"授权不可用：{_REASONS[reason]}",
                            detail=[{"field": "consent_id", "reason": reason, "message": _REASONS[reason]}])


def _role(principal: Principal) -> str:
    return principal.roles[0] if principal.roles else ""


def status_of(consent: Consent, *, now: datetime | None = None) -> str:
    """active | used | revoked | expired | rejected."""
    now = now or utcnow()
    if consent.used_at is not None:
        return "used"
    if consent.revoked_at is not None:
        return "revoked"
    if consent.confirmation == "rejected":
        return "rejected"
    if consent.expires_at <= now:
        return "expired"
    return "active"


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _matter(matter_code: str):
    from services.matters.service import require_matter

    return require_matter(matter_code)


def _active_helper(session: Session, helper_id: int) -> Staff:
    helper = session.get(Staff, helper_id)
    if helper is None or not helper.active or helper.role != "helper":
        raise UnknownHelper(detail=[{"field": "helper_id", "reason": "unknown"}])
    return helper


def _insert(session: Session, consent: Consent) -> Consent:
    """Store with a fresh counter code (drawn again on the rare collision)."""
    for _ in range(5):
        consent.code = _new_code()
        try:
            with session.begin_nested():
                session.add(consent)
            return consent
        except IntegrityError:
            continue
    raise RuntimeError("could not draw a free consent code")


def _check_active_count(session: Session, *, subject_id: int) -> None:
    now = utcnow()
    active = session.exec(select(func.count()).select_from(Consent).where(
        Consent.subject_id == subject_id, Consent.used_at.is_(None), Consent.revoked_at.is_(None),
        Consent.expires_at > now, or_(Consent.confirmation.is_(None), Consent.confirmation != "rejected"))).one()
    if active >= get_consent_settings().max_active_per_person:
        raise TooManyConsents(detail={"active": int(active)})


def create_consent(session: Session, *, principal: Principal, helper_id: int, matter_code: str) -> Consent:
    """A citizen consents that one helper applies for one matter on their behalf (once)."""
    if principal.kind != "citizen":
        raise CitizenOnly()
    if principal.subject_id is None:
        raise RealNameRequired()
    matter = _matter(matter_code)
    helper = _active_helper(session, helper_id)
    _check_active_count(session, subject_id=principal.subject_id)
    now = utcnow()
    consent = Consent(id=str(uuid.uuid4()), code="", kind="online", subject_id=principal.subject_id,
                      citizen_account_id=principal.account_id, helper_id=helper.id,
                      matter_code=matter.definition.code, created_by=principal.key, created_at=now,
                      expires_at=now + timedelta(days=get_consent_settings().valid_days))
    return _insert(session, consent)


def create_paper_consent(session: Session, *, principal: Principal, matter_code: str, applicant_name: str,
                         id_number: str, file_id: str) -> Consent:
    """A helper records the signed paper consent of a person without a phone: the scan must be
    the helper's own upload; a clerk confirms it before the case can be accepted."""
    if principal.kind != "staff" or _role(principal) != "helper":
        raise HelperOnly()
    matter = _matter(matter_code)
    number = parse_person_number(id_number)
    name = applicant_name.strip()
    if not 1 <= len(name) <= 50:
        raise InvalidInput("姓名长度应为 1–50 个字", detail=[{"field": "applicant.name", "reason": "length"}])
    scan = get_own_unattached_file(session, principal=principal, file_id=file_id)
    subject = get_or_create_subject(session, number=number, name=name)
    _check_active_count(session, subject_id=subject.id)
    now = utcnow()
    consent = Consent(id=str(uuid.uuid4()), code="", kind="paper", subject_id=subject.id, helper_id=principal.account_id,
                      matter_code=matter.definition.code, file_id=scan.id, created_by=principal.key, created_at=now,
                      expires_at=now + timedelta(days=get_consent_settings().valid_days), confirmation="pending")
    _insert(session, consent)
    scan.kept_by = f"consent:{consent.id}"
    session.add(scan)
    return consent


def _visible(session: Session, *, principal: Principal, consent: Consent) -> bool:
    if principal.kind == "citizen":
        return (principal.subject_id is not None and consent.subject_id == principal.subject_id) \
            or consent.created_by == principal.key
    if _role(principal) == "helper":
        return consent.helper_id == principal.account_id
    if consent.case_id is None:
        return False
    from services.cases.repository import get_visible_case

    return get_visible_case(session, case_id=consent.case_id, principal=principal) is not None


def consent_visible(session: Session, *, principal: Principal, consent_id: str) -> bool:
    consent = session.get(Consent, consent_id)
    return consent is not None and _visible(session, principal=principal, consent=consent)


def get_consent(session: Session, *, principal: Principal, consent_id: str) -> Consent:
    """The consent, for the person who gave it, the helper it names, and the staff of the case
    that used it; 404 for anyone else."""
    consent = session.get(Consent, consent_id)
    if consent is None or not _visible(session, principal=principal, consent=consent):
        raise ConsentNotFound()
    return consent


def list_consents(session: Session, *, principal: Principal, status: str | None = None,
                  limit: int = 100) -> list[Consent]:
    """A citizen's own consents, or the consents naming a helper; newest first."""
    if principal.kind == "citizen":
        conditions = [Consent.created_by == principal.key]
        if principal.subject_id is not None:
            conditions.append(Consent.subject_id == principal.subject_id)
        query = select(Consent).where(or_(*conditions))
    elif _role(principal) == "helper":
        query = select(Consent).where(Consent.helper_id == principal.account_id)
    else:
        return []
    rows = list(session.exec(query.order_by(Consent.created_at.desc(), Consent.id.desc()).limit(limit * 3 if status else limit)))
    now = utcnow()
    if status:
        rows = [row for row in rows if status_of(row, now=now) == status]
    return rows[:limit]


def find_by_code(session: Session, *, principal: Principal, code: str) -> Consent:
    """The consent a citizen shows at the counter, for the helper it names (404 otherwise)."""
    if principal.kind != "staff" or _role(principal) != "helper":
        raise HelperOnly()
    consent = session.exec(select(Consent).where(Consent.code == code.strip().upper())).first()
    if consent is None or consent.helper_id != principal.account_id:
        raise ConsentNotFound()
    return consent


def revoke_consent(session: Session, *, principal: Principal, consent_id: str) -> Consent:
    """The person who gave an online consent takes it back before it is used."""
    consent = get_consent(session, principal=principal, consent_id=consent_id)
    if principal.kind != "citizen":
        raise CitizenOnly()
    if status_of(consent) != "active":
        raise ConsentNotRevocable(detail={"status": status_of(consent)})
    consent.revoked_at = utcnow()
    session.add(consent)
    return consent


# ---------------------------------------------------------------- the case engine's side

def require_consent(session: Session, *, helper: Principal, applicant_subject: Subject, matter_code: str,
                    consent_id: str | None) -> Consent:
    """For a helper's application: the consent must exist, name this helper, this applicant and
    this matter, be unused, unrevoked, unexpired and (paper) not rejected. It is consumed here
    (one conditional UPDATE: two submissions racing with one consent cannot both pass); call
    `use_consent` once the case exists to link them."""
    if helper.kind != "staff" or _role(helper) != "helper":
        raise HelperOnly()
    if not consent_id:
        raise ConsentRequired(detail=[{"field": "consent_id", "reason": "required"}])
    consent = session.get(Consent, consent_id)
    if consent is None or consent.helper_id != helper.account_id:
        raise _not_usable("not_found")
    if consent.subject_id != applicant_subject.id:
        raise _not_usable("wrong_applicant")
    if consent.matter_code != matter_code:
        raise _not_usable("wrong_matter")
    status = status_of(consent)
    if status != "active":
        raise _not_usable(status)
    now = utcnow()
    taken = session.execute(update(Consent).where(Consent.id == consent.id, Consent.used_at.is_(None),
                                                  Consent.revoked_at.is_(None))
                            .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        raise _not_usable("used")
    consent.used_at = now
    return consent


def use_consent(session: Session, *, consent: Consent, case_id: str) -> None:
    """Link a consumed consent to the case it made possible; a paper scan becomes readable by
    the case's staff."""
    consent.case_id = case_id
    session.add(consent)
    if consent.file_id:
        scan = session.get(StoredFile, consent.file_id)
        if scan is not None and scan.case_id is None:
            scan.case_id = case_id
            session.add(scan)


def consent_for_case(session: Session, *, case_id: str) -> Consent | None:
    return session.exec(select(Consent).where(Consent.case_id == case_id)).first()


def paper_consent_confirmed(session: Session, case_id: str) -> bool:
    """The acceptance guard: False while the case rests on a paper consent no clerk has
    confirmed yet (True for every other case)."""
    consent = consent_for_case(session, case_id=case_id)
    return consent is None or consent.kind != "paper" or consent.confirmation == "confirmed"


def consent_guard_failures(session: Session, *, case_id: str) -> list[dict[str, str]]:
    """The same guard in the shape of the case engine's `guard_failures` ([] when satisfied)."""
    if paper_consent_confirmed(session, case_id):
        return []
    return [{"field": "consent", "reason": "paper_consent_unconfirmed",
             "message": "纸质授权书尚未经窗口人员确认，请先核对签字后确认"}]


def confirm_paper_consent(session: Session, *, principal: Principal, consent_id: str, confirmed: bool,
                          comment: str | None) -> Consent:
    """A clerk (or supervisor) of a point that can see the case checks the signed paper consent
    against the person's ID and confirms it, or rejects it with a reason."""
    consent = get_consent(session, principal=principal, consent_id=consent_id)
    if principal.kind != "staff" or _role(principal) not in ("clerk", "supervisor"):
        raise ClerkOnly()
    if consent.kind != "paper":
        raise NotAPaperConsent()
    comment = (comment or "").strip() or None
    if not confirmed and not comment:
        raise InvalidInput("退回纸质授权书需要填写理由", detail=[{"field": "comment", "reason": "required"}])
    if consent.confirmation != "pending":
        raise ConsentAlreadyDecided(detail={"confirmation": consent.confirmation})
    consent.confirmation = "confirmed" if confirmed else "rejected"
    consent.confirmed_by = principal.account_id
    consent.confirmed_at = utcnow()
    consent.confirmation_comment = comment
    session.add(consent)
    return consent


# ---------------------------------------------------------------- views

def helpers_serving(session: Session, *, region_code: str) -> list[dict[str, Any]]:
    """The active helpers of the points serving a region (nearest first), for a citizen choosing
    whom to consent to."""
    from services.points.service import points_serving

    points = points_serving(session, region_code=region_code)
    if not points:
        return []
    order = {point["id"]: index for index, point in enumerate(points)}
    rows = session.exec(select(Staff).where(Staff.service_point_id.in_(list(order)), Staff.role == "helper",
                                            Staff.active.is_(True))).all()
    by_id = {point["id"]: point for point in points}
    rows = sorted(rows, key=lambda staff: (order[staff.service_point_id], staff.id))
    return [{"id": staff.id, "name": staff.display_name,
             "service_point": {key: by_id[staff.service_point_id][key] for key in ("id", "name", "level", "address", "hours")}}
            for staff in rows]


def _local(moment: datetime | None) -> str | None:
    return moment.astimezone(CHINA).isoformat() if moment else None


def consent_view(session: Session, consent: Consent) -> dict[str, Any]:
    from services.accounts.service import mask_name

    helper = session.get(Staff, consent.helper_id)
    point = session.get(ServicePoint, helper.service_point_id) if helper else None
    subject = session.get(Subject, consent.subject_id)
    try:
        matter_name = _matter(consent.matter_code).definition.name
    except InvalidInput:
        matter_name = consent.matter_code
    return {
        "id": consent.id, "code": consent.code, "kind": consent.kind, "status": status_of(consent),
        "matter_code": consent.matter_code, "matter_name": matter_name,
        "helper": {"id": consent.helper_id, "name": helper.display_name if helper else "",
                   "service_point": {"id": point.id, "name": point.name} if point else None},
        "applicant": {"name_masked": mask_name(subject.name) if subject else "",
                      "number_masked": subject.number_masked if subject else ""},
        "created_at": _local(consent.created_at), "expires_at": _local(consent.expires_at),
        "used_at": _local(consent.used_at), "case_id": consent.case_id,
        "file_id": consent.file_id,
        "confirmation": ({"state": consent.confirmation,
                          "at": _local(consent.confirmed_at),
                          "comment": consent.confirmation_comment} if consent.kind == "paper" else None),
    }
