"""WeChat sign-in: every failure of WeChat's protocol maps to the right answer."""

from __future__ import annotations

import time
import uuid

import pytest

from api.deps import wechat_client
from services.wechat.client import WeChatClient
from tests.services.accounts.helpers import client_from, issue6_app


@pytest.fixture(scope="module")
def app(seeded):
    return issue6_app()


@pytest.fixture(scope="module")
def api(app):
    with client_from(app, "198.51.100.10") as client:
        yield client


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "detail"} and body["error"] == code
    return body


@pytest.mark.parametrize("code, status, error", [
    ("err-40029", 401, "wechat_code_invalid"),   # invalid code
    ("err-40163", 401, "wechat_code_invalid"),   # code already used
    ("err-40226", 403, "wechat_user_blocked"),   # high-risk user blocked by WeChat
    ("err-busy", 503, "wechat_unavailable"),     # -1 system busy
    ("err-500", 503, "wechat_unavailable"),      # WeChat answers HTTP 500 with HTML
    ("not-a-demo-code", 401, "wechat_code_invalid"),
])
def test_wechat_errors_map_to_answers(api, code, status, error):
    _error(api.post("/api/v1/auth/wechat-login", json={"code": code}), status, error)


def test_wechat_quota_is_429_with_retry_after(api):
    response = api.post("/api/v1/auth/wechat-login", json={"code": "err-45011"})
    _error(response, 429, "wechat_rate_limited")
    assert int(response.headers["Retry-After"]) > 0


def test_a_used_code_is_refused_the_second_time(api):
    code = f"demo-wang.{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/auth/wechat-login", json={"code": code}).status_code == 200
    _error(api.post("/api/v1/auth/wechat-login", json={"code": code}), 401, "wechat_code_invalid")


def test_a_slow_wechat_times_out_as_503(app, api):
    from services.config import get_settings
    from services.wechat.fake_server import create_fake_wechat_app, serve_in_thread

    settings = get_settings()
    base_url, stop = serve_in_thread(create_fake_wechat_app(appid=settings.wechat_appid, secret=settings.wechat_secret,
                                                            slow_seconds=0.8))
    slow_client = WeChatClient(base_url=base_url, appid=settings.wechat_appid, secret=settings.wechat_secret,
                               timeout=0.2)
    app.dependency_overrides[wechat_client] = lambda: slow_client
    try:
        started = time.monotonic()
        _error(api.post("/api/v1/auth/wechat-login", json={"code": "err-slow"}), 503, "wechat_unavailable")
        assert time.monotonic() - started < 0.7  # the fake answers after 0.8 s; we gave up before
    finally:
        app.dependency_overrides.pop(wechat_client, None)
        slow_client.close()
        time.sleep(0.8)  # let the fake finish its slow answer before it stops
        stop()


def test_bad_bodies_are_422_not_a_call_to_wechat(api, fake_wechat):
    for body in ({}, {"code": ""}, {"code": "x" * 129}, {"code": 5}, {"code": "demo-a.1", "extra": True}):
        _error(api.post("/api/v1/auth/wechat-login", json=body), 422, "validation_error")
