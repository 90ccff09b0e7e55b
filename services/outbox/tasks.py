"""The outbox's own housekeeping: finished jobs are deleted after a while, so the table holds
what is pending, running, failed and the recent past — not every notification ever sent."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session

from services.db import utcnow
from services.outbox.models import OutboxJob
from services.outbox.service import handler, schedule_daily

log = logging.getLogger("onestop.outbox")

# Long enough to look into what a job did last month; failed jobs are kept until someone acts.
DONE_JOBS_KEPT = timedelta(days=30)


def schedule_periodic(session: Session) -> None:
    """Called when a worker starts (services.outbox.registry): today's run, which schedules tomorrow's."""
    schedule_daily(session, kind="outbox_housekeeping", day_offset=0)


@handler("outbox_housekeeping")
def outbox_housekeeping(session: Session, payload: dict[str, Any]) -> None:
    """Delete the jobs that finished more than DONE_JOBS_KEPT ago; then schedule tomorrow's run.
    A deleted job's dedupe key is free again: every key in use names a day, a case or a
    certificate whose job would not be queued again a month later."""
    schedule_daily(session, kind="outbox_housekeeping", day_offset=1)
    deleted = session.execute(
        delete(OutboxJob).where(OutboxJob.state == "done", OutboxJob.finished_at < utcnow() - DONE_JOBS_KEPT)
        .execution_options(synchronize_session=False)).rowcount
    log.info("outbox housekeeping", extra={"deleted": deleted})
