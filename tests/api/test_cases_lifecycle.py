"""Every action of the lifecycle through the HTTP API: one-shot correction and supplement,
suspension with a limit, one extension within the legal limit, claim, transfer, delivery; the
actions list is exactly what may be done now; bad input is a precise 4xx and writes nothing."""

from __future__ import annotations

from sqlmodel import Session, select

from services.cases.models import Case, CaseEvent
from services.outbox.models import OutboxJob
from services.points.models import ServiceWindow, Staff
from tests.services.cases.helpers import staff
from tests.support import (WITH_STATION, WITHOUT_STATION, act, auth, residence_application, run_jobs, submit,
                           upload_pdf, verified_citizen)

CLERK = f"clerk-{WITH_STATION}"
SUPERVISOR = "supervisor-361130102"  # 秋口镇: its jurisdiction holds the village station


def new_case(client, region_code: str = WITH_STATION):
    token, id_number = verified_citizen(client)
    created = submit(client, token, residence_application(id_number, upload_pdf(client, token), region_code=region_code))
    assert created.status_code == 201, created.text
    return token, created.json()


def actions(client, token, case) -> list[str]:
    return [a["action"] for a in client.get(f"/api/v1/cases/{case['id']}/actions", headers=auth(token)).json()]


def history(client, token, case) -> list[str]:
    return [e["action"] for e in client.get(f"/api/v1/cases/{case['id']}", headers=auth(token)).json()["history"]]


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_correction_lists_everything_once_and_the_applicant_supplements(client):
    token, case = new_case(client)
    clerk = staff(client, CLERK)
    items = [{"material_code": "id-card", "problem": "身份证照片模糊"}, {"field": "since", "problem": "起始年月有误"}]

    missing = act(client, clerk, case, "request_correction", comment="请补正")
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "payload.items"
    unknown = act(client, clerk, case, "request_correction", comment="请补正",
                  payload={"items": [{"material_code": "passport", "problem": "x"}]})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["reason"] == "unknown_material"
    assert history(client, clerk, case) == ["submit"]

    case = ok(act(client, clerk, case, "request_correction", comment="请一次性补正以下材料", payload={"items": items}))
    assert case["state"] == "correcting" and case["sla"]["state"] == "not_started"
    mine = client.get(f"/api/v1/cases/{case['id']}", headers=auth(token)).json()
    assert mine["correction"] == {"items": items, "open": True}
    assert actions(client, token, case) == ["supplement", "withdraw"]

    bad_form = act(client, token, case, "supplement", payload={"form": {"address": "x"}})
    assert bad_form.status_code == 422 and bad_form.json()["detail"][0]["field"].startswith("payload.form")
    new_file = upload_pdf(client, token)
    form = {**mine["form"], "since": "2018-03"}
    case = ok(act(client, token, case, "supplement",
                  payload={"materials": [{"code": "id-card", "file_id": new_file}], "form": form}))
    assert case["state"] == "submitted" and case["form"]["since"] == "2018-03"
    assert [m["file_id"] for m in case["materials"]] == [new_file]
    assert case["history"][-1]["payload"] == {"materials": ["id-card"], "form_fields": ["since"]}
    assert ok(act(client, clerk, case, "accept"))["state"] == "accepted"


def test_suspend_pauses_the_clock_and_resume_returns_to_the_state_before(client):
    _token, case = new_case(client)
    clerk = staff(client, CLERK)
    not_suspended = act(client, clerk, case, "resume")
    assert not_suspended.status_code == 409 and not_suspended.json()["error"] == "action_not_allowed"
    case = ok(act(client, clerk, case, "accept"))
    due = case["due_date"]
    no_limit = act(client, clerk, case, "suspend", comment="现场核查")
    assert no_limit.status_code == 422 and no_limit.json()["detail"][0]["field"] == "payload.max_days"
    too_long = act(client, clerk, case, "suspend", comment="现场核查", payload={"max_days": 10_000})
    assert too_long.status_code == 422
    case = ok(act(client, clerk, case, "suspend", comment="现场核查", payload={"max_days": 10, "procedure": "现场核查"}))
    assert case["state"] == "suspended" and case["sla"]["state"] == "paused"
    assert case["sla"]["working_days_left"] is not None and case["sla"]["suspend_until"]
    assert "resume" in actions(client, clerk, case) and "approve" not in actions(client, clerk, case)
    case = ok(act(client, clerk, case, "resume"))
    assert case["state"] == "accepted" and case["sla"]["state"] == "running" and case["due_date"] == due
    assert history(client, clerk, case) == ["submit", "accept", "suspend", "resume"]


