"""Two clerks acting on the same case at the same moment, over real HTTP against a uvicorn
server on the suite's database (PostgreSQL in CI): one succeeds, the other gets 409, and the
history has one event for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from services.cases.models import CaseEvent
from tests.services.cases.helpers import staff
from tests.support import WITH_STATION, residence_application, submit, upload_pdf, verified_citizen

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(seeded):
    port = _free_port()
    env = {**os.environ, "ONESTOP_RUN_WORKER_IN_SERVER": "false", "ONESTOP_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.asgi:app", "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_two_clerks_accept_the_same_case_at_once_over_http(client, server, engine):
    clerk = staff(client, f"clerk-{WITH_STATION}")
    supervisor = staff(client, "supervisor-361130102")  # also may accept at that station
    cases = []
    for _ in range(ROUNDS):
        token, id_number = verified_citizen(client)
        cases.append(submit(client, token, residence_application(id_number, upload_pdf(client, token))).json())

    outcomes: dict[str, list[int]] = {case["id"]: [] for case in cases}
    with httpx.Client(base_url=server, timeout=30) as one, httpx.Client(base_url=server, timeout=30) as two:
        for case in cases:
            barrier = threading.Barrier(2)

            def accept(http: httpx.Client, token: str) -> None:
                barrier.wait()
                response = http.post(f"/api/v1/cases/{case['id']}/actions", json={"action": "accept", "version": 1},
                                     headers={"Authorization": f"Bearer {token}"})
                outcomes[case["id"]].append(response.status_code)
                if response.status_code == 409:
                    assert response.json()["error"] == "stale_version"

            threads = [threading.Thread(target=accept, args=(one, clerk)),
                       threading.Thread(target=accept, args=(two, supervisor))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    for case in cases:
        assert sorted(outcomes[case["id"]]) == [200, 409], outcomes
    with Session(engine) as session:
        for case in cases:
            actions = [e.action for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == case["id"])
                                                      .order_by(CaseEvent.seq))]
            assert actions == ["submit", "accept"]
