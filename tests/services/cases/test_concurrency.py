"""Two clerks acting on the same case at the same moment: one wins, the other gets a conflict,
and the history has one event for it. Runs on whichever database the suite runs on."""

from __future__ import annotations

import threading

from sqlmodel import Session, select

from services.accounts.service import load_principal
from services.cases.models import CaseEvent
from services.cases.service import StaleVersion, act
from services.errors import OnestopError
from services.points.models import Staff
from tests.support import WITH_STATION, residence_application, submit, upload_pdf, verified_citizen


def test_two_clerks_accept_at_once_and_exactly_one_wins(client, engine):
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    with Session(engine) as session:
        clerk = session.exec(select(Staff).where(Staff.username == f"clerk-{WITH_STATION}")).one()
        principal = load_principal(session, principal_key=f"staff:{clerk.id}")

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept() -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                act(session, principal=principal, case_id=case["id"], action="accept", version=1, comment=None,
                    payload=None)
                session.commit()
                outcomes.append("ok")
            except StaleVersion:
                session.rollback()
                outcomes.append("stale")
            except OnestopError as error:
                session.rollback()
                outcomes.append(error.code)

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "stale"]
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == case["id"]))]
    assert actions == ["submit", "accept"]
