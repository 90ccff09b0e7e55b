"""Real-name binding through WeChat face verification: verified binds, one number one account,
a verify_id answers once, an account binds once."""

from __future__ import annotations

import pytest

from services.ratelimit import reset_limiter
from services.ratelimit.settings import get_rate_limit_settings
from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import auth, citizen_token, make_id_number, verified_citizen


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.90") as client:
        yield client


def _start(api, token, name="张三", id_number=None):
    return api.post("/api/v1/me/real-name/start", json={"name": name, "id_number": id_number or make_id_number()},
                    headers=auth(token))


def test_an_account_binds_once(api):
    token, _ = verified_citizen(api)
    again = _start(api, token)
    assert again.status_code == 409 and again.json()["error"] == "real_name_already_verified"


def test_a_verify_id_answers_once_even_when_it_failed(api):
    token = citizen_token(api)
    started = _start(api, token, name="失败").json()
    first = api.post("/api/v1/me/real-name", json={"verify_id": started["verify_id"]}, headers=auth(token))
    assert first.status_code == 422 and first.json()["error"] == "face_verify_failed"
    second = api.post("/api/v1/me/real-name", json={"verify_id": started["verify_id"]}, headers=auth(token))
    assert second.status_code == 422
    assert api.get("/api/v1/me", headers=auth(token)).json()["real_name_verified"] is False


def test_names_and_numbers_are_checked_before_wechat_is_asked(api, fake_wechat):
    token = citizen_token(api)
    for name in ("张三<script>", "a" * 51, "   "):
        assert _start(api, token, name=name).status_code == 422, name
    bad = _start(api, token, id_number="361130199003071231")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_id_number"
    assert _start(api, token, name="阿依古丽·买买提").status_code == 200


def test_only_citizens_bind_a_real_name(api):
    from tests.support import staff_token

    clerk = staff_token(api, "clerk-361130-1")
    assert _start(api, clerk).status_code == 403


def test_face_verification_is_rate_limited_per_account(api, monkeypatch):
    from services.config import get_settings

    monkeypatch.setattr(get_settings(), "rate_limits", "on")
    monkeypatch.setattr(get_rate_limit_settings(), "real_name", "2/hour")
    reset_limiter()
    try:
        token = citizen_token(api)
        assert [_start(api, token).status_code for _ in range(3)] == [200, 200, 429]
        other = citizen_token(api)
        assert _start(api, other).status_code == 200
    finally:
        reset_limiter()
