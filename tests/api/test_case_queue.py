"""A clerk's queue (GET /cases for staff): their assignments and the point's pool, cases still in
progress by nearest deadline, filterable by state, matter, due-soon and overdue; pages that
neither repeat nor skip; bad parameters are a 422."""

from __future__ import annotations

from datetime import date

from sqlalchemy import update

from services.cases.models import Case
from services.db import get_engine
from tests.services.cases.helpers import staff
from tests.support import WITH_STATION, act, auth, residence_application, submit, upload_pdf, verified_citizen

CLERK = f"clerk-{WITH_STATION}"
NO_DEADLINE = "1900-01-01"  # not accepted yet: first in the queue


def _new_case(client) -> tuple[str, dict]:
    token, id_number = verified_citizen(client)
    created = submit(client, token, residence_application(id_number, upload_pdf(client, token)))
    assert created.status_code == 201, created.text
    return token, created.json()


def _set(case_id: str, **values) -> None:
    with get_engine().begin() as connection:
        connection.execute(update(Case).where(Case.id == case_id).values(**values))


def _all_pages(client, token: str, **params) -> list[dict]:
    items, cursor = [], None
    for _ in range(200):
        response = client.get("/api/v1/cases", params={**params, **({"cursor": cursor} if cursor else {})},
                              headers=auth(token))
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("more than 200 pages")


def _deadline_key(item: dict) -> tuple[str, str]:
    return item["due_date"] or NO_DEADLINE, item["submitted_at"]


def test_the_queue_is_open_work_by_nearest_deadline_across_pages(client):
    clerk = staff(client, CLERK)
    _, soon = _new_case(client)
    _, later = _new_case(client)
    _, unaccepted = _new_case(client)
    citizen, finished = _new_case(client)
    soon = act(client, clerk, soon, "accept").json()
    later = act(client, clerk, later, "accept").json()
    _set(soon["id"], due_date=date(2026, 1, 5))
    _set(later["id"], due_date=date(2026, 1, 6))
    assert act(client, citizen, finished, "withdraw").status_code == 200

    queue = _all_pages(client, clerk)
    ids = [item["id"] for item in queue]
    assert len(ids) == len(set(ids)), "a page repeated a case"
    assert [_deadline_key(item) for item in queue] == sorted(_deadline_key(item) for item in queue)
    assert finished["id"] not in ids and all(item["state"] not in ("withdrawn", "delivered") for item in queue)
    assert ids.index(unaccepted["id"]) < ids.index(soon["id"]) < ids.index(later["id"])

    withdrawn = _all_pages(client, clerk, state="withdrawn")
    assert finished["id"] in [item["id"] for item in withdrawn]
    assert {item["state"] for item in withdrawn} == {"withdrawn"}

    newest = _all_pages(client, clerk, sort="newest")
    assert finished["id"] in [item["id"] for item in newest]
    assert [item["submitted_at"] for item in newest] == sorted((item["submitted_at"] for item in newest), reverse=True)


def test_filters_by_sla_flag_and_matter(client):
    clerk = staff(client, CLERK)
    _, overdue = _new_case(client)
    _, due_soon = _new_case(client)
    _set(overdue["id"], sla_flag="overdue")
    _set(due_soon["id"], sla_flag="due_soon")

    overdue_queue = _all_pages(client, clerk, sla="overdue")
    assert overdue["id"] in [item["id"] for item in overdue_queue]
    assert due_soon["id"] not in [item["id"] for item in overdue_queue]
    soon_queue = _all_pages(client, clerk, sla="due_soon")
    assert [item["id"] for item in soon_queue if item["id"] in (overdue["id"], due_soon["id"])] == [due_soon["id"]]

    residence = _all_pages(client, clerk, matter_code="residence-certificate")
    assert overdue["id"] in [item["id"] for item in residence]
    assert {item["matter_code"] for item in residence} == {"residence-certificate"}
    assert _all_pages(client, clerk, matter_code="no-such-matter") == []


def test_citizens_see_their_own_cases_newest_first(client):
    token, id_number = verified_citizen(client)
    created = []
    for _ in range(2):
        response = submit(client, token, residence_application(id_number, upload_pdf(client, token)))
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    assert [item["id"] for item in _all_pages(client, token)] == created[::-1]


def test_bad_queue_parameters_are_422(client):
    clerk = staff(client, CLERK)
    newest_page = client.get("/api/v1/cases", params={"sort": "newest"}, headers=auth(clerk)).json()
    for params in ({"sort": "oldest"}, {"sla": "late"}, {"cursor": "not-a-cursor"}, {"cursor": "e30"},
                   {"state": "x" * 21}, {"matter_code": "m" * 65}):
        response = client.get("/api/v1/cases", params=params, headers=auth(clerk))
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"] == "validation_error", response.text
    if newest_page["next_cursor"]:  # a newest-first cursor is not a deadline cursor
        mixed = client.get("/api/v1/cases", params={"cursor": newest_page["next_cursor"], "sort": "deadline"},
                           headers=auth(clerk))
        assert mixed.status_code == 422, mixed.text
