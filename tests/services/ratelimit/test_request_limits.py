"""api.limits: the hardening middleware (JSON depth, NUL characters, giant numbers, bad request
targets, security headers, no stack traces) and the rate-limit dependency."""

from __future__ import annotations

import json
import os
import uuid

import psycopg.errors
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError

from api.errors import install_error_handlers
from api.limits import MAX_JSON_DEPTH, HardeningMiddleware, json_problem, rate_limited
from services.config import get_settings
from services.ratelimit import reset_limiter
from services.ratelimit.settings import get_rate_limit_settings
from tests.services.accounts.helpers import client_from, issue6_app


def _nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def test_json_problems():
    assert json_problem(_nested(MAX_JSON_DEPTH)) is None
    assert json_problem(_nested(MAX_JSON_DEPTH + 1))[0] == "json_too_deep"
    assert json_problem(b'{"a": "' + b"[" * 100 + b'"}') is None  # brackets inside strings don't count
    assert json_problem(b'{"a": "x\\u0000y"}')[0] == "invalid_character"
    assert json_problem(b'{"a": "x\\\\u0000y"}') is None  # an escaped backslash, then the text u0000
    assert json_problem(b'{"a": ' + b"9" * 101 + b"}")[0] == "number_too_long"
    assert json_problem(b'{"a": "' + b"9" * 500 + b'"}') is None
    assert json_problem(b'{"a": "\\"[[["}') is None


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.80") as client:
        yield client


def _is_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": code, "message": response.json()["message"], "detail": None}


def test_hostile_json_is_refused_before_any_route(api):
    headers = {"Content-Type": "application/json"}
    _is_error(api.post("/api/v1/auth/wechat-login", content=b'{"code": ' + _nested(200) + b"}", headers=headers),
              422, "json_too_deep")
    _is_error(api.post("/api/v1/auth/wechat-login", content=b'{"code": ' + _nested(100_000) + b"}", headers=headers),
              422, "json_too_deep")
    _is_error(api.post("/api/v1/auth/wechat-login", content=b'{"code": "demo-a\\u0000"}', headers=headers),
              422, "invalid_character")
    _is_error(api.post("/api/v1/auth/wechat-login", content=b'{"code": ' + b"1" * 5000 + b"}", headers=headers),
              422, "number_too_long")
    # no Content-Type: FastAPI would parse it as JSON, so it is checked as JSON
    _is_error(api.post("/api/v1/auth/wechat-login", content=_nested(40)), 422, "json_too_deep")
    # an ordinary bad body still gets the usual field errors
    assert api.post("/api/v1/auth/wechat-login", json={"code": ["x"]}).json()["error"] == "validation_error"


def test_nul_bytes_and_broken_utf8_in_paths_and_queries_are_400(api):
    for url in ("/api/v1/matters/a%00b", "/api/v1/matters?q=a%00b", "/api/v1/matters/%ff%fe", "/api/v1/matters?q=%C3%28"):
        _is_error(api.get(url), 400, "invalid_request_target")
    assert api.get("/api/v1/matters?q=%E5%B1%85%E4%BD%8F").status_code == 200  # 居住: fine


def test_every_answer_carries_the_security_headers(api):
    for response in (api.get("/healthz"), api.get("/api/v1/nothing"), api.get("/api/v1/me"),
                     api.post("/api/v1/auth/wechat-login", content=_nested(50))):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "no-store" in response.headers["cache-control"]


