"""Access tokens (ES256 JWTs, algorithm pinned) and rotating refresh tokens.

Revocation: every access token handed out is recorded by its id (`jti`, random), so logout,
the reuse of a refresh token (which ends its whole family) and a password change (which ends
every session of the account) can revoke exactly the tokens concerned. The denylist lives in
Redis when configured — a key per jti that expires with the token, checked on every request by
every API process — and always in the database too, which is the durable record and the
answer when Redis is not configured or does not answer.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from jose import JWTError, jwk, jwt
from redis.exceptions import RedisError
from sqlalchemy import delete, update
from sqlmodel import Session, select

from services.accounts.models import IssuedAccessToken, RefreshToken, RevokedAccessToken
from services.config import get_settings
from services.db import utcnow
from services.errors import Unauthorized
from services.keys import load_or_create_ec_private_key
from services.ratelimit.connection import redis_client

log = logging.getLogger("onestop.accounts")

ALGORITHM = "ES256"
REVOKED_PREFIX = "onestop:revoked-jti:"


class InvalidToken(Unauthorized):
    code = "invalid_token"
    message = "登录凭证无效或已过期"


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "刷新凭证无效、已使用或已撤销"


@dataclass(frozen=True)
class AccessClaims:
    principal: str  # "citizen:12" | "staff:3"
    roles: tuple[str, ...]
    jti: str
    expires_at: int
    family: str  # the refresh-token family issued with it, so logout ends both
    issued_at: int = 0

    @property
    def kind(self) -> str:
        return self.principal.split(":", 1)[0]

    @property
    def account_id(self) -> int:
        return int(self.principal.split(":", 1)[1])


@lru_cache
def _keys() -> tuple[str, str]:
    settings = get_settings()
    key = load_or_create_ec_private_key(settings, configured=settings.jwt_private_key_path,
                                        filename="jwt-es256.pem")
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


def public_key_pem() -> str:
    return _keys()[1]


@lru_cache(maxsize=4)
def _jose_key(pem: str):
    """A PEM key parsed once: given the PEM, jose parses it again for every signature and every
    verification (half the cost of signing a token at sign-in)."""
    return jwk.construct(pem, ALGORITHM)


def new_access_token(*, principal: str, roles: tuple[str, ...], family: str
                     ) -> tuple[str, int, IssuedAccessToken]:
    """A signed access token, its lifetime in seconds, and the record of its id for the caller to
    write, so that it can be revoked with its family or its account (services.db.insert_now: at
    once, not by the unit of work, whose flush cost a sign-in ~0.4 ms)."""
    settings = get_settings()
    lifetime = settings.access_token_minutes * 60
    now = utcnow()
    expires = now + timedelta(seconds=lifetime)
    jti = str(uuid.uuid4())
    claims = {
        "sub": principal,
        "roles": list(roles),
        "jti": jti,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "typ": "access",
        "fam": family,
    }
    record = IssuedAccessToken(jti=jti, family=family, principal=principal, issued_at=now, expires_at=expires)
    return jwt.encode(claims, _jose_key(_keys()[0]), algorithm=ALGORITHM), lifetime, record


VERIFIED_CACHE_SIZE = 20_000
_verified_lock = threading.Lock()
_verified: dict[tuple, AccessClaims] = {}


def decode_access_token(token: str) -> AccessClaims:
    """Verify signature (ES256 only: `alg: none` and HS256-with-the-public-key are refused),
    expiry, issuer and audience.

    A token verified once is remembered until it expires: a client sends the same token with
    every request, and checking an ES256 signature costs more than the rest of a simple read.
    The key is the whole token (signature included) with the key and settings it was checked
    against, so nothing but that exact, already verified token can hit; revocation is checked
    per request elsewhere (services.accounts.principal_cache)."""
    settings = get_settings()
    if not isinstance(token, str) or len(token) > 4096:
        raise InvalidToken()
    cache_key = (token, id(_keys()[1]), settings.jwt_audience, settings.jwt_issuer)
    cached = _verified.get(cache_key)
    if cached is not None:
        if cached.expires_at > time.time():
            return cached
        raise InvalidToken()
    claims = _verify_access_token(token, settings)
    with _verified_lock:
        if len(_verified) >= VERIFIED_CACHE_SIZE:
            del _verified[next(iter(_verified))]  # the oldest entry
        _verified[cache_key] = claims
    return claims


def _verify_access_token(token: str, settings) -> AccessClaims:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken()
        claims = jwt.decode(token, _jose_key(_keys()[1]), algorithms=[ALGORITHM], audience=settings.jwt_audience,
                            issuer=settings.jwt_issuer)
    except (JWTError, ValueError, TypeError, KeyError) as error:
        raise InvalidToken() from error
    if (claims.get("typ") != "access" or not isinstance(claims.get("sub"), str)
            or not isinstance(claims.get("jti"), str) or not isinstance(claims.get("exp"), int)):
        raise InvalidToken()
    kind, _, raw_id = claims["sub"].partition(":")
    if kind not in ("citizen", "staff") or not raw_id.isdigit() or len(raw_id) > 18:
        raise InvalidToken()
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise InvalidToken()
    return AccessClaims(principal=claims["sub"], roles=tuple(roles), jti=claims["jti"],
                        expires_at=int(claims["exp"]), family=str(claims.get("fam", "")),
                        issued_at=int(claims.get("iat", 0)) if isinstance(claims.get("iat"), int) else 0)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_family() -> str:
    return str(uuid.uuid4())


def refresh_lifetime(principal: str) -> timedelta:
    """Staff sessions are short (an idle clerk's session ends); citizens' are long."""
    if principal.startswith("staff:"):
        from services.accounts.settings import get_account_settings

        return timedelta(hours=get_account_settings().staff_refresh_token_hours)
    return timedelta(days=get_settings().refresh_token_days)


def new_refresh_token(*, principal: str, family: str) -> tuple[str, RefreshToken]:
    """A refresh token and the record of it (its hash) for the caller to write."""
    token = secrets.token_urlsafe(32)
    return token, RefreshToken(token_hash=_hash(token), family=family, principal=principal,
                               expires_at=utcnow() + refresh_lifetime(principal))


def use_refresh_token(session: Session, *, token: str) -> tuple[str, str]:
    """Use a refresh token once: returns (principal, family) for the caller to issue the next pair
    in. Reuse of an already used token revokes its whole family (it was probably stolen) and the
    access tokens issued in it.

    The use is one conditional UPDATE, so two requests racing with the same token cannot both
    succeed: the second one sees it used, which counts as reuse."""
    token_hash = _hash(token)
    now = utcnow()
    used = session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None),
               RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    record = session.get(RefreshToken, token_hash)
    if used != 1:
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            raise InvalidRefreshToken()
        revoke_family(session, family=record.family)
        log.warning("refresh token reused: family revoked", extra={"principal": record.principal})
        error = InvalidRefreshToken(detail={"reason": "reused"})
        error.keep_changes = True
        raise error
    return record.principal, record.family


def revoke_family(session: Session, *, family: str) -> None:
    """End a refresh-token family: its refresh tokens and every access token issued in it."""
    now = utcnow()
    session.execute(update(RefreshToken).where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now).execution_options(synchronize_session=False))
    live = session.exec(select(IssuedAccessToken.jti, IssuedAccessToken.expires_at)
                        .where(IssuedAccessToken.family == family, IssuedAccessToken.expires_at > now)).all()
    _deny(session, [(jti, expires_at) for jti, expires_at in live])


def revoke_principal(session: Session, *, principal: str, keep_family: str | None = None) -> None:
    """End every session of an account (password change, deactivation), except `keep_family`."""
    now = utcnow()
    condition = (RefreshToken.principal == principal) & RefreshToken.revoked_at.is_(None)
    if keep_family:
        condition = condition & (RefreshToken.family != keep_family)
    session.execute(update(RefreshToken).where(condition).values(revoked_at=now)
                    .execution_options(synchronize_session=False))
    query = select(IssuedAccessToken.jti, IssuedAccessToken.expires_at).where(
        IssuedAccessToken.principal == principal, IssuedAccessToken.expires_at > now)
    if keep_family:
        query = query.where(IssuedAccessToken.family != keep_family)
    _deny(session, [(jti, expires_at) for jti, expires_at in session.exec(query).all()])


def revoke_access_token(session: Session, *, claims: AccessClaims) -> None:
    _deny(session, [(claims.jti, datetime.fromtimestamp(claims.expires_at, timezone.utc))])


def _deny(session: Session, tokens: list[tuple[str, datetime]]) -> None:
    """Put access tokens on the denylist: in the database (durable), and in Redis when
    configured, each key living exactly as long as its token."""
    if not tokens:
        return
    known = set(session.exec(select(RevokedAccessToken.jti)
                             .where(RevokedAccessToken.jti.in_([jti for jti, _ in tokens]))).all())
    for jti, expires_at in tokens:
        if jti not in known:
            session.add(RevokedAccessToken(jti=jti, expires_at=expires_at))
            known.add(jti)
    client = redis_client()
    if client is None:
        return
    now = utcnow()
    try:
        with client.pipeline(transaction=False) as pipe:
            for jti, expires_at in tokens:
                ttl_ms = int((expires_at - now).total_seconds() * 1000) + 1000
                if ttl_ms > 0:
                    pipe.set(REVOKED_PREFIX + jti, "1", px=ttl_ms)
            pipe.execute()
    except RedisError as error:
        # the database row is written; checks fall back to it while Redis does not answer
        log.warning("token denylist: Redis unavailable", extra={"error": type(error).__name__})


def is_access_token_revoked(session: Session, *, jti: str) -> bool:
    """Whether an access token was revoked: Redis when configured (one round trip, shared by
    all processes), else — or when Redis does not answer — the database."""
    client = redis_client()
    if client is not None:
        try:
            return bool(client.exists(REVOKED_PREFIX + jti))
        except RedisError as error:
            log.warning("token denylist: Redis unavailable, asking the database",
                        extra={"error": type(error).__name__})
    return session.get(RevokedAccessToken, jti) is not None


def purge_expired(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """Delete what can no longer matter: expired access-token records and denylist rows,
    refresh tokens a day past their expiry."""
    now = now or utcnow()
    counts = {
        "issued_access_tokens": session.execute(delete(IssuedAccessToken).where(IssuedAccessToken.expires_at < now)
                                                .execution_options(synchronize_session=False)).rowcount,
        "revoked_access_tokens": session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < now)
                                                 .execution_options(synchronize_session=False)).rowcount,
        "refresh_tokens": session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now - timedelta(days=1))
                                          .execution_options(synchronize_session=False)).rowcount,
    }
    return counts
