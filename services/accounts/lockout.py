"""Staff sign-in lock-out: after `login_max_failures` failures within the window for one
account (a username, known or not, so the lock-out reveals nothing about which accounts exist)
or from one address, further attempts are refused with 429 and Retry-After until the oldest
counted failure leaves the window. A successful sign-in clears the account's count (not the
address's: an attacker must not reset it with an account of their own).

Attempts are rows of `login_attempts`, in the database every API process shares; they are the
security audit trail as well. A locked attempt is recorded but not counted, so a person waiting
out a lock-out does not extend it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from services.accounts.models import LoginAttempt
from services.accounts.settings import get_account_settings
from services.db import utcnow
from services.errors import TooManyRequests
from services.ratelimit.keys import identity_hash

FAILED = ("invalid", "wrong_current")


class TooManyAttempts(TooManyRequests):
    code = "too_many_attempts"
    message = "登录失败次数过多，请稍后再试"


def account_key(username: str) -> str:
    return identity_hash("login-account:" + username.strip().lower())


def address_key(address: str) -> str:
    return identity_hash("login-address:" + address)


def _window() -> timedelta:
    return timedelta(minutes=get_account_settings().login_failure_window_minutes)


def _locked_until(session: Session, *, condition, since: datetime) -> datetime | None:
    """When the lock on these attempts ends, or None if they are under the limit."""
    limit = get_account_settings().login_max_failures
    rows = session.exec(select(LoginAttempt.at).where(condition, LoginAttempt.reason.in_(FAILED),
                                                      LoginAttempt.at > since)
                        .order_by(LoginAttempt.at.desc()).limit(limit)).all()
    if len(rows) < limit:
        return None
    return rows[-1] + _window()


def check_not_locked(session: Session, *, username: str, address: str, now: datetime | None = None) -> None:
    """Raise TooManyAttempts (429, Retry-After) while the account or the address is locked."""
    now = now or utcnow()
    window_start = now - _window()
    key = account_key(username)
    last_success = session.exec(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.account_key == key, LoginAttempt.succeeded.is_(True), LoginAttempt.at > window_start)).one()
    until = [moment for moment in (
        _locked_until(session, condition=LoginAttempt.account_key == key, since=max(window_start, last_success or window_start)),
        _locked_until(session, condition=LoginAttempt.address_key == address_key(address), since=window_start),
    ) if moment is not None and moment > now]
    if until:
        retry_after = max(1, math.ceil((max(until) - now).total_seconds()))
        raise TooManyAttempts(detail={"retry_after": retry_after}, retry_after=retry_after)


def record_attempt(session: Session, *, username: str, address: str, staff_id: int | None, succeeded: bool,
                   reason: str) -> None:
    session.add(LoginAttempt(account_key=account_key(username), address_key=address_key(address),
                             address=address[:45], staff_id=staff_id, succeeded=succeeded, reason=reason,
                             at=utcnow()))