def test_extend_once_by_a_supervisor_within_the_legal_limit(client):
    _token, case = new_case(client)
    clerk, supervisor = staff(client, CLERK), staff(client, SUPERVISOR)
    case = ok(act(client, clerk, case, "accept"))
    assert act(client, clerk, case, "extend", comment="需要核实", payload={"days": 1}).status_code == 403
    assert "extend" in actions(client, supervisor, case)
    beyond = act(client, supervisor, case, "extend", comment="需要核实", payload={"days": 4})  # promised 2, legal 5
    assert beyond.status_code == 422 and beyond.json()["error"] == "extension_not_allowed"
    assert beyond.json()["detail"]["max_days"] == 3
    zero = act(client, supervisor, case, "extend", comment="需要核实", payload={"days": 0})
    assert zero.status_code == 422 and zero.json()["detail"][0]["field"] == "payload.days"
    assert history(client, clerk, case) == ["submit", "accept"]
    extended = ok(act(client, supervisor, case, "extend", comment="需要入户核实", payload={"days": 3}))
    assert extended["state"] == "accepted" and extended["due_date"] == case["sla"]["legal_due_date"]
    assert extended["sla"]["extension_days"] == 3
    assert "extend" not in actions(client, supervisor, extended)
    again = act(client, supervisor, extended, "extend", comment="再延", payload={"days": 1})
    assert again.status_code == 422 and again.json()["detail"]["reason"] == "already_extended"


def test_approve_complete_deliver_with_a_method(client):
    _token, case = new_case(client)
    clerk = staff(client, CLERK)
    case = ok(act(client, clerk, case, "accept"))
    case = ok(act(client, clerk, case, "approve", comment="情况属实"))
    case = ok(act(client, clerk, case, "complete"))
    wrong = act(client, clerk, case, "deliver", payload={"method": "pigeon"})
    assert wrong.status_code == 422
    no_tracking = act(client, clerk, case, "deliver", payload={"method": "mail"})
    assert no_tracking.status_code == 422 and no_tracking.json()["detail"][0]["field"] == "payload.tracking_number"
    case = ok(act(client, clerk, case, "deliver", payload={"method": "mail", "tracking_number": "EMS1234567890CN"}))
    assert case["state"] == "delivered" and case["delivery_method"] == "mail"
    assert case["sla"]["state"] == "stopped" and case["sla"]["breached"] is False


def test_unknown_out_of_order_and_stale_actions_write_nothing(client, engine):
    _token, case = new_case(client)
    clerk = staff(client, CLERK)
    unknown = act(client, clerk, case, "teleport")
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_action"
    out_of_order = act(client, clerk, case, "complete")
    assert out_of_order.status_code == 409 and out_of_order.json()["detail"]["state"] == "submitted"
    extra = act(client, clerk, case, "accept", payload={"nonsense": 1})
    assert extra.status_code == 422 and extra.json()["detail"][0]["field"] == "payload.nonsense"
    assert act(client, clerk, case, "accept").status_code == 200
    stale = act(client, clerk, case, "approve", comment="x")
    assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
    with Session(engine) as session:
        stored = session.get(Case, case["id"])
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case["id"])).all()
    assert stored.version == 2 and len(events) == 2


