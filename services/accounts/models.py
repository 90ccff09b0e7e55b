from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow


class CitizenAccount(SQLModel, table=True):
    """A mini-program user, known by their WeChat openid; bound to a subject after real-name
    verification (one account per verified number)."""

    __tablename__ = "citizen_accounts"
    id: int | None = Field(default=None, primary_key=True)
    openid: str = Field(max_length=64, unique=True)
    subject_id: int | None = Field(default=None, foreign_key="subjects.id", unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class RealNameAttempt(SQLModel, table=True):
    """A face-verification in progress: what the citizen claimed, until WeChat confirms it."""

    __tablename__ = "real_name_attempts"
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="citizen_accounts.id", index=True)
    verify_id: str = Field(max_length=128, unique=True)
    out_seq_no: str = Field(max_length=64)
    name: str = Field(max_length=100)
    number_type: str = Field(max_length=40)
    number_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    number_hash: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored as its SHA-256. Rotated on use; reuse revokes the family."""

    __tablename__ = "refresh_tokens"
    token_hash: str = Field(primary_key=True, max_length=64)
    family: str = Field(max_length=36, index=True)
    principal: str = Field(max_length=40)  # "citizen:12" or "staff:3"
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class RevokedAccessToken(SQLModel, table=True):
    """Access tokens ended by logout before their expiry (the database denylist; Redis when
    configured is checked first)."""

    __tablename__ = "revoked_access_tokens"
    jti: str = Field(primary_key=True, max_length=36)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class IssuedAccessToken(SQLModel, table=True):
    """Every access token handed out (its id, not the token): what lets a whole refresh family
    or every session of an account (a password change) be revoked token by token."""

    __tablename__ = "issued_access_tokens"
    jti: str = Field(primary_key=True, max_length=36)
    family: str = Field(max_length=36, index=True)
    principal: str = Field(max_length=40, index=True)
    issued_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class LoginAttempt(SQLModel, table=True):
    """A staff password sign-in (or password check), kept for the lock-out and the security
    audit (等保 2.0: 登录失败处理, 安全审计). The username is kept only as a keyed hash, so a
    password typed into the username field is not stored."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_account_key_at", "account_key", "at"),
        Index("ix_login_attempts_address_key_at", "address_key", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_key: str = Field(max_length=32)
    address_key: str = Field(max_length=32)
    address: str = Field(default="", max_length=45)
    staff_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    succeeded: bool = False
    reason: str = Field(max_length=20)  # ok | invalid | locked | password_changed | wrong_current
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
