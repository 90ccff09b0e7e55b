"""The README walkthrough, end to end: sign in, bind a real name, apply, get routed, be
accepted and approved by the right clerk, and download a certificate verifiers accept."""

from __future__ import annotations

from sqlmodel import Session, select

from services.cases.models import CaseEvent
from services.cases.service import verify_chain
from services.outbox.models import OutboxJob
from tests.support import (WITH_STATION, WITHOUT_STATION, act, auth, residence_application, run_jobs,
                                staff_token, submit, upload_pdf, verified_citizen)


def test_apply_route_accept_approve_and_download_a_signed_certificate(client, tmp_path, engine):
    token, id_number = verified_citizen(client, name="张三")

    matters = client.get("/api/v1/matters", params={"region_code": WITH_STATION}).json()
    assert "residence-certificate" in [m["code"] for m in matters["items"]]
    matter = client.get("/api/v1/matters/residence-certificate").json()
    assert matter["handle_level"] == "village" and matter["certificate_type"] == "residence-certificate"
    points = client.get("/api/v1/service-points", params={"region_code": WITH_STATION}).json()["items"]
    assert [p["level"] for p in points] == ["village", "town", "county"]

    file_id = upload_pdf(client, token)
    created = submit(client, token, residence_application(id_number, file_id))
    assert created.status_code == 201, created.text
    case = created.json()
    assert case["state"] == "submitted" and case["version"] == 1
    assert case["handling_point"]["name"] == "秋口村便民服务站"
    assert WITH_STATION in case["routing_reason"] and "秋口村便民服务站" in case["routing_reason"]
    assert case["assignee"] is not None and "分配给" in case["routing_reason"]
    assert case["applicant"]["number_masked"] != id_number and id_number not in created.text

    clerk = staff_token(client, f"clerk-{WITH_STATION}")
    # the clerk's queue puts cases waiting for acceptance first, oldest first; newest first here,
    # because other tests leave cases in this clerk's queue too
    queue = client.get("/api/v1/cases", params={"state": "submitted", "sort": "newest"},
                       headers=auth(clerk)).json()["items"]
    assert case["id"] in [item["id"] for item in queue]
    actions = client.get(f"/api/v1/cases/{case['id']}/actions", headers=auth(clerk)).json()
    assert {"accept", "refuse", "request_correction"} <= {a["action"] for a in actions}

    accepted = act(client, clerk, case, "accept")
    assert accepted.status_code == 200, accepted.text
    case = accepted.json()
    assert case["state"] == "accepted" and case["sla"]["state"] == "running" and case["due_date"]
    approved = act(client, clerk, case, "approve", comment="情况属实")
    assert approved.status_code == 200, approved.text
    case = approved.json()
    assert run_jobs() >= 1
    completed = act(client, clerk, case, "complete")
    assert completed.status_code == 200, completed.text
    case = completed.json()
    assert case["state"] == "completed" and len(case["certificate_ids"]) == 1
    with Session(engine) as session:  # the applicant is told, once, that the certificate is ready
        notice = f"notify:{case['id']}:certificate_ready:{case['certificate_ids'][0]}"
        assert session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == notice)).one()
    assert [event["action"] for event in case["history"]] == ["submit", "accept", "approve", "complete"]

    certificates = client.get("/api/v1/certificates", headers=auth(token)).json()["items"]
    assert len(certificates) == 1 and certificates[0]["status"] == "valid"
    pdf = client.get(f"/api/v1/certificates/{certificates[0]['id']}/pdf", headers=auth(token))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert id_number.encode() not in pdf.content

    from tests.services.certificates.verifiers import pdfsig_report

    (tmp_path / "certificate.pdf").write_bytes(pdf.content)
    (tmp_path / "ca.pem").write_bytes(client.get("/api/v1/public/pki/ca").content)
    report = pdfsig_report(tmp_path / "certificate.pdf", tmp_path / "ca.pem")
    assert "Total document signed" in report
    assert "Signature is Valid." in report
    assert "Certificate is Trusted." in report

    status = client.get(f"/api/v1/public/certificates/{certificates[0]['identifier']}/status")
    assert status.status_code == 200
    assert status.json()["status"] == "valid" and "*" in status.json()["holder_masked"]
    assert id_number not in status.text

    with Session(engine) as session:
        events = list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case["id"]).order_by(CaseEvent.seq)))
    assert verify_chain(events)


def test_a_village_without_a_station_routes_up_to_its_town(client):
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token),
                                                       region_code=WITHOUT_STATION)).json()
    assert case["handling_point"]["name"] == "秋口镇便民服务中心"
    assert "上移一级" in case["routing_reason"]


def test_stale_version_and_wrong_state_are_conflicts_and_write_nothing(client):
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    clerk = staff_token(client, f"clerk-{WITH_STATION}")
    accepted = act(client, clerk, case, "accept").json()

    stale = act(client, clerk, case, "approve")  # still carries version 1
    assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
    wrong_state = act(client, clerk, accepted, "accept")
    assert wrong_state.status_code == 409 and wrong_state.json()["error"] == "action_not_allowed"
    assert wrong_state.json()["detail"]["state"] == "accepted"

    current = client.get(f"/api/v1/cases/{case['id']}", headers=auth(clerk)).json()
    assert current["version"] == 2 and len(current["history"]) == 2


def test_the_applicant_cannot_approve_and_another_point_cannot_see(client):
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    forbidden = act(client, token, case, "accept")
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "action_forbidden"
    other_clerk = staff_token(client, "clerk-361130103")  # 江湾镇: not this case's point
    assert client.get(f"/api/v1/cases/{case['id']}", headers=auth(other_clerk)).status_code == 404
    assert act(client, other_clerk, case, "accept").status_code == 404
    stranger, _ = verified_citizen(client)
    assert client.get(f"/api/v1/cases/{case['id']}", headers=auth(stranger)).status_code == 404


def test_refuse_needs_a_reason(client):
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    clerk = staff_token(client, f"clerk-{WITH_STATION}")
    missing = act(client, clerk, case, "refuse")
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "comment"
    refused = act(client, clerk, case, "refuse", comment="非本村居民")
    assert refused.status_code == 200 and refused.json()["state"] == "not_accepted"


def test_the_applicant_may_withdraw_before_a_decision(client):
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    actions = client.get(f"/api/v1/cases/{case['id']}/actions", headers=auth(token)).json()
    assert [a["action"] for a in actions] == ["withdraw"]
    withdrawn = act(client, token, case, "withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"


def test_a_citizens_list_pages_with_a_cursor(client):
    token, id_number = verified_citizen(client)
    created = {submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()["id"]
               for _ in range(21)}
    first = client.get("/api/v1/cases", headers=auth(token)).json()
    assert len(first["items"]) == 20 and first["next_cursor"]
    second = client.get("/api/v1/cases", params={"cursor": first["next_cursor"]}, headers=auth(token)).json()
    assert second["next_cursor"] is None
    assert {item["id"] for item in first["items"] + second["items"]} == created
    bad = client.get("/api/v1/cases", params={"cursor": "%%%"}, headers=auth(token))
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"