def test_a_clerk_claims_from_the_pool_and_a_supervisor_transfers_with_a_reason(client, engine):
    _token, case = new_case(client, region_code=WITHOUT_STATION)  # handled by 秋口镇便民服务中心
    town_clerk = staff(client, "clerk-361130102")
    supervisor = staff(client, SUPERVISOR)
    with Session(engine) as session:  # put it in the point's pool
        stored = session.get(Case, case["id"])
        stored.assignee_id = None
        session.add(stored)
        session.commit()
    case = client.get(f"/api/v1/cases/{case['id']}", headers=auth(town_clerk)).json()
    assert "claim" in actions(client, town_clerk, case)
    case = ok(act(client, town_clerk, case, "claim"))
    assert case["assignee"]["name"] and "claim" not in actions(client, town_clerk, case)

    no_reason = act(client, supervisor, case, "transfer", payload={"to_point_id": case["handling_point"]["id"]})
    assert no_reason.status_code == 422
    station = client.get("/api/v1/service-points", params={"region_code": WITH_STATION}).json()["items"][0]
    county = client.get("/api/v1/service-points", params={"region_code": WITH_STATION}).json()["items"][-1]
    outside = act(client, supervisor, case, "transfer", comment="转县中心", payload={"to_point_id": county["id"]})
    assert outside.status_code == 422 and outside.json()["detail"][0]["reason"] == "outside_jurisdiction"
    moved = ok(act(client, supervisor, case, "transfer", comment="申请人实际居住在秋口村",
                   payload={"to_point_id": station["id"]}))
    assert moved["state"] == "submitted" and moved["handling_point"]["id"] == station["id"]
    assert "转办至" in moved["routing_reason"] and "申请人实际居住在秋口村" in moved["routing_reason"]
    station_clerk = staff(client, CLERK)
    assert ok(act(client, station_clerk, moved, "accept"))["state"] == "accepted"


def test_guards_hide_and_refuse_a_decision_on_an_incomplete_application(client, engine):
    _token, case = new_case(client)
    clerk = staff(client, CLERK)
    with Session(engine) as session:  # e.g. a form that no longer satisfies the matter's schema
        stored = session.get(Case, case["id"])
        stored.form = {"address": "x"}
        session.add(stored)
        session.commit()
    assert "accept" not in actions(client, clerk, case) and "request_correction" in actions(client, clerk, case)
    refused = act(client, clerk, case, "accept")
    assert refused.status_code == 409 and refused.json()["error"] == "action_not_allowed"
    assert refused.json()["detail"]["guards"]
    assert history(client, clerk, case) == ["submit"]


def test_each_transition_writes_its_notice_in_the_same_transaction(client, engine):
    _token, case = new_case(client)
    clerk = staff(client, CLERK)
    case = ok(act(client, clerk, case, "accept"))
    with Session(engine) as session:
        notices = session.exec(select(OutboxJob).where(OutboxJob.kind == "notify_case_event")).all()
    assert {"case_id": case["id"], "event": "accepted"} in [
        {key: job.payload[key] for key in ("case_id", "event")} for job in notices]


def test_the_submission_answers_with_the_case_as_it_is_read_back(client):
    """POST /cases builds its answer from what it has just written (no read-back query): it must
    be exactly what GET /cases/{id} then shows — applicant, points, assignee, materials, history."""
    for region_code in (WITH_STATION, WITHOUT_STATION):
        token, created = new_case(client, region_code=region_code)
        assert len(created["history"]) == 1 and created["materials"] and created["applicant"]["number_masked"]
        assert ok(client.get(f"/api/v1/cases/{created['id']}", headers=auth(token))) == created


