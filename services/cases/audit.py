"""Recomputes the hash chains of case histories and names every case whose history was
edited, reordered or cut. Streams cases in batches, so memory stays flat however many there are.

Every change of a case appends exactly one event and bumps `version` by one, so besides each
link and hash the chain must end at seq == version in the case's current state: that is what
catches a history cut at its end (or deleted whole), which a chain alone can't show.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from services.cases.models import Case, CaseEvent
from services.cases.service import chain_problems


@dataclass
class AuditReport:
    cases: int = 0
    events: int = 0
    broken: list[dict[str, Any]] = field(default_factory=list)


def case_problems(case_version: int, case_state: str, events: list[CaseEvent]) -> list[dict[str, Any]]:
    problems = chain_problems(events)
    if not events:
        return [{"problem": "missing", "expected_events": case_version}]
    last = events[-1]
    if last.seq != case_version or len(events) != case_version:
        problems.append({"problem": "cut", "events": len(events), "last_seq": last.seq,
                         "expected_events": case_version})
    elif last.to_state != case_state:
        problems.append({"problem": "state", "last_to_state": last.to_state, "case_state": case_state})
    return problems


def iter_broken(session: Session, *, batch: int = 1000, case_ids: list[str] | None = None,
                report: AuditReport | None = None) -> Iterator[dict[str, Any]]:
    """Yield `{"case_id", "number", "problems": [...]}` for every case whose history fails."""
    report = report or AuditReport()
    after = ""
    while True:
        query = select(Case.id, Case.number, Case.version, Case.state).where(Case.id > after)
        if case_ids is not None:
            query = query.where(Case.id.in_(case_ids))
        cases = session.execute(query.order_by(Case.id).limit(batch)).all()
        if not cases:
            return
        after = cases[-1][0]
        events: dict[str, list[CaseEvent]] = defaultdict(list)
        for event in session.execute(select(CaseEvent).where(CaseEvent.case_id.in_([c[0] for c in cases]))
                                     .order_by(CaseEvent.case_id, CaseEvent.id)).scalars():
            events[event.case_id].append(event)
        for case_id, number, version, state in cases:
            chain = sorted(events.get(case_id, []), key=lambda e: e.seq)
            # the order the rows were written in (id) must be the order of the chain (seq)
            reordered = [e.seq for e in events.get(case_id, [])] != [e.seq for e in chain]
            problems = case_problems(version, state, chain)
            if reordered:
                problems.insert(0, {"problem": "reordered"})
            report.cases += 1
            report.events += len(chain)
            if problems:
                yield {"case_id": case_id, "number": number, "problems": problems}
        session.expunge_all()
