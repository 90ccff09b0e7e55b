"""A response is only sent once its transaction is committed: a client that uses an answer at
once (a new token, a new file) must find it. Against a real uvicorn server, not TestClient,
because the race is between sending the response and committing."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx


def test_what_a_response_announces_is_already_committed(seeded):
    from api.app import create_app
    from services.wechat.fake_server import serve_in_thread

    base_url, stop = serve_in_thread(create_app(start_worker=False))

    def sign_in_and_use_the_token(_: int) -> int:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            login = client.post("/api/v1/auth/wechat-login",
                                json={"code": f"demo-race{uuid.uuid4().hex[:8]}.{uuid.uuid4().hex[:6]}"})
            assert login.status_code == 200, login.text
            return client.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}).status_code

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(sign_in_and_use_the_token, range(48)))
    finally:
        stop()
    assert statuses == [200] * 48
