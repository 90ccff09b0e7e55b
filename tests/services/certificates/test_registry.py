"""The registry: exactly one certificate per case and type under racing workers and crashes,
every matter of the catalogue issuing its type, status lifecycle, expiry, 免证办 checks.
Runs on whichever database the suite runs on (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from services.accounts.service import load_principal
from services.certificates import service
from services.certificates.models import Certificate, CertificateStatusEvent
from services.certificates.types import load_certificate_types
from services.errors import InvalidInput
from services.files.storage import get_storage
from services.outbox.models import OutboxJob
from services.points.models import Staff
from tests.services.certificates.support import (TOWN_OF_STATION, approved_residence_case, certificates_of_case,
                                                 direct_case, make_credit_code)
from tests.support import WITH_STATION, make_id_number, run_jobs

ROOT = Path(__file__).resolve().parents[3]


def _principal(engine, username: str):
    with Session(engine) as session:
        staff = session.exec(select(Staff).where(Staff.username == username)).one()
        return load_principal(session, principal_key=f"staff:{staff.id}")


def _registered_file_matches(certificate: Certificate) -> None:
    data = get_storage().get(certificate.storage_key)
    assert hashlib.sha256(data).hexdigest() == certificate.pdf_sha256


def _release_job(engine, case_id: str) -> None:
    """Make the case's issuing job due now (as after its backoff or its lease ran out)."""
    from services.db import utcnow

    with Session(engine) as session:
        session.execute(update(OutboxJob).where(OutboxJob.dedupe_key == f"issue_certificate:{case_id}")
                        .values(state="pending", run_after=utcnow(), locked_until=None, locked_by=None))
        session.commit()


# ---------------------------------------------------------------------------------------------
# Exactly once


def test_two_workers_racing_on_the_same_approval_issue_one_certificate(client, engine):
    _, _, case = approved_residence_case(client)
    barrier = threading.Barrier(2)
    issued: list[str] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            with Session(engine, expire_on_commit=False) as session:
                barrier.wait()
                certificate = service.issue_for_case(session, case_id=case["id"])
                session.commit()
                issued.append(certificate.id)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    rows = certificates_of_case(engine, case["id"])
    assert len(rows) == 1 and issued == [rows[0].id, rows[0].id]
    _registered_file_matches(rows[0])


def test_two_outbox_workers_running_at_once_issue_one_certificate(client, engine):
    from services.outbox.service import run_until_idle

    _, _, case = approved_residence_case(client)
    threads = [threading.Thread(target=run_until_idle, args=(engine,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    rows = certificates_of_case(engine, case["id"])
    assert len(rows) == 1
    with Session(engine) as session:
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"issue_certificate:{case['id']}")).one()
    assert job.state == "done"


def test_a_worker_failing_after_the_pdf_is_stored_leaves_one_certificate_after_the_retry(client, engine, monkeypatch):
    from services.outbox import service as outbox

    _, _, case = approved_residence_case(client)
    real = outbox._handlers["issue_certificate"]
    attempts = []

    def crash_before_commit(session, payload):
        real(session, payload)  # rendered, signed, stored, registered (flushed) ...
        if payload["case_id"] == case["id"] and not attempts:
            attempts.append(session.exec(select(Certificate.storage_key)
                                         .where(Certificate.case_id == case["id"])).one())
            raise RuntimeError("worker crashed before its commit")  # ... and never committed

    monkeypatch.setitem(outbox._handlers, "issue_certificate", crash_before_commit)
    run_jobs()
    assert certificates_of_case(engine, case["id"]) == []
    with Session(engine) as session:
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"issue_certificate:{case['id']}")).one()
        assert job.state == "pending" and "worker crashed" in job.last_error
    _release_job(engine, case["id"])
    run_jobs()
    rows = certificates_of_case(engine, case["id"])
    assert len(rows) == 1
    _registered_file_matches(rows[0])
    # the first attempt's PDF is an orphan: never referenced, listed for housekeeping
    (orphan,) = attempts
    assert orphan != rows[0].storage_key
    assert orphan in service.orphaned_pdfs()
    get_storage().delete(orphan)


