"""Test helpers: sign-in, uploads, applications, actions (the fixtures are in conftest.py)."""

from __future__ import annotations

import itertools
import os
import random
import uuid

from fastapi.testclient import TestClient

from services.subjects.identity_numbers import mod11_2_check

_names = itertools.count(1)
_rng = random.Random(20261126)

MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
               b"trailer<</Root 1 0 R>>\n%%EOF\n")
WITH_STATION = "361130102200"  # 秋口村委会: has a village station in the demo
WITHOUT_STATION = "361130102201"  # 白石村委会: no station, so village matters route to 秋口镇


def make_id_number(region: str = "361130", birth: str | None = None) -> str:
    """A valid 18-digit citizen ID number, different on every call (test data, not a person)."""
    birth = birth or f"19{_rng.randint(50, 99)}{_rng.randint(1, 12):02d}{_rng.randint(1, 28):02d}"
    body = f"{region}{birth}{_rng.randint(0, 999):03d}"
    return body + mod11_2_check(body)


def run_jobs() -> int:
    from services.db import get_engine
    from services.outbox.service import run_until_idle

    return run_until_idle(get_engine())


def suite_redis():
    """A client of the tests' Redis database that answers bytes, as stored (None when the suite
    runs without Redis)."""
    url = os.environ.get("ONESTOP_TEST_REDIS_URL")
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url)


def forget_rate_limits() -> None:
    """Every rate limit's counts gone: this process's, and the tests' Redis ones."""
    from services.ratelimit import reset_limiter

    reset_limiter()
    redis = suite_redis()
    if redis is not None:
        keys = list(redis.scan_iter(match="onestop:rl:*", count=1000))
        if keys:
            redis.delete(*keys)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def citizen_token(client: TestClient, name: str | None = None) -> str:
    name = name or f"citizen{next(_names)}x{uuid.uuid4().hex[:6]}"
    response = client.post("/api/v1/auth/wechat-login", json={"code": f"demo-{name}.{uuid.uuid4().hex[:8]}"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def verified_citizen(client: TestClient, *, name: str = "张三", id_number: str | None = None) -> tuple[str, str]:
    """A signed-in citizen bound to a real name; returns (token, id_number)."""
    token = citizen_token(client)
    id_number = id_number or make_id_number()
    started = client.post("/api/v1/me/real-name/start", json={"name": name, "id_number": id_number},
                          headers=auth(token))
    assert started.status_code == 200, started.text
    finished = client.post("/api/v1/me/real-name", json={"verify_id": started.json()["verify_id"]},
                           headers=auth(token))
    assert finished.status_code == 200, finished.text
    assert finished.json()["real_name_verified"] is True
    return token, id_number


def staff_token(client: TestClient, username: str) -> str:
    from services.demo.seed import demo_password

    response = client.post("/api/v1/auth/login", json={"username": username, "password": demo_password(username)})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def upload_pdf(client: TestClient, token: str, data: bytes = MINIMAL_PDF) -> str:
    response = client.post("/api/v1/files", files={"file": ("id-card.pdf", data, "application/pdf")},
                           headers=auth(token))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def residence_application(id_number: str, file_id: str, *, region_code: str = WITH_STATION,
                          name: str = "张三") -> dict:
    return {
        "matter_code": "residence-certificate",
        "applicant": {"kind": "person", "id_number": id_number, "name": name},
        "region_code": region_code,
        "form": {"address": "婺源县秋口镇秋口村 12 号", "since": "2019-05", "purpose": "子女入学"},
        "materials": [{"code": "id-card", "file_id": file_id}],
    }


def submit(client: TestClient, token: str, body: dict, key: str | None = None):
    return client.post("/api/v1/cases", json=body,
                       headers={**auth(token), "Idempotency-Key": key or uuid.uuid4().hex})


def act(client: TestClient, token: str, case: dict, action: str, **extra):
    return client.post(f"/api/v1/cases/{case['id']}/actions",
                       json={"action": action, "version": case["version"], **extra}, headers=auth(token))


def principal_of(engine, token: str):
    """The Principal a token signs in as, loaded as the API would."""
    from jose import jwt
    from sqlmodel import Session

    from services.accounts.service import load_principal

    with Session(engine) as session:
        return load_principal(session, principal_key=jwt.get_unverified_claims(token)["sub"])


def outcome_once_first_commits(first, open_session, request):
    """Run `request(session)` in a thread, in a session of its own (`open_session()`), while the
    session `first` holds its writes uncommitted. The request must still be waiting after 1.5 s;
    then `first` commits, and the request's outcome is returned: what it returned (its session
    committed) or the code of the OnestopError it raised (rolled back)."""
    import threading

    from services.errors import OnestopError

    outcome = []

    def run() -> None:
        with open_session() as session:
            try:
                result = request(session)
                session.commit()
                outcome.append(result)
            except OnestopError as error:
                session.rollback()
                outcome.append(error.code)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(1.5)
    assert thread.is_alive()  # waiting on what `first` holds
    first.commit()
    first.close()
    thread.join(20)
    assert len(outcome) == 1
    return outcome[0]
