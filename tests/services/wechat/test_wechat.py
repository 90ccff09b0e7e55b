"""WeChatClient against the shipped fake WeChat server, over real HTTP (uvicorn in a thread)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from services.errors import Forbidden, ServiceUnavailable, TooManyRequests, Unauthorized
from services.wechat import client as client_module
from services.wechat.client import (
    InMemoryTokenCache,
    SubscribeMessageInvalid,
    SubscribeRefused,
    WeChatClient,
    WeChatCodeInvalid,
    WeChatError,
    WeChatRateLimited,
    WeChatUnavailable,
    WeChatUserBlocked,
    cert_hash,
    get_wechat_client,
)
from services.wechat.fake_server import (
    FakeWeChat,
    create_fake_wechat_app,
    demo_openid,
    serve_in_thread,
)

APPID = "wxtest0000000001"
SECRET = "test-secret-for-the-fake"
SLOW_SECONDS = 1.5
# The sample number from GB 11643 (valid check character); not a real person's.
ID_NUMBER = "11010519491231002X"
NAME = "张三"


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[str, FakeWeChat]]:
    app = create_fake_wechat_app(appid=APPID, secret=SECRET, slow_seconds=SLOW_SECONDS)
    base_url, stop = serve_in_thread(app)
    yield base_url, app.state.fake
    stop()


@pytest.fixture
def base_url(fake_server: tuple[str, FakeWeChat]) -> str:
    return fake_server[0]


@pytest.fixture
def fake(fake_server: tuple[str, FakeWeChat]) -> FakeWeChat:
    return fake_server[1]


@pytest.fixture
def wechat(base_url: str) -> Iterator[WeChatClient]:
    client = WeChatClient(base_url=base_url, appid=APPID, secret=SECRET, timeout=5.0)
    yield client
    client.close()


def unique(prefix: str = "n") -> str:
    """A fresh nonce, so tests sharing the session-wide fake never reuse a code."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def raw_session(base_url: str, code: str, *, appid: str = APPID, secret: str = SECRET) -> httpx.Response:
    return httpx.get(
        f"{base_url}/sns/jscode2session",
        params={"appid": appid, "secret": secret, "js_code": code, "grant_type": "authorization_code"},
    )


# ---------------------------------------------------------------------------------------------
# Sign-in


def test_demo_code_signs_in_as_the_stable_openid_of_the_name(wechat: WeChatClient, fake: FakeWeChat) -> None:
    first = wechat.code_to_session(f"demo-alice.{unique()}")
    second = wechat.code_to_session(f"demo-alice.{unique()}")
    assert first.openid == second.openid == fake.openid_for("alice") == demo_openid(SECRET, "alice")
    assert first.unionid and first.unionid == second.unionid

    bob = wechat.code_to_session(f"demo-bob.{unique()}")
    assert bob.openid != first.openid
    assert bob.unionid != first.unionid

    # Shaped like a real openid, and the name can't be read from it.
    assert first.openid.startswith("o") and len(first.openid) == 28
    assert "alice" not in first.openid.lower()


def test_demo_code_without_nonce_works_once(wechat: WeChatClient, fake: FakeWeChat) -> None:
    name = unique("plain")
    assert wechat.code_to_session(f"demo-{name}").openid == fake.openid_for(name)
    with pytest.raises(WeChatCodeInvalid):
        wechat.code_to_session(f"demo-{name}")


def test_reused_code_is_invalid(wechat: WeChatClient, base_url: str) -> None:
    code = f"demo-carol.{unique()}"
    wechat.code_to_session(code)
    with pytest.raises(WeChatCodeInvalid) as caught:
        wechat.code_to_session(code)
    assert caught.value.status_code == 401
    assert caught.value.code == "wechat_code_invalid"
    assert caught.value.message == "微信登录凭证无效或已使用"
    assert raw_session(base_url, code).json() == {"errcode": 40163, "errmsg": "code been used"}


