"""The transactional outbox: effects are written with the change that causes them, then run by
a worker. Workers claim with row locks that skip locked rows (PostgreSQL) or with a single
conditional UPDATE (SQLite), so any number can run at once; every handler is idempotent."""

from __future__ import annotations

import logging
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from services.db import Write, insert_ignoring_conflicts, row_of, utcnow, write_at_once
from services.outbox.models import OutboxJob

log = logging.getLogger("onestop.outbox")

Handler = Callable[[Session, dict[str, Any]], None]
_handlers: dict[str, Handler] = {}
_wakeup = threading.Event()
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of this kind."""
    def register(function: Handler) -> Handler:
        _handlers[kind] = function
        return function
    return register


def enqueue(session: Session, *, kind: str, payload: dict[str, Any], dedupe_key: str | None = None,
            run_after: datetime | None = None) -> None:
    """Add a job in the caller's transaction (to run now, or not before `run_after`). A job with
    the same dedupe_key is added once: one INSERT … ON CONFLICT DO NOTHING, which also holds when
    two transactions add the same key at once (the second waits for the first, then adds nothing)."""
    job = OutboxJob(kind=kind, payload=payload, dedupe_key=dedupe_key)
    if run_after is not None:
        job.run_after = run_after
    if dedupe_key is None:
        session.add(job)
        _wakeup.set()
    else:
        write_at_once(session, adding_jobs(session, [job]))


def schedule_daily(session: Session, *, kind: str, day_offset: int) -> None:
    """A once-a-day job (housekeeping): today's run (`day_offset` 0, due now) or a later day's
    (due then); the date is its dedupe key, so any number of workers queue it once."""
    day = utcnow() + timedelta(days=day_offset)
    enqueue(session, kind=kind, payload={}, dedupe_key=f"{kind}:{day:%Y-%m-%d}", run_after=day if day_offset else None)


def adding_jobs(session: Session, jobs: list[OutboxJob]) -> Write:
    """The write that adds these jobs, each dedupe_key once (as `enqueue` does), for the caller
    to run with the change that causes them (services.db.write_at_once)."""
    if any(job.dedupe_key is None for job in jobs):
        raise ValueError("jobs written with other writes need a dedupe_key")
    _wakeup.set()  # early is harmless: a worker that finds nothing yet polls again
    return Write(insert_ignoring_conflicts(session, OutboxJob.__table__, index_elements=["dedupe_key"]),
                 [row_of(job) for job in jobs])


def worker_id() -> str:
    return f"{socket.gethostname()}:{threading.get_ident()}:{uuid.uuid4().hex[:6]}"


def claim_next(session: Session, *, worker: str, kinds: tuple[str, ...] | None = None) -> OutboxJob | None:
    """Claim one due job (or one whose lease ran out after a crash) and commit the claim; only
    one of these `kinds`, if given."""
    now = utcnow()
    due = ((OutboxJob.state == "pending") & (OutboxJob.run_after <= now)) | (
        (OutboxJob.state == "running") & (OutboxJob.locked_until < now))
    if kinds is not None:
        due = due & OutboxJob.kind.in_(kinds)
    query = select(OutboxJob.id).where(due).order_by(OutboxJob.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    job_id = session.exec(query).first()
    if job_id is None:
        session.rollback()
        return None
    claimed = session.execute(
        update(OutboxJob).where(OutboxJob.id == job_id, due)
        .values(state="running", locked_by=worker, locked_until=now + LEASE, attempts=OutboxJob.attempts + 1)
    ).rowcount
    session.commit()
    if not claimed:  # another SQLite worker got there between our SELECT and UPDATE
        return None
    return session.get(OutboxJob, job_id)


def run_one(engine, *, worker: str, kinds: tuple[str, ...] | None = None) -> bool:
    """Claim and run one job (of these `kinds`, if given). Returns False when nothing was due."""
    with Session(engine, expire_on_commit=False) as session:
        job = claim_next(session, worker=worker, kinds=kinds)
        if job is None:
            return False
        job_id, kind, payload = job.id, job.kind, dict(job.payload)
    function = _handlers.get(kind)
    with Session(engine, expire_on_commit=False) as session:
        try:
            if function is None:
                raise LookupError(f"no handler for job kind {kind!r}")
            function(session, payload)
            session.execute(update(OutboxJob).where(OutboxJob.id == job_id, OutboxJob.locked_by == worker)
                            .values(state="done", finished_at=utcnow(), locked_until=None, last_error=None))
            session.commit()
            log.info("job done", extra={"job_id": job_id, "kind": kind})
        except Exception as error:  # a failed job is retried with backoff, never lost
            session.rollback()
            _record_failure(session, job_id=job_id, worker=worker, error=error)
    return True


def _record_failure(session: Session, *, job_id: int, worker: str, error: Exception) -> None:
    job = session.get(OutboxJob, job_id)
    if job is None or job.locked_by != worker:
        return
    final = job.attempts >= MAX_ATTEMPTS
    job.state = "failed" if final else "pending"
    job.run_after = utcnow() + timedelta(seconds=min(2 ** job.attempts, 600))
    job.locked_until = None
    job.last_error = "".join(traceback.format_exception_only(type(error), error))[-2000:]
    session.add(job)
    session.commit()
    log.warning("job failed", extra={"job_id": job_id, "kind": job.kind, "attempts": job.attempts, "final": final})


def run_until_idle(engine, *, worker: str | None = None, limit: int = 1000,
                   kinds: tuple[str, ...] | None = None) -> int:
    """Run due jobs (of these `kinds`, if given) until none is left (tests, the CLI, the
    benchmark). Returns how many ran."""
    worker = worker or worker_id()
    count = 0
    while count < limit and run_one(engine, worker=worker, kinds=kinds):
        count += 1
    return count


def run_forever(engine, *, stop: threading.Event, poll_seconds: float) -> None:
    """The worker loop: run jobs, then sleep until woken by an enqueue or the poll interval."""
    worker = worker_id()
    while not stop.is_set():
        try:
            ran = run_one(engine, worker=worker)
        except Exception:  # the database may be briefly unavailable; keep the worker alive
            log.exception("worker loop error")
            ran = False
        if not ran:
            _wakeup.wait(poll_seconds)
            _wakeup.clear()
