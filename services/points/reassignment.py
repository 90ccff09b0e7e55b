"""Return to the pool: when a staff member goes on leave, is deactivated, moves to another point or
stops being a clerk, every unfinished case assigned to them is taken off them, one history event
per case in the case's hash chain.

Where the case goes (the rule the admin API and CLI document): if its handling point is in
`assign` mode, to the least-loaded other on-duty clerk of that point qualified for the matter's
category (event `reassign`); otherwise — a `pool` point, or no other qualified clerk — into the
point's pool, unassigned, to be claimed (event `return_to_pool`). Each case's `version` goes up by
one with its event, as with every other change of a case, so `onestop audit verify` still finds
seq == version and an intact chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from services.accounts.principal import Principal
from services.cases import repository as cases_repository
from services.cases.models import Case, CaseEvent
from services.cases.service import StaleVersion, _append_event, matter_of
from services.db import utcnow
from services.points.models import ServicePoint, Staff
from services.points.repository import TERMINAL_STATES, open_cases_assigned_to
from services.routing.service import choose_assignee

__all__ = ["append_case_event", "release_assignments", "ReleaseReport"]

MAX_ATTEMPTS = 3  # a case someone else changed meanwhile is read again, at most this often


@dataclass
class ReleaseReport:
    """What happened to the cases of one staff member."""

    reassigned: list[dict[str, Any]] = field(default_factory=list)  # {case_id, number, to_staff_id, to_staff_name}
    returned_to_pool: list[dict[str, Any]] = field(default_factory=list)  # {case_id, number}

    def as_dict(self) -> dict[str, Any]:
        return {"reassigned": self.reassigned, "returned_to_pool": self.returned_to_pool}


def append_case_event(session: Session, *, case: Case, action: str, principal: Principal | None,
                      comment: str | None, payload: dict[str, Any]) -> CaseEvent:
    """Append one event to a case's hash-chained history without changing its state (the case
    engine's own append; the caller has already bumped the case's version)."""
    return _append_event(session, case=case, action=action, from_state=case.state, to_state=case.state,
                         principal=principal, comment=comment, payload=payload)


def release_assignments(session: Session, *, staff: Staff, why: str, actor: Principal | None) -> ReleaseReport:
    """Take every unfinished case off `staff` (see the module's docstring for where each goes).
    `why` is the sentence the history and the routing reason show (e.g. "张敏 请假"); `actor`
    the administrator who caused it (None: the system)."""
    report = ReleaseReport()
    for case in open_cases_assigned_to(session, staff_id=staff.id):
        for _attempt in range(MAX_ATTEMPTS):
            if _release_one(session, case=case, staff=staff, why=why, actor=actor, report=report):
                break
            case = _reread(session, case_id=case.id)
            if case is None or case.assignee_id != staff.id or case.state in TERMINAL_STATES:
                break  # someone else moved it meanwhile: nothing left to do
        else:
            raise StaleVersion("办件正被他人频繁更新，请稍后重试", detail={"case_id": case.id})
    return report


def _reread(session: Session, *, case_id: str) -> Case | None:
    return session.exec(select(Case).where(Case.id == case_id).execution_options(populate_existing=True)).first()


def _release_one(session: Session, *, case: Case, staff: Staff, why: str, actor: Principal | None,
                 report: ReleaseReport) -> bool:
    point = session.get(ServicePoint, case.handling_point_id)
    category = matter_of(session, case).definition.category
    assignee, how = choose_assignee(session, point=point, category=category, exclude_staff_id=staff.id)
    sentence = f"{why}，{how}"
    now = utcnow()
    values = {"assignee_id": assignee.id if assignee else None, "updated_at": now,
              "routing_reason": f"{case.routing_reason}；{sentence}"}
    if not cases_repository.update_if_version(session, case_id=case.id, expected_version=case.version, values=values):
        return False
    for name, value in {**values, "version": case.version + 1}.items():
        set_committed_value(case, name, value)
    action = "reassign" if assignee else "return_to_pool"
    append_case_event(session, case=case, action=action, principal=actor, comment=sentence,
                      payload={"from_staff_id": staff.id, "to_staff_id": assignee.id if assignee else None,
                               "reason": why})
    entry = {"case_id": case.id, "number": case.number}
    if assignee:
        report.reassigned.append({**entry, "to_staff_id": assignee.id, "to_staff_name": assignee.display_name})
    else:
        report.returned_to_pool.append(entry)
    return True
