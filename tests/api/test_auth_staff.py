"""Staff sign-in: argon2 passwords, lock-out per account and per address (429 + Retry-After),
password change that ends every other session, and sign-in rate limits."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from services.accounts.models import LoginAttempt
from services.accounts.passwords import hash_password
from services.accounts.settings import get_account_settings
from services.config import get_settings
from services.db import session_scope
from services.points.models import ServicePoint, Staff
from services.ratelimit import reset_limiter
from services.ratelimit.settings import get_rate_limit_settings
from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import auth

PASSWORD = "Initial-Passw0rd"


@pytest.fixture(scope="module")
def app(seeded):
    return issue6_app()


@pytest.fixture(autouse=True)
def fewer_failures(monkeypatch):
    """A lower lock-out threshold keeps these tests quick (each failure costs an argon2 hash);
    the rule is the same at 10."""
    monkeypatch.setattr(get_account_settings(), "login_max_failures", 4)


def _address() -> str:
    return f"203.0.113.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def api(app):
    with client_from(app, _address()) as client:
        yield client


@pytest.fixture
def staff_account(seeded) -> str:
    """A clerk of the county centre with a known password, made for one test."""
    username = f"clerk-test-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        point = session.exec(select(ServicePoint).where(ServicePoint.level == "county")).first()
        session.add(Staff(username=username, display_name="测试员", role="clerk", service_point_id=point.id,
                          password_hash=hash_password(PASSWORD)))
    return username


def _login(api, username: str, password: str):
    return api.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_the_account_locks_after_repeated_failures_even_for_the_right_password(app, api, staff_account):
    limit = get_account_settings().login_max_failures
    for _ in range(limit):
        assert _login(api, staff_account, "wrong").status_code == 401
    locked = _login(api, staff_account, PASSWORD)
    assert locked.status_code == 429 and locked.json()["error"] == "too_many_attempts"
    window = get_account_settings().login_failure_window_minutes * 60
    assert 0 < int(locked.headers["Retry-After"]) <= window
    # from another address too: the account itself is locked
    with client_from(app, _address()) as elsewhere:
        assert _login(elsewhere, staff_account, PASSWORD).status_code == 429


def test_unknown_usernames_lock_the_same_way(api):
    ghost = f"nobody-{uuid.uuid4().hex[:8]}"
    for _ in range(get_account_settings().login_max_failures):
        assert _login(api, ghost, "x").json()["error"] == "invalid_credentials"
    assert _login(api, ghost, "x").status_code == 429


def test_an_address_locks_after_failures_on_many_accounts(app, api, staff_account):
    for index in range(get_account_settings().login_max_failures):
        assert _login(api, f"spray-{index}-{uuid.uuid4().hex[:6]}", "Summer2026!").status_code == 401
    assert _login(api, staff_account, PASSWORD).status_code == 429  # this address is locked
    with client_from(app, _address()) as elsewhere:
        assert _login(elsewhere, staff_account, PASSWORD).status_code == 200  # the account is not


def test_a_success_clears_the_account_s_failures(app, staff_account):
    limit = get_account_settings().login_max_failures
    with client_from(app, _address()) as first, client_from(app, _address()) as second, \
            client_from(app, _address()) as third:
        for _ in range(limit - 1):
            assert _login(first, staff_account, "wrong").status_code == 401
        assert _login(second, staff_account, PASSWORD).status_code == 200
        for _ in range(limit - 1):  # a fresh count: one short of the limit again
            assert _login(third, staff_account, "wrong").status_code == 401
        assert _login(second, staff_account, PASSWORD).status_code == 200


def test_attempts_are_recorded_without_the_typed_username(api, engine):
    typed = f"password-typed-as-username-{uuid.uuid4().hex[:6]}"
    _login(api, typed, "x")
    from sqlmodel import Session

    with Session(engine) as session:
        rows = session.exec(select(LoginAttempt).order_by(LoginAttempt.id.desc()).limit(5)).all()
    assert rows and all(typed not in (row.account_key + row.address_key + row.address) for row in rows)
    assert rows[0].reason == "invalid" and rows[0].succeeded is False


def test_password_change_checks_the_policy_and_ends_every_other_session(app, api, staff_account):
    first = _login(api, staff_account, PASSWORD).json()
    second = _login(api, staff_account, PASSWORD).json()
    wrong = api.post("/api/v1/me/password", json={"current_password": "nope", "new_password": "Another-Passw0rd"},
                     headers=auth(first["access_token"]))
    assert wrong.status_code == 403 and wrong.json()["error"] == "current_password_wrong"
    for weak, reason in (("short1A!", "too_short"), ("alllowercaseletters", "too_simple"),
                         (f"X{staff_account}9!", "contains_username"), (PASSWORD, "unchanged")):
        response = api.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": weak},
                            headers=auth(first["access_token"]))
        assert response.status_code == 422 and response.json()["error"] == "weak_password", weak
        assert reason in {item["reason"] for item in response.json()["detail"]}
    changed = api.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "Another-Passw0rd"},
                       headers=auth(first["access_token"]))
    assert changed.status_code == 200, changed.text
    fresh = changed.json()
    for old in (first, second):
        assert api.get("/api/v1/me", headers=auth(old["access_token"])).status_code == 401
        assert api.post("/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]}).status_code == 401
    assert api.get("/api/v1/me", headers=auth(fresh["access_token"])).status_code == 200
    assert _login(api, staff_account, PASSWORD).status_code == 401
    assert _login(api, staff_account, "Another-Passw0rd").status_code == 200


def test_citizens_have_no_password_to_change(api):
    token = api.post("/api/v1/auth/wechat-login", json={"code": f"demo-pw.{uuid.uuid4().hex[:8]}"}).json()["access_token"]
    response = api.post("/api/v1/me/password", json={"current_password": "a", "new_password": "Another-Passw0rd"},
                        headers=auth(token))
    assert response.status_code == 403 and response.json()["error"] == "staff_only"


@pytest.fixture
def limits_on(monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limits", "on")
    reset_limiter()
    yield
    reset_limiter()


def test_sign_in_is_rate_limited_per_address_with_retry_after(app, monkeypatch, limits_on):
    monkeypatch.setattr(get_rate_limit_settings(), "wechat_login", "3/minute")
    with client_from(app, _address()) as api, client_from(app, _address()) as neighbour:
        codes = [api.post("/api/v1/auth/wechat-login", json={"code": f"demo-rl.{uuid.uuid4().hex[:8]}"}).status_code
                 for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = api.post("/api/v1/auth/wechat-login", json={"code": f"demo-rl.{uuid.uuid4().hex[:8]}"})
        assert limited.json()["error"] == "rate_limited" and 1 <= int(limited.headers["Retry-After"]) <= 20
        assert neighbour.post("/api/v1/auth/wechat-login",
                              json={"code": f"demo-rl.{uuid.uuid4().hex[:8]}"}).status_code == 200


def test_rate_limits_switch_off(app, monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limits", "off")
    monkeypatch.setattr(get_rate_limit_settings(), "staff_login", "1/hour")
    with client_from(app, _address()) as api:
        assert all(_login(api, "nobody", "x").status_code == 401 for _ in range(3))
