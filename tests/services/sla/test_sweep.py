"""The periodic sweep: marks due-soon and overdue cases, restarts the clock of suspensions past
their maximum, escalates overdue cases to the handling point's supervisor and then one level up;
run twice, or on two workers at once, it escalates once."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlmodel import Session, select

from services.cases.models import Case, CaseEscalation
from services.db import utcnow
from services.outbox.models import OutboxJob
from services.points.models import ServicePoint
from services.sla.calendar import forget_cached_calendar, today_in_china
from services.sla.sweep import run_sweep
from services.sla.tasks import schedule_sweep
from tests.services.cases.helpers import ensure_routers, staff
from tests.support import WITH_STATION, act, auth, residence_application, submit, upload_pdf, verified_citizen

CLERK = f"clerk-{WITH_STATION}"


def accepted_case(client) -> dict:
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    accepted = act(client, staff(client, CLERK), case, "accept")
    assert accepted.status_code == 200, accepted.text
    return accepted.json()


def set_columns(engine, case_id: str, **values) -> None:
    with Session(engine) as session:
        case = session.get(Case, case_id)
        for name, value in values.items():
            setattr(case, name, value)
        session.add(case)
        session.commit()


def escalations(engine, case_id: str) -> list[CaseEscalation]:
    with Session(engine) as session:
        return list(session.exec(select(CaseEscalation).where(CaseEscalation.case_id == case_id)
                                 .order_by(CaseEscalation.level)))


def test_sweep_marks_escalates_once_and_then_one_level_up(client, engine):
    forget_cached_calendar()
    overdue, due_soon = accepted_case(client), accepted_case(client)
    today = today_in_china()
    set_columns(engine, overdue["id"], due_date=today - timedelta(days=7))
    set_columns(engine, due_soon["id"], due_date=today)

    with Session(engine) as session:
        first = run_sweep(session)
    with Session(engine) as session:
        second = run_sweep(session)
        marked = {c.id: (c.sla_flag, c.escalation_level, c.version) for c in
                  session.exec(select(Case).where(Case.id.in_([overdue["id"], due_soon["id"]])))}
        station = session.get(ServicePoint, overdue["handling_point"]["id"])
    assert first.escalated[1] >= 1 and second.escalated == {1: 0, 2: 0}
    assert marked[overdue["id"]] == ("overdue", 1, overdue["version"])  # the sweep leaves the version alone
    assert marked[due_soon["id"]] == ("due_soon", 0, due_soon["version"])
    [level1] = escalations(engine, overdue["id"])
    with Session(engine) as session:  # the village station has no supervisor: its town centre's
        target = session.get(ServicePoint, level1.service_point_id)
        notices = [job for job in session.exec(select(OutboxJob).where(OutboxJob.kind == "notify_escalation"))
                   if overdue["id"] in job.payload["case_ids"]]
    assert station.level == "village" and target.level == "town" and level1.supervisor_id is not None
    assert len(notices) == 1 and notices[0].payload["level"] == 1

    with Session(engine) as session:  # still open a day later: one level up, once
        later = utcnow() + timedelta(hours=25)
        run_sweep(session, now=later)
        run_sweep(session, now=later)
    levels = escalations(engine, overdue["id"])
    assert [e.level for e in levels] == [1, 2]
    with Session(engine) as session:
        assert session.get(ServicePoint, levels[1].service_point_id).level == "county"

    supervisor = staff(client, "supervisor-361130102")
    ensure_routers(client.app)
    items = client.get("/api/v1/figures/escalations", headers=auth(supervisor)).json()["items"]
    assert overdue["id"] in [item["case_id"] for item in items]
    view = client.get(f"/api/v1/cases/{overdue['id']}", headers=auth(supervisor)).json()
    assert view["sla"]["breached"] is True and view["sla"]["flag"] == "overdue" and view["sla"]["escalation_level"] == 2


def test_two_workers_sweeping_at_once_escalate_once(client, engine):
    forget_cached_calendar()
    cases = [accepted_case(client) for _ in range(3)]
    for case in cases:
        set_columns(engine, case["id"], due_date=today_in_china() - timedelta(days=10))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            with Session(engine) as session:
                barrier.wait()
                run_sweep(session)
        except BaseException as error:  # noqa: BLE001 — reported below
            errors.append(error)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for case in cases:
        assert [e.level for e in escalations(engine, case["id"])] == [1]
    with Session(engine) as session:
        notified = [case_id for job in session.exec(select(OutboxJob).where(OutboxJob.kind == "notify_escalation"))
                    for case_id in job.payload["case_ids"]]
    assert all(notified.count(case["id"]) == 1 for case in cases)


def test_a_suspension_past_its_maximum_restarts_the_clock(client, engine):
    forget_cached_calendar()
    case = accepted_case(client)
    clerk = staff(client, CLERK)
    suspended = act(client, clerk, case, "suspend", comment="专家评审", payload={"max_days": 1}).json()
    assert suspended["sla"]["state"] == "paused"
    set_columns(engine, case["id"], suspend_until=today_in_china() - timedelta(days=3))
    with Session(engine) as session:
        assert run_sweep(session).suspensions_expired >= 1
    view = client.get(f"/api/v1/cases/{case['id']}", headers=auth(clerk)).json()
    assert view["state"] == "suspended" and view["sla"]["state"] == "running"
    resumed = act(client, clerk, view, "resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "accepted"


def test_counts_for_a_point_and_a_region(client, engine):
    ensure_routers(client.app)
    case = accepted_case(client)
    set_columns(engine, case["id"], due_date=today_in_china() - timedelta(days=2))
    clerk, supervisor = staff(client, CLERK), staff(client, "supervisor-361130102")
    mine = client.get("/api/v1/figures/cases", headers=auth(clerk)).json()
    assert mine["service_point"]["id"] == case["handling_point"]["id"]
    assert mine["overdue"] >= 1 and mine["by_state"]["accepted"] >= 1 and mine["open"] >= mine["overdue"]
    region = client.get("/api/v1/figures/cases", headers=auth(supervisor)).json()
    assert region["region_code"].startswith("361130102") and region["overdue"] >= mine["overdue"]
    assert client.get("/api/v1/figures/cases", params={"region_code": "361130103000"},
                      headers=auth(supervisor)).status_code == 403
    other_point = client.get("/api/v1/service-points", params={"region_code": "361130103001"}).json()["items"][0]
    assert client.get("/api/v1/figures/cases", params={"service_point_id": other_point["id"]},
                      headers=auth(clerk)).status_code == 403


def test_the_sweep_schedules_itself_once_per_slot(engine):
    with Session(engine) as session:
        at = schedule_sweep(session)
        schedule_sweep(session)
        session.commit()
        jobs = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"sla_sweep:{at.isoformat()}")).all()
    assert len(jobs) == 1 and jobs[0].kind == "sla_sweep"