def test_used_code_expires_after_five_minutes(wechat: WeChatClient, fake: FakeWeChat, base_url: str) -> None:
    code = f"demo-dave.{unique()}"
    wechat.code_to_session(code)
    fake.advance_time(301)
    assert raw_session(base_url, code).json() == {"errcode": 40029, "errmsg": "invalid code"}
    with pytest.raises(WeChatCodeInvalid):
        wechat.code_to_session(code)


@pytest.mark.parametrize(
    "code",
    [
        "garbage",
        "demo-",
        "demo-alice.",
        "demo-a.b.c",
        "demo-" + "a" * 33,
        "demo-alice." + "n" * 65,
        "demo-张三",
        "demo-al ice",
        "",
    ],
)
def test_malformed_codes_are_invalid(wechat: WeChatClient, code: str) -> None:
    with pytest.raises(WeChatCodeInvalid):
        wechat.code_to_session(code)


@pytest.mark.parametrize(
    ("code", "error", "base", "status"),
    [
        ("err-40029", WeChatCodeInvalid, Unauthorized, 401),
        ("err-40163", WeChatCodeInvalid, Unauthorized, 401),
        ("err-45011", WeChatRateLimited, TooManyRequests, 429),
        ("err-40226", WeChatUserBlocked, Forbidden, 403),
        ("err-busy", WeChatUnavailable, ServiceUnavailable, 503),
        ("err-500", WeChatUnavailable, ServiceUnavailable, 503),
    ],
)
def test_error_codes_raise_typed_errors(wechat: WeChatClient, code: str, error: type, base: type, status: int) -> None:
    with pytest.raises(error) as caught:
        wechat.code_to_session(code)
    assert isinstance(caught.value, base)
    assert caught.value.status_code == status


def test_rate_limited_carries_retry_after(wechat: WeChatClient) -> None:
    with pytest.raises(WeChatRateLimited) as caught:
        wechat.code_to_session("err-45011")
    assert caught.value.retry_after == 60
    assert caught.value.code == "wechat_rate_limited"


def test_fake_answers_like_wechat(base_url: str) -> None:
    # HTTP 200 even for errors, JSON labelled text/plain (as the real jscode2session does).
    answer = raw_session(base_url, "err-40226")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert json.loads(answer.content) == {"errcode": 40226, "errmsg": "code blocked"}
    assert raw_session(base_url, "err-45011").json()["errcode"] == 45011
    assert raw_session(base_url, "err-busy").json() == {"errcode": -1, "errmsg": "system error"}
    failed = raw_session(base_url, "err-500")
    assert failed.status_code == 500 and "<html>" in failed.text
    # Wrong app credentials.
    assert raw_session(base_url, f"demo-x.{unique()}", appid="wxnope").json()["errcode"] == 40013
    assert raw_session(base_url, f"demo-x.{unique()}", secret="nope").json()["errcode"] == 40125
    # A success has no errcode, openid and session_key.
    ok = raw_session(base_url, f"demo-x.{unique()}").json()
    assert set(ok) == {"openid", "session_key", "unionid"}


def test_wrong_secret_is_a_wechat_error(base_url: str) -> None:
    with WeChatClient(base_url=base_url, appid=APPID, secret="wrong") as client:
        with pytest.raises(WeChatError) as caught:
            client.code_to_session(f"demo-eve.{unique()}")
        assert caught.value.detail == {"errcode": 40125}
        with pytest.raises(WeChatError) as caught:
            client.access_token()
        assert caught.value.detail == {"errcode": 40125}


