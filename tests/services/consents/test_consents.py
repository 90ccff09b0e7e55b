"""The consent checks the case engine relies on: require_consent consumes exactly one valid
consent, naming this helper, this person and this matter; the paper-consent guard."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from services.accounts.models import CitizenAccount
from services.accounts.service import citizen_principal, staff_principal
from services.consents import service
from services.consents.models import Consent
from services.db import session_scope, utcnow
from services.files.models import StoredFile
from services.points.models import ServicePoint, Staff
from tests.services.accounts.helpers import insert_case, insert_subject

HELPER = "helper-361130102200"
OTHER_HELPER = "helper-361130103200"


def _staff(session, username):
    staff = session.exec(select(Staff).where(Staff.username == username)).one()
    return staff, staff_principal(session, staff)


def _citizen(session):
    subject = insert_subject(session, name="李四")
    account = CitizenAccount(openid=f"o{subject.id}-{subject.number_hash[:20]}", subject_id=subject.id)
    session.add(account)
    session.flush()
    return subject, citizen_principal(session, account)


@pytest.fixture
def parties(session, seeded):
    helper, helper_principal = _staff(session, HELPER)
    subject, citizen = _citizen(session)
    consent = service.create_consent(session, principal=citizen, helper_id=helper.id,
                                     matter_code="residence-certificate")
    return {"helper": helper_principal, "subject": subject, "citizen": citizen, "consent": consent}


def _require(session, parties, **overrides):
    arguments = {"helper": parties["helper"], "applicant_subject": parties["subject"],
                 "matter_code": "residence-certificate", "consent_id": parties["consent"].id}
    arguments.update(overrides)
    return service.require_consent(session, **arguments)


def _reason(error) -> str:
    return error.value.detail[0]["reason"]


def test_a_valid_consent_is_consumed_once(session, parties):
    consent = _require(session, parties)
    assert consent.used_at is not None and service.status_of(consent) == "used"
    with pytest.raises(service.ConsentNotUsable) as error:
        _require(session, parties)
    assert _reason(error) == "used"


def test_it_must_name_this_helper_person_and_matter(session, parties):
    _, other_helper = _staff(session, OTHER_HELPER)
    with pytest.raises(service.ConsentNotUsable) as error:
        _require(session, parties, helper=other_helper)
    assert _reason(error) == "not_found"
    someone_else = insert_subject(session)
    with pytest.raises(service.ConsentNotUsable) as error:
        _require(session, parties, applicant_subject=someone_else)
    assert _reason(error) == "wrong_applicant"
    with pytest.raises(service.ConsentNotUsable) as error:
        _require(session, parties, matter_code="food-business-license")
    assert _reason(error) == "wrong_matter"
    with pytest.raises(service.ConsentRequired):
        _require(session, parties, consent_id=None)
    with pytest.raises(service.ConsentNotUsable):
        _require(session, parties, consent_id="no-such-consent")
    _, clerk = _staff(session, "clerk-361130102200")
    with pytest.raises(service.HelperOnly):
        _require(session, parties, helper=clerk)
    assert parties["consent"].used_at is None  # none of that consumed it


def test_expired_and_revoked_consents_are_refused(session, parties):
    parties["consent"].expires_at = utcnow() - timedelta(seconds=1)
    session.add(parties["consent"])
    with pytest.raises(service.ConsentNotUsable) as error:
        _require(session, parties)
    assert _reason(error) == "expired"
    parties["consent"].expires_at = utcnow() + timedelta(days=1)
    service.revoke_consent(session, principal=parties["citizen"], consent_id=parties["consent"].id)
    with pytest.raises(service.ConsentNotUsable) as error:
        _require(session, parties)
    assert _reason(error) == "revoked"


def test_a_citizen_cannot_hold_too_many_active_consents(session, parties, monkeypatch):
    from services.consents.settings import get_consent_settings

    monkeypatch.setattr(get_consent_settings(), "max_active_per_person", 2)
    helper_id = parties["helper"].account_id
    service.create_consent(session, principal=parties["citizen"], helper_id=helper_id, matter_code="residence-certificate")
    with pytest.raises(service.TooManyConsents):
        service.create_consent(session, principal=parties["citizen"], helper_id=helper_id,
                               matter_code="residence-certificate")


def test_the_paper_consent_guard(session, seeded):
    helper, helper_principal = _staff(session, HELPER)
    scan = StoredFile(id="scan-" + helper_principal.key.replace(":", "-") + str(utcnow().timestamp()), sha256="0" * 64,
                      size=1, content_type="application/pdf", storage_key="files/xx/none", uploader=helper_principal.key)
    session.add(scan)
    session.flush()
    from tests.support import make_id_number

    consent = service.create_paper_consent(session, principal=helper_principal, matter_code="residence-certificate",
                                           applicant_name="王大妈", id_number=make_id_number(), file_id=scan.id)
    assert consent.confirmation == "pending" and scan.kept_by == f"consent:{consent.id}"
    point = session.get(ServicePoint, helper.service_point_id)
    case = insert_case(session, subject_id=consent.subject_id, handling_point_id=point.id, state="submitted",
                       closed_days_ago=None, created_by="helper", created_by_principal=helper_principal.key)
    plain = insert_case(session, subject_id=consent.subject_id, handling_point_id=point.id, state="submitted",
                        closed_days_ago=None)
    from services.subjects.models import Subject

    subject = session.get(Subject, consent.subject_id)
    used = service.require_consent(session, helper=helper_principal, applicant_subject=subject,
                                   matter_code="residence-certificate", consent_id=consent.id)
    service.use_consent(session, consent=used, case_id=case.id)
    assert scan.case_id == case.id
    assert service.paper_consent_confirmed(session, case.id) is False
    assert service.consent_guard_failures(session, case_id=case.id)[0]["reason"] == "paper_consent_unconfirmed"
    assert service.paper_consent_confirmed(session, plain.id) is True
    assert service.consent_guard_failures(session, case_id=plain.id) == []
    _, clerk = _staff(session, "clerk-361130102200")
    service.confirm_paper_consent(session, principal=clerk, consent_id=consent.id, confirmed=True, comment=None)
    assert service.paper_consent_confirmed(session, case.id) is True
    with pytest.raises(service.ConsentAlreadyDecided):
        service.confirm_paper_consent(session, principal=clerk, consent_id=consent.id, confirmed=False, comment="x")


def test_two_submissions_racing_with_one_consent_cannot_both_use_it(engine, seeded):
    with session_scope() as session:
        helper, helper_principal = _staff(session, HELPER)
        subject, citizen = _citizen(session)
        consent = service.create_consent(session, principal=citizen, helper_id=helper.id,
                                         matter_code="residence-certificate")
        consent_id, subject_id = consent.id, subject.id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def submit() -> None:
        from services.subjects.models import Subject

        barrier.wait(timeout=10)  # both start together; the database decides who wins
        with Session(engine) as session:
            try:
                applicant = session.get(Subject, subject_id)
                service.require_consent(session, helper=helper_principal, applicant_subject=applicant,
                                        matter_code="residence-certificate", consent_id=consent_id)
                session.commit()
                outcomes.append("used")
            except service.ConsentNotUsable:
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "used"]
    with Session(engine) as session:
        assert session.get(Consent, consent_id).used_at is not None