def test_a_worker_process_killed_halfway_leaves_one_certificate_after_the_lease_runs_out(client, engine):
    """A real crash: the worker process exits (os._exit, no cleanup at all) right after storing
    the PDF, inside the issuing transaction. Another worker takes the job over once its lease
    has run out and issues exactly one certificate."""
    _, _, case = approved_residence_case(client)
    script = textwrap.dedent(f"""
        import os
        from services.certificates import service
        from services.db import get_engine
        from services.files import storage
        from services.outbox.registry import register_all_handlers
        from services.outbox.service import run_one

        register_all_handlers()
        real_put = storage.FilesystemStorage.put

        def put_then_die(self, key, data):
            real_put(self, key, data)
            if "{case['id']}" in key:
                os._exit(17)

        storage.FilesystemStorage.put = put_then_die
        while run_one(get_engine(), worker="doomed"):
            pass
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=os.environ.copy(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 17, result.stderr[-3000:]
    assert certificates_of_case(engine, case["id"]) == []
    with Session(engine) as session:
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"issue_certificate:{case['id']}")).one()
        assert job.state == "running" and job.locked_by == "doomed"  # claimed, then its worker died
    _release_job(engine, case["id"])  # the 5-minute lease, run out
    run_jobs()
    rows = certificates_of_case(engine, case["id"])
    assert len(rows) == 1
    _registered_file_matches(rows[0])
    orphans = [key for key in service.orphaned_pdfs() if case["id"] in key]
    assert len(orphans) == 1 and orphans[0] != rows[0].storage_key
    get_storage().delete(orphans[0])


def test_issuing_again_returns_the_same_certificate(client, engine):
    _, _, case = approved_residence_case(client)
    run_jobs()
    (first,) = certificates_of_case(engine, case["id"])
    with Session(engine, expire_on_commit=False) as session:
        again = service.issue_for_case(session, case_id=case["id"])
        session.commit()
    assert again.id == first.id and len(certificates_of_case(engine, case["id"])) == 1


# ---------------------------------------------------------------------------------------------
# Every type the catalogue produces, issued from a case


def _issuing_matters():
    from workflows.catalogue import default_catalogue

    return sorted((code, matter) for code, matter in default_catalogue().matters.items()
                  if matter.definition.certificate_type)


@pytest.mark.parametrize("matter_code", [code for code, _ in _issuing_matters()])
def test_every_matter_issues_its_certificate_with_the_right_metadata(matter_code, seeded, engine):
    from services.certificates.verification import verify_pdf
    from services.db import session_scope
    from workflows.catalogue import default_catalogue

    matter = default_catalogue().matters[matter_code]
    cert_type = load_certificate_types()[matter.definition.certificate_type]
    organisation = cert_type.holder_kind == "organization"
    number = make_credit_code() if organisation else make_id_number()
    name = cert_type.sample["applicant"]["name"]
    with session_scope() as session:
        case_id = direct_case(session, matter_code=matter_code, form=cert_type.sample["form"],
                              subject_number=number, name=name)
    with session_scope() as session:
        certificate = service.issue_for_case(session, case_id=case_id)
        certificate_id = certificate.id
    with Session(engine) as session:
        certificate = session.get(Certificate, certificate_id)
        assert certificate.cert_type == cert_type.code and certificate.issuer_code == cert_type.issuer_code
        assert certificate.holder_code_type == ("001" if organisation else "111")
        assert certificate.jurisdiction_code == cert_type.jurisdiction_code and certificate.number
        assert certificate.valid_until == cert_type.valid_until(certificate.valid_from)
        # registered under the holder's keyed hash (never the number itself), and the stored file
        # is the one whose SHA-256 the registry holds
        from services.subjects.identity_numbers import parse_subject_number
        from services.subjects.protection import get_protector

        value = parse_subject_number(number, subject_kind="organization" if organisation else "person").value
        assert certificate.holder_hash == get_protector().keyed_hash(value) and certificate.holder_hash != value
        _registered_file_matches(certificate)
        if organisation:
            assert certificate.holder_masked == number and certificate.holder_name_masked == name
        else:
            assert "*" in certificate.holder_masked and number not in certificate.holder_masked
            assert certificate.holder_name_masked == name[0] + "*" * (len(name) - 1)
        history = session.exec(select(CertificateStatusEvent)
                               .where(CertificateStatusEvent.certificate_id == certificate_id)).all()
        assert [(event.from_status, event.to_status) for event in history] == [(None, "valid")]
        pdf = get_storage().get(certificate.storage_key)
        if not organisation:
            assert number.encode() not in pdf
        verdict = verify_pdf(session, pdf)
    assert verdict["valid"] and verdict["registered"] and verdict["signer"]["credit_code"] == cert_type.issuer_code, verdict


# ---------------------------------------------------------------------------------------------
# Status and expiry


@pytest.fixture
def certificate_id(client, engine) -> str:
    _, _, case = approved_residence_case(client)
    run_jobs()
    return certificates_of_case(engine, case["id"])[0].id


def test_status_lifecycle_with_history(certificate_id, engine):
    supervisor = _principal(engine, f"supervisor-{TOWN_OF_STATION}")
    steps = [("suspended", "涉嫌提供虚假材料，暂扣待查"), ("valid", "核查无误，恢复有效"), ("annulled", "以欺骗手段取得，依法撤销")]
    for status, reason in steps:
        with Session(engine) as session:
            service.change_status(session, principal=supervisor, certificate_id=certificate_id, status=status,
                                  reason=reason)
            session.commit()
    with Session(engine) as session:
        with pytest.raises(service.StatusTransitionNotAllowed) as error:
            service.change_status(session, principal=supervisor, certificate_id=certificate_id, status="valid",
                                  reason="想恢复")
        assert error.value.detail["status"] == "annulled"
        history = service.status_history(session, certificate_id=certificate_id)
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "valid"), ("valid", "suspended"), ("suspended", "valid"), ("valid", "annulled")]
    assert history[1]["reason"] == steps[0][1] and history[1]["actor"] == supervisor.key
    assert history[1]["actor_name"] == supervisor.name


@pytest.mark.parametrize("terminal", ["annulled", "cancelled", "revoked"])
def test_every_terminal_status_is_final_and_public(client, certificate_id, engine, terminal):
    """撤销 / 注销 / 吊销 from 暂扣 as from 有效, each with its history entry and public label, and
    nothing after it (expiry included)."""
    from services.certificates.models import STATUS_LABELS

    supervisor = _principal(engine, f"supervisor-{TOWN_OF_STATION}")
    for status, reason in (("suspended", "暂扣核查"), (terminal, "依法处理")):
        with Session(engine) as session:
            service.change_status(session, principal=supervisor, certificate_id=certificate_id, status=status,
                                  reason=reason)
            session.commit()
    with Session(engine) as session:
        certificate = session.get(Certificate, certificate_id)
        for target in ("valid", "suspended", "annulled", "cancelled", "revoked"):
            with pytest.raises(service.StatusTransitionNotAllowed):
                service.change_status(session, principal=supervisor, certificate_id=certificate_id, status=target,
                                      reason="再次变更")
        certificate.valid_until = dt.date(2020, 1, 1)
        session.add(certificate)
        session.commit()
    with Session(engine) as session:
        service.run_expiry(session, service.today_in_china())
        session.commit()
        certificate = session.get(Certificate, certificate_id)
        assert certificate.status == terminal  # expiry never overwrites a terminal status
        history = service.status_history(session, certificate_id=certificate_id)
    assert [h["to_status"] for h in history] == ["valid", "suspended", terminal]
    assert history[-1]["reason"] == "依法处理" and history[-1]["actor"] == supervisor.key and history[-1]["at"]
    public = client.get(f"/api/v1/public/certificates/{certificate.identifier}/status").json()
    assert public["status"] == terminal and public["status_label"] == STATUS_LABELS[terminal]


def test_status_changes_need_the_issuing_department_a_reason_and_a_known_status(certificate_id, engine):
    clerk = _principal(engine, f"clerk-{WITH_STATION}")
    other_town = _principal(engine, "supervisor-361130103")
    supervisor = _principal(engine, f"supervisor-{TOWN_OF_STATION}")
    with Session(engine) as session:
        with pytest.raises(service.StatusChangeForbidden):  # sees the case, may not change status
            service.change_status(session, principal=clerk, certificate_id=certificate_id, status="revoked",
                                  reason="x")
        with pytest.raises(service.CertificateNotFound):  # another town's supervisor: not theirs
            service.change_status(session, principal=other_town, certificate_id=certificate_id, status="revoked",
                                  reason="x")
        with pytest.raises(InvalidInput):
            service.change_status(session, principal=supervisor, certificate_id=certificate_id, status="revoked",
                                  reason="  ")
        with pytest.raises(InvalidInput):
            service.change_status(session, principal=supervisor, certificate_id=certificate_id, status="expired",
                                  reason="x")


def test_expiry_job_marks_certificates_past_their_validity(certificate_id, engine):
    today = service.today_in_china()
    supervisor = _principal(engine, f"supervisor-{TOWN_OF_STATION}")
    with Session(engine) as session:
        certificate = session.get(Certificate, certificate_id)
        last_day = certificate.valid_until
        assert service.effective_status(certificate, today=last_day) == "valid"
        assert service.effective_status(certificate, today=last_day + dt.timedelta(days=1)) == "expired"
        # a nightly job is waiting for the coming midnight
        tomorrow = today + dt.timedelta(days=1)
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"expire_certificates:{tomorrow}")).one()
        assert job.kind == "expire_certificates" and job.state in ("pending", "done")
        # only this certificate's validity ends before today (the others issued today run on)
        certificate.valid_until = today - dt.timedelta(days=1)
        session.add(certificate)
        session.commit()

    with Session(engine) as session:
        assert service.run_expiry(session, today) >= 1
        session.commit()
    with Session(engine) as session:
        certificate = session.get(Certificate, certificate_id)
        assert certificate.status == "expired" and "届满" in certificate.status_reason
        history = service.status_history(session, certificate_id=certificate_id)
        assert history[-1]["from_status"] == "valid" and history[-1]["actor"] == "system"
        assert service.run_expiry(session, today) == 0  # idempotent
        with pytest.raises(service.StatusTransitionNotAllowed):
            service.change_status(session, principal=supervisor, certificate_id=certificate_id, status="suspended",
                                  reason="x")


def test_the_expiry_job_handler_runs_and_schedules_the_next_night(engine, seeded):
    from services.certificates.tasks import expire_certificates_job

    with Session(engine) as session:
        expire_certificates_job(session, {})
        session.commit()
        tomorrow = service.today_in_china() + dt.timedelta(days=1)
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"expire_certificates:{tomorrow}")).one()
        assert job.run_after > dt.datetime.now(dt.timezone.utc)


# ---------------------------------------------------------------------------------------------
# 免证办


def test_usable_certificate_says_why_not(certificate_id, engine):
    with Session(engine) as session:
        certificate = session.get(Certificate, certificate_id)
        holder, kind = certificate.holder_subject_id, certificate.cert_type
        assert service.usable_certificate(session, certificate_id=certificate_id, holder_subject_id=holder,
                                          cert_type=kind).id == certificate_id
        assert service.usable_certificate(session, certificate_id=certificate_id, holder_hash=certificate.holder_hash,
                                          cert_type=kind).id == certificate_id
        cases = [
            ({"certificate_id": "no-such-id", "holder_subject_id": holder, "cert_type": kind}, "not_found"),
            ({"certificate_id": certificate_id, "holder_subject_id": holder + 10_000, "cert_type": kind}, "not_found"),
            ({"certificate_id": certificate_id, "holder_subject_id": holder, "cert_type": "disability-certificate"},
             "wrong_type"),
            ({"certificate_id": certificate_id, "holder_subject_id": holder, "cert_type": None}, "wrong_type"),
        ]
        for kwargs, reason in cases:
            with pytest.raises(service.CertificateNotUsable) as error:
                service.usable_certificate(session, **kwargs)
            assert error.value.reason == reason and error.value.status_code == 422
        certificate.status = "suspended"
        with pytest.raises(service.CertificateNotUsable) as error:
            service.usable_certificate(session, certificate_id=certificate_id, holder_subject_id=holder, cert_type=kind)
        assert error.value.reason == "not_valid" and error.value.detail["status_label"] == "暂扣"
        certificate.status, certificate.valid_until = "valid", dt.date(2020, 1, 1)
        with pytest.raises(service.CertificateNotUsable) as error:
            service.usable_certificate(session, certificate_id=certificate_id, holder_subject_id=holder, cert_type=kind)
        assert error.value.reason == "expired"
        session.rollback()


def test_record_usage_and_the_material_view(certificate_id, engine):
    clerk = _principal(engine, f"clerk-{WITH_STATION}")
    with Session(engine) as session:
        certificate = session.get(Certificate, certificate_id)
        service.record_usage(session, certificate_id=certificate_id, actor=clerk, purpose="免证办核验",
                             case_id=certificate.case_id)
        view = service.certificate_material_view(session, certificate_id=certificate_id)
        assert view["verified"] is True and view["status"] == "valid" and view["identifier"] == certificate.identifier
        session.commit()
    with Session(engine) as session:
        from services.certificates.models import CertificateUsage

        (usage,) = session.exec(select(CertificateUsage).where(CertificateUsage.certificate_id == certificate_id)).all()
        assert (usage.actor_kind, usage.actor, usage.purpose) == ("staff", clerk.key, "免证办核验")
    assert service.certificate_material_view(Session(engine), certificate_id="nope")["verified"] is False