def test_slow_wechat_is_unavailable(base_url: str) -> None:
    with WeChatClient(base_url=base_url, appid=APPID, secret=SECRET, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(WeChatUnavailable) as caught:
            client.code_to_session("err-slow")
        assert time.monotonic() - started < SLOW_SECONDS
    assert caught.value.detail == {"reason": "timeout"}
    assert caught.value.status_code == 503
    assert caught.value.code == "wechat_unavailable"


def test_unreachable_wechat_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port is closed now: connection refused.
    with WeChatClient(base_url=f"http://127.0.0.1:{port}", appid=APPID, secret=SECRET, timeout=2.0) as client:
        with pytest.raises(WeChatUnavailable):
            client.code_to_session(f"demo-frank.{unique()}")
        with pytest.raises(WeChatUnavailable):
            client.access_token()


def test_non_json_answer_is_unavailable() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>maintenance</html>"))
    with WeChatClient(base_url="http://wechat.invalid", appid=APPID, secret=SECRET, transport=transport) as client:
        with pytest.raises(WeChatUnavailable) as caught:
            client.code_to_session("anything")
    assert caught.value.detail == {"reason": "bad_response"}


# ---------------------------------------------------------------------------------------------
# Access token


def test_access_token_is_cached_and_refreshed_after_expiry(wechat: WeChatClient, fake: FakeWeChat) -> None:
    before = fake.token_requests
    token = wechat.access_token()
    assert wechat.access_token() == token
    openid = fake.openid_for("grace")
    wechat.get_verify_id(openid=openid, name=NAME, id_number=ID_NUMBER, out_seq_no=unique())
    wechat.get_verify_id(openid=openid, name=NAME, id_number=ID_NUMBER, out_seq_no=unique())
    assert fake.token_requests == before + 1

    fake.expire_tokens()
    # The cached token is refused with 42001; the client fetches a new one and retries once.
    verify_id, _ = wechat.get_verify_id(openid=openid, name=NAME, id_number=ID_NUMBER, out_seq_no=unique())
    assert verify_id
    assert fake.token_requests == before + 2
    assert wechat.access_token() != token


def test_unknown_token_is_replaced(base_url: str, fake: FakeWeChat) -> None:
    cache = InMemoryTokenCache()
    with WeChatClient(base_url=base_url, appid=APPID, secret=SECRET, token_cache=cache) as client:
        cache.set(f"onestop:wechat:access_token:{APPID}", "not-a-token", 3600)  # answered with 40001
        msgid = client.send_subscribe_message(
            openid=fake.openid_for("henry"), template_id="tmpl-progress", data={"thing1": "已受理"}
        )
        assert msgid
        assert client.access_token() != "not-a-token"


def test_stable_token_still_refused_triggers_force_refresh() -> None:
    """If stable_token keeps handing back the token just refused, force_refresh gets a new one."""
    calls: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            body = json.loads(request.content)
            calls.append(body)
            token = "T2" if body.get("force_refresh") else "T1"
            return httpx.Response(200, json={"access_token": token, "expires_in": 7200})
        if request.url.params["access_token"] == "T1":
            return httpx.Response(200, json={"errcode": 40001, "errmsg": "invalid credential"})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "msgid": 42})

    transport = httpx.MockTransport(handler)
    with WeChatClient(base_url="http://wechat.invalid", appid=APPID, secret=SECRET, transport=transport) as client:
        assert client.send_subscribe_message(openid="o1", template_id="t", data={"thing1": "x"}) == "42"
    assert [c.get("force_refresh", False) for c in calls] == [False, False, True]


def test_token_refused_twice_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": f"T{uuid.uuid4().hex}", "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 42001, "errmsg": "access_token expired"})

    transport = httpx.MockTransport(handler)
    with WeChatClient(base_url="http://wechat.invalid", appid=APPID, secret=SECRET, transport=transport) as client:
        with pytest.raises(WeChatError) as caught:
            client.get_verify_id(openid="o1", name=NAME, id_number=ID_NUMBER, out_seq_no="s1")
    assert caught.value.detail == {"errcode": 42001}


