"""The outbox: jobs written in the caller's transaction, run once, retried after failure."""

from __future__ import annotations

import threading
import uuid

from sqlmodel import Session, select

from services.outbox import service as outbox
from services.outbox.models import OutboxJob


def _kind() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_a_rolled_back_transaction_leaves_no_job(engine):
    kind = _kind()
    with Session(engine) as session:
        outbox.enqueue(session, kind=kind, payload={})
        session.rollback()
    with Session(engine) as session:
        assert session.exec(select(OutboxJob).where(OutboxJob.kind == kind)).first() is None


def test_each_job_runs_once_with_several_workers_racing(engine):
    kind = _kind()
    ran: list[int] = []
    lock = threading.Lock()

    @outbox.handler(kind)
    def record(_session, payload):
        with lock:
            ran.append(payload["n"])

    with Session(engine) as session:
        for n in range(30):
            outbox.enqueue(session, kind=kind, payload={"n": n}, dedupe_key=f"{kind}:{n}")
        outbox.enqueue(session, kind=kind, payload={"n": 0}, dedupe_key=f"{kind}:0")  # deduplicated
        session.commit()
    threads = [threading.Thread(target=outbox.run_until_idle, args=(engine,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ran) == list(range(30))


def test_run_until_idle_can_run_only_some_kinds_leaving_the_others_due(engine):
    wanted, other = _kind(), _kind()
    ran: list[str] = []
    for kind in (wanted, other):
        outbox.handler(kind)(lambda _session, payload: ran.append(payload["kind"]))
    with Session(engine) as session:
        outbox.enqueue(session, kind=other, payload={"kind": other})  # first in line
        outbox.enqueue(session, kind=wanted, payload={"kind": wanted})
        session.commit()
    assert outbox.run_until_idle(engine, kinds=(wanted,)) == 1 and ran == [wanted]
    with Session(engine) as session:
        left = session.exec(select(OutboxJob).where(OutboxJob.kind == other)).one()
        assert left.state == "pending"
    outbox.run_until_idle(engine, kinds=(other,))
    assert ran == [wanted, other]


def test_two_transactions_adding_the_same_job_at_once_add_it_once_without_error(engine):
    """The second waits for the first (a row lock on PostgreSQL, the write lock on SQLite), then
    adds nothing; neither fails."""
    kind = _kind()
    outcomes: list[str] = []
    first = Session(engine)
    outbox.enqueue(first, kind=kind, payload={"by": "first"}, dedupe_key=f"{kind}:once")

    def second() -> None:
        with Session(engine) as session:
            outbox.enqueue(session, kind=kind, payload={"by": "second"}, dedupe_key=f"{kind}:once")
            session.commit()
            outcomes.append("second committed")

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=0.5)
    assert thread.is_alive()  # waiting for the first transaction
    first.commit()
    first.close()
    thread.join(timeout=10)
    assert outcomes == ["second committed"]
    with Session(engine) as session:
        jobs = session.exec(select(OutboxJob).where(OutboxJob.kind == kind)).all()
    assert [job.payload for job in jobs] == [{"by": "first"}]


def test_a_failing_job_is_kept_and_retried_later(engine):
    kind = _kind()
    attempts = []

    @outbox.handler(kind)
    def flaky(_session, payload):
        attempts.append(1)
        raise RuntimeError("downstream unavailable")

    with Session(engine) as session:
        outbox.enqueue(session, kind=kind, payload={})
        session.commit()
    outbox.run_until_idle(engine)
    with Session(engine) as session:
        job = session.exec(select(OutboxJob).where(OutboxJob.kind == kind)).one()
        assert job.state == "pending" and job.attempts == 1 and "downstream unavailable" in job.last_error
        assert job.run_after > job.created_at  # backed off, not spinning
    assert len(attempts) == 1
