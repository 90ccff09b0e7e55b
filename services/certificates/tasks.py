"""Outbox job handlers of the certificate domain."""

from typing import Any

from sqlmodel import Session

from services.certificates.service import issue_for_case
from services.outbox.service import handler


@handler("issue_certificate")
def issue_certificate_job(session: Session, payload: dict[str, Any]) -> None:
    issue_for_case(session, case_id=payload["case_id"])
