from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field

import services.bundles.models  # noqa: F401  (cases.bundle_case_id refers to its table)
from services.db import SQLModel, UTCDateTime, utcnow


class Case(SQLModel, table=True):
    """办件: one application of one matter by one subject."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_handling_point_id_state", "handling_point_id", "state"),
        Index("ix_cases_subject_id_submitted_at", "subject_id", "submitted_at"),
        # lists, newest first: a point's queue, a region (supervisor), an assisted applicant
        Index("ix_cases_handling_point_id_submitted_at_id", "handling_point_id", "submitted_at", "id"),
        Index("ix_cases_receiving_point_id_submitted_at_id", "receiving_point_id", "submitted_at", "id"),
        Index("ix_cases_submitted_at_id", "submitted_at", "id"),
        # the SLA sweep
        Index("ix_cases_sla_state_due_date", "sla_state", "due_date"),
        Index("ix_cases_sla_flag", "sla_flag"),
        Index("ix_cases_escalation_level_escalated_at", "escalation_level", "escalated_at"),
    )
    id: str = Field(primary_key=True, max_length=36)
    number: str = Field(max_length=32, unique=True)
    matter_code: str = Field(max_length=64, index=True)
    matter_version: int
    state: str = Field(max_length=20)
    version: int = 1
    subject_id: int = Field(foreign_key="subjects.id")
    subject_hash: str = Field(max_length=64)  # partition key (DESIGN.md §7)
    applicant_name: str = Field(max_length=100)
    region_code: str = Field(max_length=12, index=True)
    receiving_channel: str = Field(max_length=10)  # online | window | helper
    receiving_point_id: int | None = Field(default=None, foreign_key="service_points.id")
    handling_point_id: int = Field(foreign_key="service_points.id")
    assignee_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    routing_reason: str = Field(sa_column=Column(Text, nullable=False))
    form: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=10)  # self | helper
    created_by_principal: str = Field(max_length=40, index=True)
    submitted_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    accepted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    due_date: date | None = None
    legal_due_date: date | None = None
    sla_state: str = Field(default="not_started", max_length=12)
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    # The state a suspended case goes back to on `resume`.
    previous_state: str | None = Field(default=None, max_length=20)
    # While the clock is paused: the working days that were left to each deadline.
    sla_days_left: int | None = None
    sla_legal_days_left: int | None = None
    sla_paused_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    suspend_until: date | None = None  # the last working day of a suspension's maximum length
    extension_days: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # The complete 一次性告知 list of the latest correction request.
    correction_items: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Marked by the SLA sweep: ok | due_soon | overdue (meaningful while the clock runs).
    sla_flag: str = Field(default="ok", sa_column=Column(String(10), nullable=False, server_default="ok"))
    escalation_level: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    escalated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    delivery_method: str | None = Field(default=None, max_length=10)  # window | mail | online
    bundle_case_id: str | None = Field(default=None, foreign_key="bundle_cases.id", index=True, max_length=36)


class CaseEscalation(SQLModel, table=True):
    """An overdue case raised to a supervisor: level 1 the handling point's, level 2 the one above.
    Unique per (case, level), so a sweep run twice or on two workers escalates once."""

    __tablename__ = "case_escalations"
    __table_args__ = (UniqueConstraint("case_id", "level"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", max_length=36)
    level: int
    service_point_id: int | None = Field(default=None, foreign_key="service_points.id")
    supervisor_id: int | None = Field(default=None, foreign_key="staff.id")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class CaseMaterial(SQLModel, table=True):
    """One material of a case: an uploaded file or a cited e-certificate."""

    __tablename__ = "case_materials"
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id", index=True)
    code: str = Field(max_length=64)
    file_id: str | None = Field(default=None, foreign_key="files.id")
    certificate_id: str | None = Field(default=None, foreign_key="certificates.id")


class CaseEvent(SQLModel, table=True):
    """Append-only, hash-chained history of a case."""

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="cases.id")
    seq: int
    action: str = Field(max_length=40)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str = Field(max_length=20)
    actor: str = Field(max_length=40)  # "citizen:12", "staff:3", "system"
    actor_name: str = Field(default="", max_length=100)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class IdempotencyRecord(SQLModel, table=True):
    """Which case an (account, Idempotency-Key) pair created, and a hash of the request."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=40)
    key: str = Field(max_length=200)
    request_sha256: str = Field(max_length=64)
    case_id: str = Field(foreign_key="cases.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
