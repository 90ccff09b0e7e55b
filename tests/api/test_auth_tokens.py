"""Tokens: rotation, reuse detection (the whole family ends, access tokens included), logout,
revocation shared through Redis when configured (the database otherwise)."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from services.accounts import principal_cache, tokens
from services.config import get_settings
from tests.services.accounts.helpers import client_from, issue6_app
from tests.support import auth

REDIS_URL = os.environ.get("ONESTOP_TEST_REDIS_URL")


@pytest.fixture(scope="module")
def api(seeded):
    with client_from(issue6_app(), "198.51.100.20") as client:
        yield client


def _login(api, name: str | None = None) -> dict:
    name = name or f"tok{uuid.uuid4().hex[:8]}"
    response = api.post("/api/v1/auth/wechat-login", json={"code": f"demo-{name}.{uuid.uuid4().hex[:8]}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_token_answer_has_the_contract_fields(api):
    answer = _login(api)
    assert set(answer) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert answer["token_type"] == "bearer" and answer["expires_in"] == get_settings().access_token_minutes * 60
    assert set(answer["user"]) == {"id", "roles", "real_name_verified", "name_masked", "service_point"}


def test_reuse_of_a_refresh_token_ends_the_family_access_tokens_included(api):
    first = _login(api)
    second = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert api.get("/api/v1/me", headers=auth(second["access_token"])).status_code == 200
    reuse = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json()["detail"] == {"reason": "reused"}
    for token in (first["access_token"], second["access_token"]):
        assert api.get("/api/v1/me", headers=auth(token)).status_code == 401
    assert api.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
    # another sign-in of the same person is another family, untouched
    other = _login(api)
    assert api.get("/api/v1/me", headers=auth(other["access_token"])).status_code == 200


def test_two_refreshes_racing_with_one_token_cannot_both_win(api):
    start = _login(api)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def use() -> None:
        barrier.wait()
        results.append(api.post("/api/v1/auth/refresh", json={"refresh_token": start["refresh_token"]}).status_code)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) in ([200, 401], [401, 401])


def test_logout_ends_this_session_only(api):
    name = f"two{uuid.uuid4().hex[:6]}"
    phone, tablet = _login(api, name), _login(api, name)
    assert api.post("/api/v1/auth/logout", headers=auth(phone["access_token"])).status_code == 204
    assert api.get("/api/v1/me", headers=auth(phone["access_token"])).status_code == 401
    assert api.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}).status_code == 401
    assert api.get("/api/v1/me", headers=auth(tablet["access_token"])).status_code == 200
    assert api.post("/api/v1/auth/logout", headers=auth(phone["access_token"])).status_code == 204  # idempotent


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (ONESTOP_TEST_REDIS_URL)")
def test_revocation_lives_in_redis_for_the_token_s_remaining_life(api):
    import redis

    answer = _login(api)
    claims = tokens.decode_access_token(answer["access_token"])
    assert api.post("/api/v1/auth/logout", headers=auth(answer["access_token"])).status_code == 204
    client = redis.Redis.from_url(REDIS_URL)
    ttl_ms = client.pttl(f"onestop:revoked-jti:{claims.jti}")
    assert 0 < ttl_ms <= get_settings().access_token_minutes * 60 * 1000 + 1000
    # another API process (same Redis, its own memory) refuses it too
    client.delete(f"onestop:revoked-jti:{claims.jti}")
    assert api.get("/api/v1/me", headers=auth(answer["access_token"])).status_code == 200  # Redis is the check
    client.set(f"onestop:revoked-jti:{claims.jti}", "1", px=60_000)
    assert api.get("/api/v1/me", headers=auth(answer["access_token"])).status_code == 401


def test_when_redis_does_not_answer_the_database_decides(api, monkeypatch):
    import redis
    import redis.asyncio

    answer = _login(api)
    assert api.post("/api/v1/auth/logout", headers=auth(answer["access_token"])).status_code == 204
    broken = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    monkeypatch.setattr(tokens, "redis_client", lambda: broken)
    monkeypatch.setattr(principal_cache, "redis_client", lambda: broken)
    monkeypatch.setattr(principal_cache, "async_redis_client",
                        lambda: redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    assert api.get("/api/v1/me", headers=auth(answer["access_token"])).status_code == 401
    fresh = _login(api)
    assert api.get("/api/v1/me", headers=auth(fresh["access_token"])).status_code == 200
    assert api.post("/api/v1/auth/logout", headers=auth(fresh["access_token"])).status_code == 204
    assert api.get("/api/v1/me", headers=auth(fresh["access_token"])).status_code == 401


def test_tokens_for_accounts_that_do_not_exist_or_malformed_subjects_are_401(api):
    from jose import jwt
    import time

    settings = get_settings()
    private_pem = tokens._keys()[0]
    now = int(time.time())
    base = {"roles": ["citizen"], "jti": str(uuid.uuid4()), "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
            "typ": "access", "fam": "f", "iat": now, "exp": now + 600}
    for subject in ("citizen:999999999", "citizen:abc", "staff:", "robot:1", "citizen:1" + "0" * 40):
        token = jwt.encode({**base, "sub": subject}, private_pem, algorithm="ES256")
        response = api.get("/api/v1/me", headers=auth(token))
        assert response.status_code == 401, (subject, response.text)
    refresh_typed = jwt.encode({**base, "sub": "citizen:1", "typ": "refresh"}, private_pem, algorithm="ES256")
    assert api.get("/api/v1/me", headers=auth(refresh_typed)).status_code == 401
    assert api.get("/api/v1/me", headers={"Authorization": "Bearer " + "a" * 5000}).status_code == 401
    assert api.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
