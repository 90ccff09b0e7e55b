"""Outbox job handlers of the certificate domain."""

from typing import Any

from sqlmodel import Session

from services.certificates.service import ensure_expiry_job, issue_for_case, run_expiry, today_in_china
from services.notifications.service import enqueue_case_notice
from services.outbox.service import handler


@handler("issue_certificate")
def issue_certificate_job(session: Session, payload: dict[str, Any]) -> None:
    """Issue the case's certificate and, in the same transaction, tell the applicant it is ready
    (once per certificate, however often the job runs)."""
    certificate = issue_for_case(session, case_id=payload["case_id"])
    if certificate is not None:
        enqueue_case_notice(session, case_id=certificate.case_id, event="certificate_ready", key=certificate.id)


def schedule_periodic(session: Session) -> None:
    """Called when a worker starts (services.outbox.registry): the nightly expiry run."""
    ensure_expiry_job(session, day=today_in_china())


@handler("expire_certificates")
def expire_certificates_job(session: Session, payload: dict[str, Any]) -> None:
    """Nightly: mark certificates past their validity as expired, then schedule tomorrow's run."""
    today = today_in_china()
    run_expiry(session, today)
    ensure_expiry_job(session, day=today)