def test_a_clerk_cannot_claim_a_matter_their_window_does_not_handle(client, engine):
    """Routing assigns a case only to clerks whose window takes its category; claiming from the
    pool holds the same rule (refused and not offered), and writes nothing when refused."""
    _token, case = new_case(client, region_code=WITHOUT_STATION)  # 秋口镇便民服务中心, civil-affairs
    town_clerk = staff(client, "clerk-361130102")
    with Session(engine) as session:
        stored = session.get(Case, case["id"])
        stored.assignee_id = None
        clerk = session.exec(select(Staff).where(Staff.username == "clerk-361130102")).one()
        window = ServiceWindow(service_point_id=clerk.service_point_id, name="卫健窗口", categories=["health"])
        session.add(window)
        session.flush()
        previous_window, clerk.window_id = clerk.window_id, window.id
        session.add_all([stored, clerk])
        session.commit()
    try:
        case = client.get(f"/api/v1/cases/{case['id']}", headers=auth(town_clerk)).json()
        assert "claim" not in actions(client, town_clerk, case)
        refused = act(client, town_clerk, case, "claim")
        assert refused.status_code == 403 and refused.json()["error"] == "category_not_handled"
        assert history(client, town_clerk, case) == ["submit"]
        assert client.get(f"/api/v1/cases/{case['id']}", headers=auth(town_clerk)).json()["assignee"] is None
    finally:
        with Session(engine) as session:
            clerk = session.exec(select(Staff).where(Staff.username == "clerk-361130102")).one()
            clerk.window_id = previous_window
            session.add(clerk)
            session.commit()
    # back at their own window, which takes every category: the claim goes through
    assert "claim" in actions(client, town_clerk, case)
    assert ok(act(client, town_clerk, case, "claim"))["assignee"]["name"]


def test_an_action_answers_with_the_case_as_it_is_read_back(client):
    """POST /cases/{id}/actions builds its answer from the details it read before the write and
    the new event (no read-back), except after actions that change those details (supplement
    here): either way it must be exactly what GET /cases/{id} then shows the same caller."""
    token, case = new_case(client)
    clerk = staff(client, CLERK)

    def answered_as_read_back(caller: str, action: str, **extra) -> dict:
        answer = ok(act(client, caller, case, action, **extra))
        assert ok(client.get(f"/api/v1/cases/{case['id']}", headers=auth(caller))) == answer
        return answer

    case = answered_as_read_back(clerk, "request_correction", comment="请补正",
                                 payload={"items": [{"material_code": "id-card", "problem": "身份证照片模糊"}]})
    case = answered_as_read_back(token, "supplement",
                                 payload={"materials": [{"code": "id-card", "file_id": upload_pdf(client, token)}]})
    for action, extra in (("accept", {}), ("approve", {"comment": "情况属实"}), ("complete", {}),
                          ("deliver", {"payload": {"method": "window"}})):
        case = answered_as_read_back(clerk, action, **extra)
    assert [entry["action"] for entry in case["history"]] == [
        "submit", "request_correction", "supplement", "accept", "approve", "complete", "deliver"]


def test_a_list_item_is_the_case_as_its_detail_shows_it(client):
    """GET /cases reads each case's materials and certificate ids in the page's own statement (not
    with the detail's query): every item must equal GET /cases/{id} for the same caller, less the
    history, for the applicant and for the clerk."""
    token, case = new_case(client)
    clerk = staff(client, CLERK)
    case = ok(act(client, clerk, case, "request_correction", comment="请补正",
                  payload={"items": [{"material_code": "id-card", "problem": "身份证照片模糊"}]}))
    case = ok(act(client, token, case, "supplement", payload={"materials": [
        {"code": "residence-proof", "file_id": upload_pdf(client, token)},
        {"code": "id-card", "file_id": upload_pdf(client, token)}]}))
    for action, extra in (("accept", {}), ("approve", {"comment": "情况属实"})):
        case = ok(act(client, clerk, case, action, **extra))
    assert run_jobs() >= 1  # the certificate
    for caller, params in ((token, {}), (clerk, {"state": "approved", "sort": "newest"})):
        items = ok(client.get("/api/v1/cases", params=params, headers=auth(caller)))["items"]
        listed = next(item for item in items if item["id"] == case["id"])
        shown = ok(client.get(f"/api/v1/cases/{case['id']}", headers=auth(caller)))
        del shown["history"]
        assert listed == shown
        assert len(listed["materials"]) == 2 and len(listed["certificate_ids"]) == 1
