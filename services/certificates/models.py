from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field

from services.db import SQLModel, UTCDateTime, utcnow

STATUS_LABELS = {
    "valid": "有效",
    "suspended": "暂扣",
    "annulled": "撤销",
    "cancelled": "注销",
    "expired": "失效",
    "revoked": "吊销",
}


class Certificate(SQLModel, table=True):
    """电子证照 registry entry. One per case and certificate type (the unique constraint is what
    makes issuing exactly-once under crashes and racing workers).

    The metadata follows GB/T 36903 as used in practice: name (type_name), type code, number,
    identifier, issuer and its code, issue date, holder (subject, masked code, code type),
    validity and jurisdiction."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("case_id", "cert_type"),
        Index("ix_certificates_holder_subject_id_issued_at", "holder_subject_id", "issued_at"),
        Index("ix_certificates_status_valid_until", "status", "valid_until"),
        Index("ix_certificates_pdf_sha256", "pdf_sha256"),
    )
    id: str = Field(primary_key=True, max_length=36)
    identifier: str = Field(max_length=120, unique=True)
    cert_type: str = Field(max_length=64)
    type_code: str = Field(max_length=21)
    type_name: str = Field(max_length=100)
    case_id: str = Field(foreign_key="cases.id")
    holder_subject_id: int = Field(foreign_key="subjects.id")
    holder_hash: str = Field(max_length=64, index=True)
    holder_masked: str = Field(max_length=24)
    issuer_name: str = Field(max_length=100)
    issuer_code: str = Field(max_length=18)
    serial: str = Field(max_length=40)
    status: str = Field(default="valid", max_length=12)
    issued_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    valid_from: date
    valid_until: date | None = None
    storage_key: str = Field(max_length=200)
    pdf_sha256: str = Field(max_length=64)
    content_sha256: str = Field(max_length=64)
    fields: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # added by 20261126_0005 (nullable or defaulted: rows written before it, and bulk loaders
    # that do not know these columns, stay valid)
    number: str | None = Field(default=None, max_length=64)
    holder_code_type: str = Field(default="111", max_length=3, sa_column_kwargs={"server_default": "111"})
    holder_name_masked: str | None = Field(default=None, max_length=100)
    jurisdiction_code: str | None = Field(default=None, max_length=12)
    signer_fingerprint: str | None = Field(default=None, max_length=64)
    status_changed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class CertificateStatusEvent(SQLModel, table=True):
    """Every status change of a certificate: from, to, who, when, why (issuing is the first)."""

    __tablename__ = "certificate_status_events"
    id: int | None = Field(default=None, primary_key=True)
    certificate_id: str = Field(foreign_key="certificates.id", index=True, max_length=36)
    from_status: str | None = Field(default=None, max_length=12)
    to_status: str = Field(max_length=12)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    actor: str = Field(max_length=40)  # "staff:3", "system"
    actor_name: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class CertificateUsage(SQLModel, table=True):
    """One use of a certificate, for its holder to read: who (holder, staff, third party), when,
    for what, on which case. Public checks by anonymous verifiers are in CertificatePublicCheck
    and shown in the same list."""

    __tablename__ = "certificate_usages"
    __table_args__ = (Index("ix_certificate_usages_certificate_id_created_at", "certificate_id", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    certificate_id: str = Field(foreign_key="certificates.id", max_length=36)
    actor_kind: str = Field(max_length=16)  # holder | staff | third_party
    actor: str = Field(max_length=60)  # principal key, or grant:<id>
    actor_name: str = Field(default="", max_length=200)
    purpose: str = Field(max_length=300)
    case_id: str | None = Field(default=None, foreign_key="cases.id", max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class CertificateGrant(SQLModel, table=True):
    """A holder's time-limited permission for a third party to see a certificate (a link with a
    secret token; only the token's hash is kept)."""

    __tablename__ = "certificate_grants"
    id: str = Field(primary_key=True, max_length=36)
    certificate_id: str = Field(foreign_key="certificates.id", index=True, max_length=36)
    grantee: str = Field(max_length=200)
    grantee_code: str | None = Field(default=None, max_length=18)  # the third party's credit code
    purpose: str = Field(max_length=300)
    token_hash: str = Field(max_length=64, unique=True)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    use_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class CertificatePublicCheck(SQLModel, table=True):
    """Every public status check and verification: what was asked, when, the answer, and the
    client's address as a keyed hash (never the address). Written in batches (checklog.py)."""

    __tablename__ = "certificate_public_checks"
    __table_args__ = (
        Index("ix_certificate_public_checks_certificate_id_created_at", "certificate_id", "created_at"),
        Index("ix_certificate_public_checks_created_at", "created_at"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                          primary_key=True, autoincrement=True))
    kind: str = Field(max_length=10)  # status | verify | shared
    identifier: str | None = Field(default=None, max_length=120)
    certificate_id: str | None = Field(default=None, max_length=36)
    result: str = Field(max_length=32)
    client_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
