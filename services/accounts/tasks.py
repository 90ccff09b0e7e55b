"""Outbox jobs of the accounts domain."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session

from services.accounts.models import LoginAttempt, RealNameAttempt
from services.accounts.tokens import purge_expired
from services.db import utcnow
from services.outbox.service import handler, schedule_daily

log = logging.getLogger("onestop.accounts")

# Sign-in attempts are kept for the security audit (等保 2.0 asks for at least six months).
LOGIN_ATTEMPTS_KEPT = timedelta(days=190)


def schedule_periodic(session: Session) -> None:
    """Called when a worker starts (services.outbox.registry): today's run, which schedules tomorrow's."""
    schedule_daily(session, kind="accounts_housekeeping", day_offset=0)


@handler("accounts_housekeeping")
def accounts_housekeeping(session: Session, payload: dict[str, Any]) -> None:
    """Purge expired token records, finished face-verification attempts and old sign-in rows;
    then schedule tomorrow's run."""
    schedule_daily(session, kind="accounts_housekeeping", day_offset=1)
    now = utcnow()
    counts = purge_expired(session, now=now)
    counts["real_name_attempts"] = session.execute(
        delete(RealNameAttempt).where(RealNameAttempt.expires_at < now - timedelta(days=1))
        .execution_options(synchronize_session=False)).rowcount
    counts["login_attempts"] = session.execute(
        delete(LoginAttempt).where(LoginAttempt.at < now - LOGIN_ATTEMPTS_KEPT)
        .execution_options(synchronize_session=False)).rowcount
    log.info("accounts housekeeping", extra={"deleted": counts})
