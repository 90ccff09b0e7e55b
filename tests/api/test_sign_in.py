"""Sign-in, token rotation and revocation, real-name binding."""

from __future__ import annotations

import uuid

from tests.support import auth, citizen_token, make_id_number, staff_token, verified_citizen


def _login(client, name: str) -> dict:
    response = client.post("/api/v1/auth/wechat-login", json={"code": f"demo-{name}.{uuid.uuid4().hex[:8]}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_same_demo_name_is_the_same_citizen_and_a_code_is_single_use(client):
    first = _login(client, "zhaoliu")
    second = _login(client, "zhaoliu")
    assert first["user"]["id"] == second["user"]["id"] and first["user"]["roles"] == ["citizen"]
    code = f"demo-zhaoliu.{uuid.uuid4().hex[:8]}"
    assert client.post("/api/v1/auth/wechat-login", json={"code": code}).status_code == 200
    reused = client.post("/api/v1/auth/wechat-login", json={"code": code})
    assert reused.status_code == 401 and reused.json()["error"] == "wechat_code_invalid"
    assert client.post("/api/v1/auth/wechat-login", json={"code": "garbage"}).json()["error"] == "wechat_code_invalid"


def test_wechat_outage_is_503(client):
    response = client.post("/api/v1/auth/wechat-login", json={"code": "err-busy"})
    assert response.status_code == 503 and response.json()["error"] == "wechat_unavailable"


def test_refresh_rotates_and_reuse_revokes_the_family(client):
    tokens = _login(client, f"rot{uuid.uuid4().hex[:6]}")
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    newer = rotated.json()
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json()["error"] == "invalid_refresh_token"
    # the reuse revoked the whole family, including the newest refresh token
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": newer["refresh_token"]}).status_code == 401


def test_logout_ends_the_access_and_refresh_token(client):
    tokens = _login(client, f"out{uuid.uuid4().hex[:6]}")
    assert client.post("/api/v1/auth/logout", headers=auth(tokens["access_token"])).status_code == 204
    assert client.get("/api/v1/me", headers=auth(tokens["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_staff_me_shows_the_service_point(client):
    token = staff_token(client, "clerk-361130-1")
    me = client.get("/api/v1/me", headers=auth(token)).json()
    assert me["roles"] == ["clerk"] and me["service_point"]["name"] == "婺源县政务服务中心"


def test_face_verification_failure_and_a_number_bound_twice(client):
    token = citizen_token(client)
    started = client.post("/api/v1/me/real-name/start", json={"name": "失败", "id_number": make_id_number()},
                          headers=auth(token)).json()
    failed = client.post("/api/v1/me/real-name", json={"verify_id": started["verify_id"]}, headers=auth(token))
    assert failed.status_code == 422 and failed.json()["error"] == "face_verify_failed"
    unknown = client.post("/api/v1/me/real-name", json={"verify_id": "nope"}, headers=auth(token))
    assert unknown.status_code == 422

    _, id_number = verified_citizen(client, name="孙七")
    other = citizen_token(client)
    started = client.post("/api/v1/me/real-name/start", json={"name": "孙七", "id_number": id_number},
                          headers=auth(other)).json()
    bound = client.post("/api/v1/me/real-name", json={"verify_id": started["verify_id"]}, headers=auth(other))
    assert bound.status_code == 409 and bound.json()["error"] == "id_number_bound"
    me = client.get("/api/v1/me", headers=auth(other)).json()
    assert me["real_name_verified"] is False
