"""Access tokens (ES256 JWTs, algorithm pinned) and rotating refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from jose import JWTError, jwt
from sqlmodel import Session, select

from services.accounts.models import RefreshToken, RevokedAccessToken
from services.config import get_settings
from services.db import utcnow
from services.errors import Unauthorized
from services.keys import load_or_create_ec_private_key

ALGORITHM = "ES256"


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


def issue_access_token(*, principal: str, roles: tuple[str, ...], family: str) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    settings = get_settings()
    lifetime = settings.access_token_minutes * 60
    now = utcnow()
    claims = {
        "sub": principal,
        "roles": list(roles),
        "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "typ": "access",
        "fam": family,
    }
    return jwt.encode(claims, _keys()[0], algorithm=ALGORITHM), lifetime


def decode_access_token(token: str) -> AccessClaims:
    """Verify signature (ES256 only: `alg: none` and HS256-with-the-public-key are refused),
    expiry, issuer and audience."""
    settings = get_settings()
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken()
        claims = jwt.decode(token, _keys()[1], algorithms=[ALGORITHM], audience=settings.jwt_audience,
                            issuer=settings.jwt_issuer)
    except JWTError as error:
        raise InvalidToken() from error
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        raise InvalidToken()
    return AccessClaims(principal=claims["sub"], roles=tuple(claims.get("roles", [])), jti=claims["jti"],
                        expires_at=int(claims["exp"]), family=str(claims.get("fam", "")))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_family() -> str:
    return str(uuid.uuid4())


def issue_refresh_token(session: Session, *, principal: str, family: str) -> str:
    settings = get_settings()
    token = secrets.token_urlsafe(32)
    session.add(RefreshToken(token_hash=_hash(token), family=family, principal=principal,
                             expires_at=utcnow() + timedelta(days=settings.refresh_token_days)))
    return token


def rotate_refresh_token(session: Session, *, token: str) -> tuple[str, str, str]:
    """Use a refresh token once: returns (principal, family, new refresh token). Reuse of an already used
    token revokes its whole family (it was probably stolen)."""
    record = session.get(RefreshToken, _hash(token))
    now = utcnow()
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        raise InvalidRefreshToken()
    if record.used_at is not None:
        revoke_family(session, family=record.family)
        error = InvalidRefreshToken(detail={"reason": "reused"})
        error.keep_changes = True
        raise error
    record.used_at = now
    session.add(record)
    new_token = issue_refresh_token(session, principal=record.principal, family=record.family)
    return record.principal, record.family, new_token


def revoke_family(session: Session, *, family: str) -> None:
    now = utcnow()
    for record in session.exec(select(RefreshToken).where(RefreshToken.family == family,
                                                          RefreshToken.revoked_at.is_(None))):
        record.revoked_at = now
        session.add(record)


def revoke_access_token(session: Session, *, claims: AccessClaims) -> None:
    from datetime import datetime, timezone

    if session.get(RevokedAccessToken, claims.jti) is None:
        session.add(RevokedAccessToken(jti=claims.jti,
                                       expires_at=datetime.fromtimestamp(claims.expires_at, timezone.utc)))


def is_access_token_revoked(session: Session, *, jti: str) -> bool:
    return session.get(RevokedAccessToken, jti) is not None