def test_large_bodies_pass_through_to_the_route_s_own_limit(api):
    token = api.post("/api/v1/auth/wechat-login", json={"code": f"demo-big.{uuid.uuid4().hex[:8]}"}).json()["access_token"]
    body = json.dumps({"x": "a" * (3 * 1024 * 1024)}).encode()
    response = api.post("/api/v1/cases", content=body, headers={"Authorization": f"Bearer {token}",
                                                                 "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def _app_with_a_broken_route() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(HardeningMiddleware)

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("secret detail /etc/passwd")

    @app.post("/echo")
    def echo(body: dict) -> dict:
        return body

    @app.get("/deadlock")
    def deadlock() -> dict:
        raise DBAPIError("UPDATE clerk_loads …", None, psycopg.errors.DeadlockDetected("deadlock detected"))

    @app.get("/database-error")
    def database_error() -> dict:
        raise DBAPIError("SELECT …", None, psycopg.errors.UndefinedTable("relation \"secret_table\" does not exist"))

    @app.get("/limited", dependencies=[Depends(rate_limited("submit"))])
    def limited() -> dict:
        return {"ok": True}

    return app


def test_no_stack_trace_ever_reaches_a_client():
    with TestClient(_app_with_a_broken_route(), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": response.json()["message"], "detail": None}
    assert "Traceback" not in response.text and "passwd" not in response.text


def test_a_transaction_the_database_gave_up_is_503_try_again_and_other_database_errors_500():
    with TestClient(_app_with_a_broken_route(), raise_server_exceptions=False) as client:
        busy = client.get("/deadlock")
        broken = client.get("/database-error")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.json() == {"error": "database_busy", "message": busy.json()["message"], "detail": None}
    assert broken.status_code == 500 and broken.json()["error"] == "internal_error"
    assert "secret_table" not in broken.text and "clerk_loads" not in busy.text


def test_a_body_read_by_the_middleware_reaches_the_route_unchanged():
    with TestClient(_app_with_a_broken_route()) as client:
        body = {"name": "张三", "nested": [[{"a": 1}]], "text": "\\u0000 is fine as text"}
        assert client.post("/echo", json=body).json() == body


def test_the_rate_limit_dependency_answers_429_with_retry_after(monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limits", "on")
    monkeypatch.setattr(get_rate_limit_settings(), "submit", "2/minute")
    reset_limiter()
    try:
        with TestClient(_app_with_a_broken_route(), client=(f"limit-{uuid.uuid4().hex}", 1)) as client:
            assert [client.get("/limited").status_code for _ in range(3)] == [200, 200, 429]
            refused = client.get("/limited")
            assert refused.json()["error"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
    finally:
        reset_limiter()


def test_the_per_account_limit_counts_each_account_and_still_sees_revoked_tokens(api, monkeypatch):
    """`rate_limited_principal`: the route's principal, counted per signed-in account (429 with
    Retry-After over the limit; another account has its own count). With Redis the limit's
    script reads the token's revocation along: a signed-out token is still 401."""
    from tests.support import MINIMAL_PDF, auth

    monkeypatch.setattr(get_settings(), "rate_limits", "on")
    monkeypatch.setattr(get_rate_limit_settings(), "upload", "2/minute")
    reset_limiter()

    def login() -> str:
        code = f"demo-lim{uuid.uuid4().hex[:8]}.{uuid.uuid4().hex[:6]}"
        answer = api.post("/api/v1/auth/wechat-login", json={"code": code})
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def upload(token: str):
        return api.post("/api/v1/files", files={"file": ("a.pdf", MINIMAL_PDF, "application/pdf")}, headers=auth(token))

    try:
        first, second = login(), login()
        assert [upload(first).status_code for _ in range(3)] == [201, 201, 429]
        refused = upload(first)
        assert refused.json()["error"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
        assert upload(second).status_code == 201  # its own count
        assert api.post("/api/v1/auth/logout", headers=auth(second)).status_code == 204
        assert upload(second).status_code == 401
        assert upload("not-a-token").status_code == 401
    finally:
        reset_limiter()


@pytest.mark.skipif(not os.environ.get("ONESTOP_TEST_REDIS_URL"), reason="needs Redis (ONESTOP_TEST_REDIS_URL)")
def test_a_limited_request_asks_redis_once_for_its_limit_and_its_principal(api, monkeypatch):
    """The limit's script reads the principal's revocation and generation in the same round
    trip: a limited request runs the script and no MGET of its own."""
    from tests.support import MINIMAL_PDF, auth, suite_redis

    monkeypatch.setattr(get_settings(), "rate_limits", "on")
    reset_limiter()
    redis = suite_redis()
    code = f"demo-once{uuid.uuid4().hex[:8]}.{uuid.uuid4().hex[:6]}"
    answer = api.post("/api/v1/auth/wechat-login", json={"code": code})
    token = answer.json()["access_token"]

    def upload() -> int:
        return api.post("/api/v1/files", files={"file": ("a.pdf", MINIMAL_PDF, "application/pdf")},
                        headers=auth(token)).status_code

    try:
        assert upload() == 201  # the principal is cached, the script loaded
        marker = f"end-{uuid.uuid4().hex}"
        with redis.monitor() as monitor:
            assert upload() == 201
            redis.echo(marker)
            sent = []  # the commands clients sent (not those a script ran inside Redis)
            while True:
                command = monitor.next_command()
                if marker in command["command"]:
                    break
                if command.get("client_type") != "lua":
                    sent.append(command["command"].split()[0].upper())
        assert sent.count("EVALSHA") + sent.count("EVAL") == 1 and "MGET" not in sent, sent
    finally:
        reset_limiter()
