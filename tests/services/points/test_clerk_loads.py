"""The clerks' loads that routing balances (services.points.models.ClerkLoad) are kept by triggers
on `cases` (migration 20261128_0013). Whatever writes a case — a submission, a state change, a
move to another clerk or point, a return to the pool, a deletion — the kept counts equal a count
of the open cases, on SQLite and on PostgreSQL. Each check compares the whole table with a
recount, inside the test's transaction (rolled back after)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, update
from sqlmodel import select

from services.accounts.principal import Principal
from services.cases.models import Case
from services.cases.service import create_case, current_matter
from services.figures.repository import OUTCOME_STATES
from services.points.models import CLOSED_STATES, ClerkLoad, ServicePoint, Staff
from services.points.repository import clerk_loads
from tests.services.accounts.helpers import insert_subject
from workflows.catalogue import default_catalogue

CITIZEN = Principal(kind="citizen", account_id=987655, roles=("citizen",), name="李四")
COUNTY = "361130000000"
QIUKOU_STATION = "361130102200"  # 秋口村: a village station with its own clerk


def _recount(session) -> dict[tuple[int, int], int]:
    rows = session.exec(select(Case.assignee_id, Case.handling_point_id, func.count())
                        .where(Case.assignee_id.is_not(None), Case.state.not_in(CLOSED_STATES))
                        .group_by(Case.assignee_id, Case.handling_point_id))
    return {(staff_id, point_id): count for staff_id, point_id, count in rows}


def _kept(session) -> dict[tuple[int, int], int]:
    session.flush()
    session.expire_all()
    return {(row.staff_id, row.service_point_id): row.open_cases
            for row in session.exec(select(ClerkLoad)) if row.open_cases}


def _set(session, case: Case, **values) -> None:
    session.execute(update(Case).where(Case.id == case.id).values(**values))


def _new_case(session, region_code: str) -> Case:
    return create_case(session, principal=CITIZEN, matter=current_matter(session, "residence-certificate"),
                       subject=insert_subject(session, name="李四"), region_code=region_code, form={},
                       material_rows=[])


def test_the_kept_loads_equal_a_recount_through_every_state_and_move(session, seeded):
    assert _kept(session) == _recount(session)  # what the seed and earlier tests committed
    case = _new_case(session, QIUKOU_STATION)
    assert case.assignee_id is not None
    assert _kept(session) == _recount(session)

    # every state any shipped matter can be in (review steps included): a state the triggers
    # count and CLOSED_STATES doesn't, or the reverse, shows here
    states = sorted({state for matter in default_catalogue().matters.values() for state in matter.lifecycle.states})
    assert set(CLOSED_STATES) < set(states)
    for state in states + list(reversed(states)):
        _set(session, case, state=state)
        assert _kept(session) == _recount(session), state

    _set(session, case, state="accepted")
    county_clerk = session.exec(select(Staff).where(Staff.username == "clerk-361130-1")).one()
    county = session.exec(select(ServicePoint).where(ServicePoint.region_code == COUNTY)).one()
    for move in ({"assignee_id": county_clerk.id, "handling_point_id": county.id},  # transferred
                 {"assignee_id": None},  # back to the pool
                 {"assignee_id": county_clerk.id},  # claimed
                 {"handling_point_id": case.handling_point_id},  # point changed, clerk kept
                 {"state": "completed", "assignee_id": case.assignee_id}):  # closed and moved at once
        _set(session, case, **move)
        assert _kept(session) == _recount(session), move

    # deleted (nothing in the application deletes a case; a copy without history can go)
    copy = Case(**{column.name: getattr(case, column.name) for column in Case.__table__.columns}
                | {"id": str(uuid.uuid4()), "number": case.number[:-1] + "Z", "state": "submitted"})
    session.add(copy)
    assert _kept(session) == _recount(session)
    session.execute(delete(Case).where(Case.id == copy.id))
    assert _kept(session) == _recount(session)


def test_routing_reads_the_kept_load(session, seeded):
    station = session.exec(select(ServicePoint).where(ServicePoint.region_code == QIUKOU_STATION)).one()

    def load() -> dict[int, int]:
        session.expire_all()
        return {staff.id: count for staff, count in clerk_loads(session, service_point_id=station.id)}

    before = load()
    case = _new_case(session, QIUKOU_STATION)
    assert load()[case.assignee_id] == before[case.assignee_id] + 1
    for review_step in ("site_inspection", "first_review", "village_review", "in_review"):  # still work to do
        _set(session, case, state=review_step)
        assert load()[case.assignee_id] == before[case.assignee_id] + 1, review_step
    _set(session, case, state="approved")  # decided (办结): no longer a load
    assert load() == before
    _set(session, case, state="withdrawn")
    assert load() == before


def test_the_closed_states_are_each_shipped_matters_states_with_a_stopped_clock():
    for matter in default_catalogue().matters.values():
        stopped = {name for name, state in matter.lifecycle.states.items() if state.clock == "stopped"}
        assert stopped == set(CLOSED_STATES) & set(matter.lifecycle.states), matter.code
    # the regional figures' open cases are the same as the loads'
    assert {state for states in OUTCOME_STATES.values() for state in states} == set(CLOSED_STATES)