def test_fake_token_endpoints(base_url: str, fake: FakeWeChat) -> None:
    basic = httpx.get(
        f"{base_url}/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    ).json()
    assert basic["expires_in"] == 7200 and basic["access_token"]
    assert fake.check_token(basic["access_token"]) is None
    wrong = httpx.get(
        f"{base_url}/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": "x"}
    ).json()
    assert wrong["errcode"] == 40125

    stable_url = f"{base_url}/cgi-bin/stable_token"
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    first = httpx.post(stable_url, json=body).json()
    again = httpx.post(stable_url, json=body).json()
    assert again["access_token"] == first["access_token"]  # normal mode: same token while valid
    forced = httpx.post(stable_url, json={**body, "force_refresh": True}).json()
    assert forced["access_token"] != first["access_token"]
    assert fake.check_token(first["access_token"])["errcode"] == 40001  # replaced at once
    assert fake.check_token(forced["access_token"]) is None
    fake.expire_tokens()
    assert fake.check_token(forced["access_token"])["errcode"] == 42001

    no_token = httpx.post(f"{base_url}/cgi-bin/message/subscribe/send", json={}).json()
    assert no_token["errcode"] == 41001


# ---------------------------------------------------------------------------------------------
# Face verification


def test_cert_hash_formula() -> None:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    expected = hashlib.sha256(
        f"cert_type={b64('IDENTITY_CARD')}&cert_name={b64(NAME)}&cert_no={b64(ID_NUMBER)}".encode()
    ).hexdigest()
    assert cert_hash(cert_type="IDENTITY_CARD", cert_name=NAME, cert_no=ID_NUMBER) == expected


def test_face_verification_passes(wechat: WeChatClient, fake: FakeWeChat) -> None:
    openid = fake.openid_for("ivy")
    seq = unique("seq")
    verify_id, expires_in = wechat.get_verify_id(openid=openid, name=NAME, id_number=ID_NUMBER, out_seq_no=seq)
    assert verify_id and expires_in == 3600
    assert wechat.query_verify_info(openid=openid, verify_id=verify_id, out_seq_no=seq, name=NAME, id_number=ID_NUMBER)
    assert wechat.query_verify_ret(
        openid=openid, verify_id=verify_id, out_seq_no=seq, name=NAME, id_number=ID_NUMBER
    ) == 10000


def test_face_verification_fails_for_the_failing_name(wechat: WeChatClient, fake: FakeWeChat) -> None:
    openid = fake.openid_for("jack")
    seq = unique("seq")
    verify_id, _ = wechat.get_verify_id(openid=openid, name="失败", id_number=ID_NUMBER, out_seq_no=seq)
    assert not wechat.query_verify_info(
        openid=openid, verify_id=verify_id, out_seq_no=seq, name="失败", id_number=ID_NUMBER
    )
    assert wechat.query_verify_ret(
        openid=openid, verify_id=verify_id, out_seq_no=seq, name="失败", id_number=ID_NUMBER
    ) == 10004


def test_face_verification_rejects_other_parameters(wechat: WeChatClient, fake: FakeWeChat) -> None:
    openid = fake.openid_for("kate")
    seq = unique("seq")
    verify_id, _ = wechat.get_verify_id(openid=openid, name=NAME, id_number=ID_NUMBER, out_seq_no=seq)
    other_number = "110105194912310037"
    cases = [
        {"verify_id": "unknown", "out_seq_no": seq, "openid": openid, "name": NAME, "id_number": ID_NUMBER},
        {"verify_id": verify_id, "out_seq_no": "other", "openid": openid, "name": NAME, "id_number": ID_NUMBER},
        {"verify_id": verify_id, "out_seq_no": seq, "openid": "o-other", "name": NAME, "id_number": ID_NUMBER},
        {"verify_id": verify_id, "out_seq_no": seq, "openid": openid, "name": NAME, "id_number": other_number},
    ]
    for case in cases:
        with pytest.raises(WeChatError) as caught:
            wechat.query_verify_info(**case)
        assert caught.value.detail == {"errcode": 40097}
        # No personal data in what the error carries.
        assert ID_NUMBER not in str(caught.value) and NAME not in str(caught.value)
        assert other_number not in repr(caught.value.detail)

    with pytest.raises(WeChatError):
        wechat.get_verify_id(openid=openid, name=NAME, id_number="12345", out_seq_no=unique("seq"))

    fake.advance_time(3601)
    with pytest.raises(WeChatError):
        wechat.query_verify_info(openid=openid, verify_id=verify_id, out_seq_no=seq, name=NAME, id_number=ID_NUMBER)


