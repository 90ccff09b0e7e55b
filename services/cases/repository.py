"""Case queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import Session, select

from services.accounts.principal import Principal
from services.cases.models import Case, CaseEvent, CaseMaterial, IdempotencyRecord
from services.certificates.models import Certificate
from services.regions.repository import subtree_prefix


def find_idempotency_record(session: Session, *, principal: str, key: str) -> IdempotencyRecord | None:
    return session.exec(select(IdempotencyRecord).where(IdempotencyRecord.principal == principal,
                                                        IdempotencyRecord.key == key)).first()


def visibility_filter(principal: Principal):
    """The SQL condition for the cases this principal may see (DESIGN.md §1 and §8)."""
    if principal.kind == "citizen":
        own = Case.created_by_principal == principal.key
        if principal.subject_id is not None:
            return or_(Case.subject_id == principal.subject_id, own)
        return own
    role = principal.roles[0] if principal.roles else ""
    if role in ("supervisor", "admin") and principal.jurisdiction_code:
        return Case.region_code.startswith(subtree_prefix(principal.jurisdiction_code))
    if role == "helper":
        return Case.created_by_principal == principal.key
    return or_(Case.handling_point_id == principal.service_point_id,
               Case.receiving_point_id == principal.service_point_id)


def get_visible_case(session: Session, *, case_id: str, principal: Principal, lock: bool = False) -> Case | None:
    query = select(Case).where(Case.id == case_id, visibility_filter(principal))
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def list_visible_cases(session: Session, *, principal: Principal, state: str | None,
                       before: tuple[datetime, str] | None, limit: int) -> list[Case]:
    """Newest first, keyset-paginated by (submitted_at, id)."""
    query = select(Case).where(visibility_filter(principal))
    if principal.kind == "staff" and principal.roles[0] == "clerk":
        # a clerk's queue: their assignments and the point's unassigned pool
        query = query.where(or_(Case.assignee_id == principal.account_id, Case.assignee_id.is_(None),
                                Case.receiving_point_id == principal.service_point_id))
    if state:
        query = query.where(Case.state == state)
    if before:
        submitted_at, case_id = before
        query = query.where(or_(Case.submitted_at < submitted_at,
                                (Case.submitted_at == submitted_at) & (Case.id < case_id)))
    return list(session.exec(query.order_by(Case.submitted_at.desc(), Case.id.desc()).limit(limit)))


def history(session: Session, *, case_id: str) -> list[CaseEvent]:
    return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)))


def last_event(session: Session, *, case_id: str) -> CaseEvent | None:
    return session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id)
                        .order_by(CaseEvent.seq.desc()).limit(1)).first()


def materials(session: Session, *, case_id: str) -> list[CaseMaterial]:
    return list(session.exec(select(CaseMaterial).where(CaseMaterial.case_id == case_id).order_by(CaseMaterial.id)))


def certificate_ids(session: Session, *, case_id: str) -> list[str]:
    return list(session.exec(select(Certificate.id).where(Certificate.case_id == case_id).order_by(Certificate.id)))


def update_if_version(session: Session, *, case_id: str, expected_version: int, values: dict) -> bool:
    """Optimistic lock: apply `values` and bump the version only if nobody changed the case."""
    result = session.execute(update(Case).where(Case.id == case_id, Case.version == expected_version)
                             .values(version=Case.version + 1, **values)
                             .execution_options(synchronize_session=False))
    return result.rowcount == 1
