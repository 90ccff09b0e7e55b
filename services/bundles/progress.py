"""A bundle's parent case follows its children: completed when every child is completed (or
delivered), failed as soon as one is denied or not accepted, withdrawn when every child was."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlmodel import Session

from services.bundles.definitions import default_bundles
from services.bundles.models import BundleCase
from services.cases.models import Case, CaseMaterial
from services.certificates.models import Certificate
from services.db import utcnow

DONE = {"completed", "delivered"}
FAILED = {"denied", "not_accepted"}


def parent_state(child_states: dict[str, str]) -> tuple[str, str | None]:
    """(state, reason) of the parent from {child number: child state}."""
    failed = sorted(number for number, state in child_states.items() if state in FAILED)
    if failed:
        return "failed", "、".join(failed) + " 未获准予（不予受理或不予许可），本一件事未能全部办成"
    if child_states and all(state in DONE for state in child_states.values()):
        return "completed", None
    if child_states and all(state == "withdrawn" for state in child_states.values()):
        return "withdrawn", None
    settled = DONE | {"withdrawn"}
    if child_states and all(state in settled for state in child_states.values()):
        withdrawn = sorted(number for number, state in child_states.items() if state == "withdrawn")
        return "completed", "、".join(withdrawn) + " 已撤回，其余事项已办结"
    return "in_progress", None


def child_changed(session: Session, *, case: Case) -> None:
    """Recompute the parent after one of its children moved (in the child's transaction). The
    parent's row lock orders two children finishing at once: the second sees the first."""
    session.flush()
    parent_code = session.execute(select(BundleCase.bundle_code).where(BundleCase.id == case.bundle_case_id)
                                  .with_for_update()).scalar_one()
    if case.state in DONE:
        _hand_on_certificates(session, case=case, bundle_code=parent_code)
    states = dict(session.execute(select(Case.number, Case.state).where(Case.bundle_case_id == case.bundle_case_id)).all())
    state, reason = parent_state(states)
    now = utcnow()
    closing = state in ("completed", "failed", "withdrawn")
    session.execute(update(BundleCase).where(BundleCase.id == case.bundle_case_id, BundleCase.state != state)
                    .values(state=state, outcome_reason=reason, version=BundleCase.version + 1, updated_at=now,
                            closed_at=now if closing else None)
                    .execution_options(synchronize_session=False))


def _hand_on_certificates(session: Session, *, case: Case, bundle_code: str) -> None:
    """免证办 inside a bundle: a sibling whose material is "@<this matter>" gets the e-certificate
    this case issued, so the applicant never brings it to the next counter."""
    definition = default_bundles().get(bundle_code)
    if definition is None:
        return
    certificate_id = session.execute(select(Certificate.id).where(Certificate.case_id == case.id)
                                     .order_by(Certificate.issued_at).limit(1)).scalar()
    if certificate_id is None:
        return
    for item in definition.matters:
        for target, source in item.materials.items():
            if source != f"@{case.matter_code}":
                continue
            sibling = session.execute(select(Case.id).where(Case.bundle_case_id == case.bundle_case_id,
                                                            Case.matter_code == item.matter_code)).scalar()
            already = session.execute(select(CaseMaterial.id).where(CaseMaterial.case_id == sibling,
                                                                    CaseMaterial.code == target)).first()
            if sibling is not None and already is None:
                session.add(CaseMaterial(case_id=sibling, code=target, certificate_id=certificate_id))
