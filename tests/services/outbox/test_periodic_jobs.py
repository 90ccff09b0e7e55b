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
    sweeps, housekeeping = _pending("sla_sweep"), _pending("accounts_housekeeping")
    assert len({job.dedupe_key for job in sweeps}) == len(sweeps) >= 1
    assert len(housekeeping) >= 1 and len({job.dedupe_key for job in housekeeping}) == len(housekeeping)


def test_a_housekeeping_run_queues_tomorrows(session):
    from datetime import timedelta

    from services.db import utcnow

    _handlers["accounts_housekeeping"](session, {})
    session.flush()
    tomorrow = f"accounts_housekeeping:{utcnow() + timedelta(days=1):%Y-%m-%d}"
    job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == tomorrow)).one()
    assert job.state == "pending" and job.run_after > utcnow() + timedelta(hours=23)