# ---------------------------------------------------------------------------------------------
# Subscribe messages


def test_subscribe_message_is_sent(wechat: WeChatClient, fake: FakeWeChat) -> None:
    openid = fake.openid_for("liam")
    data = {
        "thing1": "户口迁移申请已受理",
        "time2": "2024-05-01 10:00",
        "character_string3": "2024-000123",
        "phrase4": "已受理",
        "name5": "张三",
    }
    msgid = wechat.send_subscribe_message(openid=openid, template_id="tmpl-accepted", data=data, page="pages/case/1")
    assert msgid.isdigit()
    sent = [m for m in fake.sent_messages if str(m["msgid"]) == msgid]
    assert len(sent) == 1
    assert sent[0]["touser"] == openid
    assert sent[0]["template_id"] == "tmpl-accepted"
    assert sent[0]["page"] == "pages/case/1"
    assert sent[0]["data"] == {key: {"value": value} for key, value in data.items()}


def test_subscribe_refused(wechat: WeChatClient, fake: FakeWeChat) -> None:
    with pytest.raises(SubscribeRefused) as caught:
        wechat.send_subscribe_message(openid=fake.openid_for("refuser"), template_id="t", data={"thing1": "x"})
    assert caught.value.detail == {"errcode": 43101}
    assert caught.value.status_code == 403


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("thing1", "一" * 21),
        ("phrase2", "六个字的短语"),
        ("character_string3", "a" * 33),
        ("number4", "12a"),
        ("name5", "张" * 11),
        ("name6", "a" * 21),
        ("time7", "tomorrow"),
        ("thing8", ""),
    ],
)
def test_subscribe_value_over_limits(wechat: WeChatClient, fake: FakeWeChat, key: str, value: str) -> None:
    count = len(fake.sent_messages)
    with pytest.raises(SubscribeMessageInvalid) as caught:
        wechat.send_subscribe_message(openid=fake.openid_for("mia"), template_id="t", data={key: value})
    assert caught.value.detail == {"errcode": 47003, "field": key}
    assert len(fake.sent_messages) == count


def test_subscribe_values_at_limits(wechat: WeChatClient, fake: FakeWeChat) -> None:
    data = {"thing1": "一" * 20, "phrase2": "五个字短语", "name3": "a" * 20, "name4": "张" * 10, "date5": "2024年5月1日"}
    assert wechat.send_subscribe_message(openid=fake.openid_for("noah"), template_id="t", data=data)


# ---------------------------------------------------------------------------------------------
# Configuration and hygiene


def test_get_wechat_client_uses_settings(monkeypatch: pytest.MonkeyPatch, base_url: str, fake: FakeWeChat) -> None:
    from services.config import Settings

    settings = Settings(
        wechat_base_url=base_url, wechat_appid=APPID, wechat_secret=SECRET, wechat_timeout_seconds=2.5
    )
    monkeypatch.setattr(client_module, "get_settings", lambda: settings)
    get_wechat_client.cache_clear()
    try:
        client = get_wechat_client()
        assert get_wechat_client() is client
        assert client.appid == APPID
        assert client.code_to_session(f"demo-olivia.{unique()}").openid == fake.openid_for("olivia")
        client.close()
    finally:
        get_wechat_client.cache_clear()


def test_no_secrets_or_personal_data_in_logs(
    wechat: WeChatClient, fake: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = f"demo-paul.{unique()}"
    wechat.code_to_session(code)
    with pytest.raises(WeChatCodeInvalid):
        wechat.code_to_session(code)
    openid = fake.openid_for("paul")
    seq = unique("seq")
    verify_id, _ = wechat.get_verify_id(openid=openid, name=NAME, id_number=ID_NUMBER, out_seq_no=seq)
    wechat.query_verify_info(openid=openid, verify_id=verify_id, out_seq_no=seq, name=NAME, id_number=ID_NUMBER)
    token = wechat.access_token()

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request" in text  # httpx did log the requests, scrubbed
    for forbidden in (SECRET, code, token, ID_NUMBER, NAME, openid):
        assert forbidden not in text
