"""Two clerks acting on the same case at the same moment: one wins, the other gets a conflict,
and the history has one event for it. Runs on whichever database the suite runs on, with the
action in a transaction of the caller's and (as the API runs it) on a session whose statements
each commit, where the action is one statement."""

from __future__ import annotations

import threading

import pytest

from sqlmodel import Session, select

from services.accounts.service import load_principal
from services.cases.models import CaseEvent
from services.cases.service import StaleVersion, act
from services.db import statement_session
from services.errors import OnestopError
from services.points.models import Staff
from tests.support import (WITH_STATION, outcome_once_first_commits, principal_of, residence_application, submit,
                           upload_pdf, verified_citizen)


def _case_and_its_clerk(client, engine):
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    with Session(engine) as session:
        clerk = session.exec(select(Staff).where(Staff.username == f"clerk-{WITH_STATION}")).one()
        return case, load_principal(session, principal_key=f"staff:{clerk.id}")


SESSIONS = {"transaction": lambda engine: Session(engine, expire_on_commit=False),
            "statements": statement_session}


def _accept(engine, principal, case, outcomes: list[str], *, comment: str | None = None,
            sessions: str = "transaction") -> None:
    """One clerk's accept in a session of its own; its outcome ("ok", "stale" or the error's code)
    is appended."""
    with SESSIONS[sessions](engine) as session:
        try:
            act(session, principal=principal, case_id=case["id"], action="accept", version=1, comment=comment,
                payload=None)
            session.commit()
            outcomes.append("ok")
        except StaleVersion:
            session.rollback()
            outcomes.append("stale")
        except OnestopError as error:
            session.rollback()
            outcomes.append(error.code)


@pytest.mark.parametrize("sessions", SESSIONS)
def test_two_clerks_accept_at_once_and_exactly_one_wins(client, engine, sessions):
    case, principal = _case_and_its_clerk(client, engine)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept() -> None:
        barrier.wait()
        _accept(engine, principal, case, outcomes, sessions=sessions)

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "stale"]
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == case["id"]))]
    assert actions == ["submit", "accept"]


@pytest.mark.parametrize("sessions", SESSIONS)
def test_an_action_that_read_the_case_before_another_committed_is_stale_and_writes_nothing(client, engine,
                                                                                          monkeypatch, sessions):
    """The late action's UPDATE, history event and notice go to the database together: it finds
    the case moved on and nothing of it stays — in a transaction, no row updated and the event's
    seq taken undo everything; as one statement, the event and notice are not written at all."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite's writers queue at BEGIN IMMEDIATE: the second one reads after the first committed")
    import services.cases.service as cases_service
    from services.outbox.models import OutboxJob

    case, principal = _case_and_its_clerk(client, engine)
    late_has_read, winner_committed = threading.Event(), threading.Event()
    late_write_failed: list[type] = []
    write_guarded = cases_service.write_guarded

    def write_after_the_winner(session, *writes):
        if threading.current_thread().name == "late":
            late_has_read.set()
            assert winner_committed.wait(10)
            try:
                return write_guarded(session, *writes)
            except Exception as error:
                late_write_failed.append(type(error))
                raise
        return write_guarded(session, *writes)

    monkeypatch.setattr(cases_service, "write_guarded", write_after_the_winner)
    outcome: list[str] = []
    thread = threading.Thread(target=_accept, args=(engine, principal, case, outcome),
                              kwargs={"sessions": sessions}, name="late")
    thread.start()
    assert late_has_read.wait(10)
    winner: list[str] = []
    _accept(engine, principal, case, winner, comment="first", sessions=sessions)
    winner_committed.set()
    thread.join(20)
    assert winner == ["ok"] and outcome == ["stale"]
    # in a transaction the event's seq was taken; one statement wrote nothing after its UPDATE
    assert [error.__name__ for error in late_write_failed] == (["IntegrityError"] if sessions == "transaction" else [])
    with Session(engine) as session:
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case["id"]).order_by(CaseEvent.seq)).all()
        notices = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key.startswith(f"notify:{case['id']}:"))).all()
    assert [(e.action, e.comment) for e in events] == [("submit", None), ("accept", "first")]
    assert [job.dedupe_key for job in notices] == [f"notify:{case['id']}:accepted:2"]


@pytest.mark.parametrize("sessions", SESSIONS)
def test_the_same_idempotency_key_submitted_twice_at_once_creates_one_case(client, engine, sessions):
    """The second request's write waits for the first to commit (on the file both name, then on
    the key's record) and finds the file used; the second is answered with the first's case, and
    nothing of its own stays (its case, materials, history, the file it named): rolled back in a
    transaction, never written as one statement."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite's writers queue on the whole database: the second request can't overlap the first")
    from services.cases.models import Case, IdempotencyRecord
    from services.cases.service import submit_case
    from services.files.models import StoredFile

    token, id_number = verified_citizen(client)
    body = residence_application(id_number, upload_pdf(client, token))
    principal = principal_of(engine, token)
    first = Session(engine, expire_on_commit=False)
    created = submit_case(first, principal=principal, body=body, idempotency_key="same-key").case

    def second_request(session) -> tuple[str, str]:
        submitted = submit_case(session, principal=principal, body=body, idempotency_key="same-key")
        return "replayed" if submitted.replayed else "created", submitted.case.id

    assert outcome_once_first_commits(first, lambda: SESSIONS[sessions](engine), second_request) \
        == ("replayed", created.id)
    with Session(engine) as session:
        records = session.exec(select(IdempotencyRecord).where(IdempotencyRecord.principal == principal.key)).all()
        cases = session.exec(select(Case).where(Case.created_by_principal == principal.key)).all()
        file = session.get(StoredFile, body["materials"][0]["file_id"])
    assert [record.case_id for record in records] == [created.id] and [case.id for case in cases] == [created.id]
    assert file.case_id == created.id


@pytest.mark.parametrize("sessions", SESSIONS)
def test_two_submissions_citing_one_upload_at_once_one_takes_it(client, engine, sessions):
    """Two different applications (no shared Idempotency-Key) naming the same uploaded file at
    the same moment: the second's write waits for the first to commit, finds the file used and
    writes nothing — 404 file_not_found, one case, and the file is the first case's."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite's writers queue on the whole database: the second request can't overlap the first")
    from services.cases.models import Case, CaseMaterial
    from services.cases.service import submit_case
    from services.files.models import StoredFile

    token, id_number = verified_citizen(client)
    body = residence_application(id_number, upload_pdf(client, token))
    other_body = {**body, "form": {**body["form"], "purpose": "就业登记"}}
    principal = principal_of(engine, token)
    first = Session(engine, expire_on_commit=False)
    created = submit_case(first, principal=principal, body=body, idempotency_key="first").case

    def second_request(session) -> str:
        return submit_case(session, principal=principal, body=other_body, idempotency_key="second").case.id

    assert outcome_once_first_commits(first, lambda: SESSIONS[sessions](engine), second_request) == "file_not_found"
    with Session(engine) as session:
        cases = session.exec(select(Case).where(Case.created_by_principal == principal.key)).all()
        materials = session.exec(select(CaseMaterial).where(CaseMaterial.file_id == body["materials"][0]["file_id"])).all()
        file = session.get(StoredFile, body["materials"][0]["file_id"])
    assert [case.id for case in cases] == [created.id]
    assert [material.case_id for material in materials] == [created.id]
    assert file.case_id == created.id
