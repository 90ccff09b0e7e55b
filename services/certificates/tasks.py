"""Outbox job handlers of the certificate domain."""

from typing import Any

from sqlmodel import Session

from services.certificates.service import ensure_expiry_job, issue_for_case, run_expiry, today_in_china
from services.outbox.service import handler


@handler("issue_certificate")
def issue_certificate_job(session: Session, payload: dict[str, Any]) -> None:
    issue_for_case(session, case_id=payload["case_id"])


@handler("expire_certificates")
def expire_certificates_job(session: Session, payload: dict[str, Any]) -> None:
    """Nightly: mark certificates past their validity as expired, then schedule tomorrow's run."""
    today = today_in_china()
    run_expiry(session, today)
    ensure_expiry_job(session, day=today)
