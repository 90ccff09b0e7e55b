"""Periodic jobs are queued when a worker starts, once however many workers start, and each run
queues the next."""

from __future__ import annotations

from sqlmodel import Session, select

from services.db import get_engine
from services.outbox.models import OutboxJob
from services.outbox.registry import schedule_periodic_jobs
from services.outbox.service import _handlers


def _pending(kind: str) -> list[OutboxJob]:
    with Session(get_engine()) as session:
        return list(session.exec(select(OutboxJob).where(OutboxJob.kind == kind, OutboxJob.state == "pending")))


def test_starting_workers_queues_each_periodic_job_once(seeded):
    schedule_periodic_jobs(get_engine())
    schedule_periodic_jobs(get_engine())  # a second worker, or a restart
    for kind in ("sla_sweep", "accounts_housekeeping", "outbox_housekeeping"):
        jobs = _pending(kind)
        assert len({job.dedupe_key for job in jobs}) == len(jobs) >= 1, kind


def test_a_housekeeping_run_queues_tomorrows(session):
    from datetime import timedelta

    from services.db import utcnow

    _handlers["accounts_housekeeping"](session, {})
    session.flush()
    tomorrow = f"accounts_housekeeping:{utcnow() + timedelta(days=1):%Y-%m-%d}"
    job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == tomorrow)).one()
    assert job.state == "pending" and job.run_after > utcnow() + timedelta(hours=23)


def test_outbox_housekeeping_deletes_jobs_done_a_month_ago_and_keeps_the_rest(session):
    import uuid
    from datetime import timedelta

    from services.db import utcnow
    from services.outbox.tasks import DONE_JOBS_KEPT

    kind = f"test-{uuid.uuid4().hex[:8]}"
    long_ago = utcnow() - DONE_JOBS_KEPT - timedelta(hours=1)
    jobs = {name: OutboxJob(kind=kind, payload={"name": name}, state=state, finished_at=finished)
            for name, state, finished in (("old done", "done", long_ago),
                                          ("recent done", "done", utcnow() - DONE_JOBS_KEPT + timedelta(hours=1)),
                                          ("old failed", "failed", long_ago),
                                          ("pending", "pending", None))}
    session.add_all(jobs.values())
    session.flush()
    _handlers["outbox_housekeeping"](session, {})
    session.expire_all()
    left = {job.payload["name"] for job in session.exec(select(OutboxJob).where(OutboxJob.kind == kind))}
    assert left == {"recent done", "old failed", "pending"}
    tomorrow = f"outbox_housekeeping:{utcnow() + timedelta(days=1):%Y-%m-%d}"
    assert session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == tomorrow)).one().state == "pending"
