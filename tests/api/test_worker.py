"""The outbox worker issues certificates both inside the server and as `onestop worker`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fastapi.testclient import TestClient

from tests.support import (WITH_STATION, act, auth, residence_application, staff_token, submit, upload_pdf,
                                verified_citizen)


def _approved_case(client) -> tuple[dict, str]:
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    clerk = staff_token(client, f"clerk-{WITH_STATION}")
    case = act(client, clerk, case, "accept").json()
    case = act(client, clerk, case, "approve").json()
    assert case["state"] == "approved"
    return case, clerk


def _wait_for_certificate(client, case_id: str, clerk: str, seconds: float = 60) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ids = client.get(f"/api/v1/cases/{case_id}", headers=auth(clerk)).json()["certificate_ids"]
        if ids:
            return ids
        time.sleep(0.2)
    return []


def test_the_worker_inside_the_server_issues_the_certificate(seeded):
    from api.app import create_app

    with TestClient(create_app(start_worker=True)) as client:
        case, clerk = _approved_case(client)
        assert len(_wait_for_certificate(client, case["id"], clerk)) == 1


def test_onestop_worker_issues_the_certificate(client):
    case, clerk = _approved_case(client)
    worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert len(_wait_for_certificate(client, case["id"], clerk)) == 1
    finally:
        worker.terminate()
        worker.wait(timeout=30)
