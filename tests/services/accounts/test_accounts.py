"""Accounts: the lock-out's window, token records and their purge, session-wide revocation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlmodel import select

from services.accounts import lockout, tokens
from services.accounts.models import IssuedAccessToken, LoginAttempt, RefreshToken, RevokedAccessToken
from services.accounts.settings import get_account_settings
from services.db import utcnow


def _fail(session, username: str, address: str, at) -> None:
    session.add(LoginAttempt(account_key=lockout.account_key(username), address_key=lockout.address_key(address),
                             address=address, succeeded=False, reason="invalid", at=at))
    session.flush()


def test_the_lock_lifts_when_the_oldest_counted_failure_leaves_the_window(session):
    settings = get_account_settings()
    username, now = f"u-{uuid.uuid4().hex[:8]}", utcnow()
    window = timedelta(minutes=settings.login_failure_window_minutes)
    for index in range(settings.login_max_failures):
        _fail(session, username, f"10.0.0.{index}", now - window + timedelta(minutes=1 + index * 0.1))
    with pytest.raises(lockout.TooManyAttempts) as locked:
        lockout.check_not_locked(session, username=username, address="10.9.9.9", now=now)
    assert 55 <= locked.value.retry_after <= 61
    lockout.check_not_locked(session, username=username, address="10.9.9.9", now=now + timedelta(minutes=1, seconds=1))
    lockout.check_not_locked(session, username="someone-else", address="10.9.9.9", now=now)


def test_usernames_are_matched_case_insensitively_and_stored_hashed(session):
    assert lockout.account_key(" Clerk-1 ") == lockout.account_key("clerk-1")
    assert "clerk" not in lockout.account_key("clerk-1") and len(lockout.account_key("clerk-1")) == 32


def test_a_password_change_revokes_every_session_but_the_kept_one(session):
    principal = f"staff:{uuid.uuid4().int % 10**9}"
    families = [tokens.new_family() for _ in range(3)]
    issued = []
    for family in families:
        token, _, record = tokens.new_access_token(principal=principal, roles=("clerk",), family=family)
        session.add(record)
        session.add(tokens.new_refresh_token(principal=principal, family=family)[1])
        issued.append(tokens.decode_access_token(token))
    session.flush()
    tokens.revoke_principal(session, principal=principal, keep_family=families[0])
    session.flush()
    revoked = [tokens.is_access_token_revoked(session, jti=claims.jti) for claims in issued]
    assert revoked == [False, True, True]
    refresh = session.exec(select(RefreshToken).where(RefreshToken.principal == principal)).all()
    assert sorted(record.revoked_at is None for record in refresh) == [False, False, True]


def test_expired_records_are_purged(session):
    past = utcnow() - timedelta(days=3)
    jti = str(uuid.uuid4())
    session.add(IssuedAccessToken(jti=jti, family="f", principal="citizen:1", issued_at=past, expires_at=past))
    session.add(RevokedAccessToken(jti=jti, expires_at=past))
    session.add(RefreshToken(token_hash=uuid.uuid4().hex * 2, family="f", principal="citizen:1", expires_at=past))
    session.flush()
    counts = tokens.purge_expired(session)
    assert counts["issued_access_tokens"] >= 1 and counts["revoked_access_tokens"] >= 1 and counts["refresh_tokens"] >= 1
    assert session.get(IssuedAccessToken, jti) is None


def test_the_housekeeping_job_is_registered_and_runs(session):
    from services.outbox.registry import register_all_handlers
    from services.outbox.service import _handlers

    register_all_handlers()
    _handlers["accounts_housekeeping"](session, {})


def test_a_token_with_garbage_claims_is_refused(session):
    from jose import jwt

    from services.config import get_settings

    settings = get_settings()
    base = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "typ": "access", "exp": 4_000_000_000,
            "jti": "x", "sub": "citizen:1"}
    for claims in ({**base, "roles": "admin"}, {**base, "roles": [1]}, {**base, "jti": 5}, {**base, "exp": "soon"},
                   {**base, "sub": "citizen:-1"}):
        token = jwt.encode(claims, tokens._keys()[0], algorithm="ES256")
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(token)


def test_staff_sessions_are_short_and_citizens_long(session):
    from services.config import get_settings

    assert tokens.refresh_lifetime("staff:1") == timedelta(hours=get_account_settings().staff_refresh_token_hours)
    assert tokens.refresh_lifetime("citizen:1") == timedelta(days=get_settings().refresh_token_days)
    record = tokens.new_refresh_token(principal="staff:1", family="f")[1]
    assert record.expires_at - utcnow() <= timedelta(hours=get_account_settings().staff_refresh_token_hours)
