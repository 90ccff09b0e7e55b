"""The catalogue API (the versions in force) and the administrators' matter editing API."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.support import auth, staff_token
from workflows.catalogue import WORKFLOWS_DIR, default_catalogue, parse_yaml

API = "/api/v1"


@pytest.fixture(scope="module")
def api(seeded):
    """The app with the admin matters router (registered here too until api/app.py includes it),
    on a database whose catalogue was synced the way start-up does it."""
    from api.app import create_app
    from api.routers import admin_matters
    from services.db import session_scope
    from services.matters.service import sync_catalogue

    with session_scope() as session:
        sync_catalogue(session)
    app = create_app(start_worker=False)
    if not any(getattr(route, "path", "").startswith(f"{API}/admin/matters") for route in app.routes):
        app.include_router(admin_matters.router, prefix=API)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def every_matter(client: TestClient, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        page = client.get(f"{API}/matters", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def definition(code: str, **changes) -> dict:
    data, _ = parse_yaml((WORKFLOWS_DIR / "catalogue" / "residence-certificate.yaml").read_text(encoding="utf-8"))
    return {**data, "code": code, **changes}


def today():
    from services.matters.service import today_in_china

    return today_in_china()


def test_the_catalogue_lists_every_shipped_matter_with_its_version(api):
    items = {item["code"]: item for item in every_matter(api)}
    assert set(default_catalogue().matters) <= set(items)
    for code in default_catalogue().matters:
        assert isinstance(items[code]["version"], int) and items[code]["name"]
    organizations = {item["code"] for item in every_matter(api, subject_kind="organization")}
    assert {"food-business-license", "construction-permit"} <= organizations
    assert "residence-certificate" not in organizations
    assert {item["code"] for item in every_matter(api, q="出生")} >= {"birth-medical-certificate",
                                                                      "newborn-household-registration"}


def test_one_matter_shows_the_api_fields(api):
    matter = api.get(f"{API}/matters/minimum-living-allowance").json()
    for field in ("code", "name", "type", "subject_kind", "promise_kind", "legal_days", "promised_days",
                  "receive_levels", "handle_level", "materials", "form_schema", "certificate_type", "version"):
        assert field in matter
    assert (matter["legal_days"], matter["extension_days"], matter["promise_kind"]) == (30, 15, "promised")
    assert [step["label"] for step in matter["review_steps"]] == ["初审", "复审"]
    assert {"code", "name", "required", "certificate_type"} <= set(matter["materials"][0])
    immediate = api.get(f"{API}/matters/resident-pension-enrolment").json()
    assert (immediate["promise_kind"], immediate["promised_days"], immediate["handle_level"]) == ("immediate", 0, "town")
    missing = api.get(f"{API}/matters/no-such-matter")
    assert (missing.status_code, missing.json()["error"]) == (404, "matter_not_found")


def test_only_administrators_edit_matters(api):
    body = definition("test-forbidden", effective_from=today().isoformat())
    assert api.put(f"{API}/admin/matters/test-forbidden", json=body).status_code == 401
    clerk = staff_token(api, "clerk-361130-1")
    refused = api.put(f"{API}/admin/matters/test-forbidden", json=body, headers=auth(clerk))
    assert (refused.status_code, refused.json()["error"]) == (403, "admin_only")
    assert api.get(f"{API}/admin/matters/residence-certificate/versions", headers=auth(clerk)).status_code == 403
    assert api.get(f"{API}/matters/test-forbidden").status_code == 404


def test_a_broken_definition_is_422_with_each_problem_path(api):
    admin = staff_token(api, "admin")
    body = definition("test-broken", effective_from=today().isoformat(), promised_days=9,
                      review_steps=[{"code": "accepted", "label": "初审", "roles": ["reviewer"]}],
                      drop_actions=["stamp"])
    answer = api.put(f"{API}/admin/matters/test-broken", json=body, headers=auth(admin))
    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_matter_definition")
    fields = {item["field"] for item in answer.json()["detail"]}
    assert {"promised_days", "review_steps.0.code"} <= fields
    schema_error = api.put(f"{API}/admin/matters/test-broken", headers=auth(admin),
                           json=definition("test-broken", effective_from=today().isoformat(), handle_level="city",
                                           colour="red"))
    assert {item["field"] for item in schema_error.json()["detail"]} == {"handle_level", "colour"}
    assert api.put(f"{API}/admin/matters/test-broken", json=[1, 2], headers=auth(admin)).status_code == 422
    assert api.get(f"{API}/matters/test-broken").status_code == 404


def test_edits_make_versions_and_the_catalogue_shows_the_one_in_force(api):
    admin = staff_token(api, "admin")
    code = f"test-{uuid.uuid4().hex[:8]}"
    url = f"{API}/admin/matters/{code}"
    first = api.put(url, json=definition(code, effective_from=today().isoformat()), headers=auth(admin))
    assert (first.status_code, first.json()["version"]) == (201, 1)
    again = api.put(url, json=definition(code, effective_from=today().isoformat()), headers=auth(admin))
    assert (again.status_code, again.json()["version"]) == (200, 1)

    ahead = (today() + timedelta(days=10)).isoformat()
    second = api.put(url, json=definition(code, effective_from=ahead, promised_days=1), headers=auth(admin))
    assert (second.status_code, second.json()["version"]) == (201, 2)
    shown = api.get(f"{API}/matters/{code}").json()
    assert (shown["version"], shown["promised_days"]) == (1, 2)  # version 2 is not in force yet

    versions = api.get(f"{url}/versions", headers=auth(admin)).json()
    assert versions["current_version"] == 1
    assert [(item["version"], item["effective_from"], item["in_force"], item["source"]) for item in versions["items"]] \
        == [(1, today().isoformat(), True, "admin"), (2, ahead, False, "admin")]
    assert versions["items"][0]["created_by"].startswith("staff:")

    third = api.put(url, json=definition(code, effective_from=today().isoformat(), promised_days=3), headers=auth(admin))
    assert third.json()["version"] == 3
    assert api.get(f"{API}/matters/{code}").json()["version"] == 3
    assert code in {item["code"] for item in every_matter(api)}


def test_versions_of_a_shipped_matter_and_of_an_unknown_one(api):
    admin = staff_token(api, "admin")
    shipped = api.get(f"{API}/admin/matters/construction-permit/versions", headers=auth(admin)).json()
    assert shipped["items"][0]["source"] == "file" and shipped["current_version"] >= 1
    assert "definition" in shipped["items"][0]
    missing = api.get(f"{API}/admin/matters/no-such-matter/versions", headers=auth(admin))
    assert (missing.status_code, missing.json()["error"]) == (404, "matter_not_found")


# ----------------------------------------------------------------------------- `onestop matters`

def onestop(*args: str, cwd=None):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "api.cli", "matters", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120, cwd=cwd)


def test_matters_check_passes_on_the_shipped_catalogue():
    result = onestop("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok: {len(default_catalogue().matters)} matters") and result.stdout.count("\n") == 1


def test_matters_check_prints_each_problem_with_file_and_path(tmp_path):
    good = (WORKFLOWS_DIR / "catalogue" / "residence-certificate.yaml").read_text(encoding="utf-8")
    (tmp_path / "residence-certificate.yaml").write_text(good.replace("promised_days: 2", "promised_days: 9")
                                                         .replace("handle_level: village", "handle_level: city"),
                                                         encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("code: broken\nname: [\n", encoding="utf-8")
    result = onestop("check", str(tmp_path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.endswith("residence-certificate.yaml: handle_level: Input should be 'county', 'town' or 'village'")
               for line in lines), lines
    assert any("broken.yaml: line " in line and "not valid YAML" in line for line in lines), lines
    assert "2 problem(s)" in result.stderr
    fixed = good
    (tmp_path / "residence-certificate.yaml").write_text(fixed, encoding="utf-8")
    (tmp_path / "broken.yaml").unlink()
    assert onestop("check", str(tmp_path)).returncode == 0


def test_matters_graph_schema_and_list():
    graph = onestop("graph", "minimum-living-allowance")
    assert graph.returncode == 0 and graph.stdout.startswith("stateDiagram-v2\n")
    for state in default_catalogue().get("minimum-living-allowance").lifecycle.states:
        assert f" as {state}\n" in graph.stdout
    unknown = onestop("graph", "no-such-matter")
    assert unknown.returncode != 0 and "unknown matter" in unknown.stderr

    schema = onestop("schema")
    assert schema.returncode == 0
    assert schema.stdout == (WORKFLOWS_DIR / "schema" / "matter.schema.json").read_text(encoding="utf-8")

    listing = onestop("list")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == sorted(default_catalogue().matters)


def test_matters_sync_and_stored_list(api):
    synced = onestop("sync")
    assert synced.returncode == 0 and "unchanged" in synced.stderr
    stored = onestop("list", "--stored")
    assert stored.returncode == 0
    assert set(default_catalogue().matters) <= {line.split()[0] for line in stored.stdout.splitlines()}
