"""好差评 over HTTP: the applicant rates a case the clerk completed; the order of checks; a bad
rating reaches the supervisor, who records the return visit; the applicant rates once more."""

from __future__ import annotations

import pytest

from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import (WITH_STATION, act, auth, residence_application, run_jobs, staff_token, submit, upload_pdf,
                           verified_citizen)


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.60") as client:
        yield client


def _completed_case(api) -> tuple[str, dict]:
    token, id_number = verified_citizen(api)
    case = submit(api, token, residence_application(id_number, upload_pdf(api, token))).json()
    clerk = staff_token(api, f"clerk-{WITH_STATION}")
    for action, extra in (("accept", {}), ("approve", {"comment": "情况属实"})):
        response = act(api, clerk, case, action, **extra)
        assert response.status_code == 200, response.text
        case = response.json()
    run_jobs()
    completed = act(api, clerk, case, "complete")
    assert completed.status_code == 200, completed.text
    return token, completed.json()


def test_rate_a_completed_case_and_the_order_of_checks(api):
    token, case = _completed_case(api)
    url = f"/api/v1/cases/{case['id']}/evaluation"
    before = api.get(url, headers=auth(token)).json()
    assert before["can_evaluate"] is True and before["next_round"] == 1 and before["window_ends"]
    assert api.post(url, json={"level": 5}).status_code == 401
    stranger, _ = verified_citizen(api)
    assert api.post(url, json={"level": 5}, headers=auth(stranger)).status_code == 404
    clerk = staff_token(api, f"clerk-{WITH_STATION}")
    assert api.post(url, json={"level": 5}, headers=auth(clerk)).json()["error"] == "applicant_only"
    for bad in ({"level": 0}, {"level": 6}, {"level": "5"}, {}, {"level": 5, "comment": "x" * 501}, {"level": 5, "x": 1}):
        assert api.post(url, json=bad, headers=auth(token)).status_code == 422, bad
    rated = api.post(url, json={"level": 5, "comment": "一次办成"}, headers=auth(token))
    assert rated.status_code == 201 and rated.json()["label"] == "非常满意"
    again = api.post(url, json={"level": 4}, headers=auth(token))
    assert again.status_code == 409 and again.json()["error"] == "already_evaluated"
    assert api.get(url, headers=auth(clerk)).json()["items"][0]["level"] == 5


def test_an_open_case_is_409(api):
    token, id_number = verified_citizen(api)
    case = submit(api, token, residence_application(id_number, upload_pdf(api, token))).json()
    response = api.post(f"/api/v1/cases/{case['id']}/evaluation", json={"level": 5}, headers=auth(token))
    assert response.status_code == 409 and response.json()["error"] == "case_not_completed"


def test_a_bad_rating_goes_to_the_supervisor_and_the_applicant_rates_again(api):
    token, case = _completed_case(api)
    url = f"/api/v1/cases/{case['id']}/evaluation"
    assert api.post(url, json={"level": 1, "comment": "跑了三趟"}, headers=auth(token)).status_code == 201
    supervisor = staff_token(api, "supervisor-361130102")
    tasks = api.get("/api/v1/rectifications", params={"state": "open"}, headers=auth(supervisor)).json()["items"]
    task = next(item for item in tasks if item["case_id"] == case["id"])
    assert task["evaluation"]["level"] == 1 and task["due_date"]
    other = staff_token(api, "supervisor-361130103")
    assert api.get(f"/api/v1/rectifications/{task['id']}", headers=auth(other)).status_code == 404
    clerk = staff_token(api, f"clerk-{WITH_STATION}")
    assert api.get("/api/v1/rectifications", headers=auth(clerk)).status_code == 403
    completion = {"measures": "窗口一次性告知培训", "return_visit": {"method": "phone", "summary": "已电话回访",
                                                                   "applicant_satisfied": True}}
    assert api.post(f"/api/v1/rectifications/{task['id']}/completion", json=completion,
                    headers=auth(other)).status_code == 404
    done = api.post(f"/api/v1/rectifications/{task['id']}/completion", json=completion, headers=auth(supervisor))
    assert done.status_code == 200 and done.json()["state"] == "done"
    assert done.json()["return_visit"]["method_label"] == "电话回访"
    assert api.post(f"/api/v1/rectifications/{task['id']}/completion", json=completion,
                    headers=auth(supervisor)).status_code == 409
    second = api.post(url, json={"level": 4}, headers=auth(token))
    assert second.status_code == 201 and second.json()["round"] == 2
    assert api.post(url, json={"level": 5}, headers=auth(token)).status_code == 409
    figures = api.get("/api/v1/evaluations/figures", headers=auth(supervisor)).json()
    assert figures["scope"] == "region:361130102000" and figures["rated"] >= 1
    assert api.get("/api/v1/evaluations/figures", headers=auth(token)).status_code == 403
