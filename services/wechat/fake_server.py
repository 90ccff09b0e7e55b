"""A local fake of WeChat's server API, for the demo and the tests.

It speaks WeChat's real protocol (paths, query parameters, JSON bodies, `errcode`/`errmsg`
answers with HTTP 200 even on errors) so that `WeChatClient` talks to it exactly as it talks
to api.weixin.qq.com. Served on its own (`serve_in_thread`) or mounted into the API app at
`/fake-wechat` in demo mode.

Demo rules (see API.md, "Sign-in"):

* A login code `demo-<name>` or `demo-<name>.<nonce>` (name: 1-32 ASCII letters/digits,
  case-sensitive; nonce: 1-64 letters, digits, `-`, `_`) signs in as the stable openid of
  `<name>`: `"o"` + 27 characters of HMAC-SHA256(secret, name), so the same name always gives
  the same openid and the name can't be read back from it. Like a real code, each code works
  once: used again within 5 minutes -> 40163, later -> 40029 (expired).
* `err-40029`, `err-40163`, `err-45011`, `err-40226`, `err-busy` (-1), `err-slow` (answers
  after `slow_seconds`), `err-500` (HTTP 500 with HTML) reproduce WeChat's failure answers.
* Face verification passes for any verify_id the fake issued, unless the name is `失败`.
* Subscribe messages to the openid of the name `refuser` are refused (43101).

State lives in memory in a `FakeWeChat` held on `app.state.fake`, behind a lock (uvicorn
serves async routes on its loop thread while tests poke the state from theirs). The fake logs
nothing about people: no names, id numbers, openids, codes or tokens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastapi
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from services.wechat.client import CERT_TYPE_IDENTITY_CARD, VERIFY_RET_OK, cert_hash

CODE_TTL_SECONDS = 300  # a wx.login code is valid for 5 minutes
# Used codes are remembered this long, so that a replay after 5 minutes answers "expired"
# (40029) rather than being accepted again; afterwards they are forgotten to bound memory.
CODE_MEMORY_SECONDS = 24 * 3600
TOKEN_TTL_SECONDS = 7200
# /cgi-bin/token: "after a new access_token is issued the old one stays usable for 5 minutes".
OLD_TOKEN_GRACE_SECONDS = 300
VERIFY_ID_TTL_SECONDS = 3600

FAIL_NAME = "失败"  # face verification of this name fails
REFUSER_NAME = "refuser"  # subscribe messages to this name's openid are refused
# verify_ret for the failing name: 10004 "比对人脸信息不匹配" (the face doesn't match the photo on
# record), the documented result of a real person failing the comparison; 10000 is success.
VERIFY_RET_FACE_MISMATCH = 10004

_DEMO_CODE = re.compile(r"demo-([A-Za-z0-9]{1,32})(?:\.[A-Za-z0-9_-]{1,64})?")
_ID_NUMBER_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")

# WeChat's answers, exactly as it words them.
_OK = {"errcode": 0, "errmsg": "ok"}
_SYSTEM_ERROR = {"errcode": -1, "errmsg": "system error"}
_INVALID_CREDENTIAL = {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
_INVALID_GRANT_TYPE = {"errcode": 40002, "errmsg": "invalid grant_type"}
_INVALID_OPENID = {"errcode": 40003, "errmsg": "invalid openid"}
_INVALID_APPID = {"errcode": 40013, "errmsg": "invalid appid"}
_INVALID_CODE = {"errcode": 40029, "errmsg": "invalid code"}
_INVALID_TEMPLATE_ID = {"errcode": 40037, "errmsg": "invalid template_id"}
_INVALID_APPSECRET = {"errcode": 40125, "errmsg": "invalid appsecret"}
_CODE_BEEN_USED = {"errcode": 40163, "errmsg": "code been used"}
_CODE_BLOCKED = {"errcode": 40226, "errmsg": "code blocked"}  # 高风险等级用户，小程序登录拦截
_ACCESS_TOKEN_MISSING = {"errcode": 41001, "errmsg": "access_token missing"}
_CODE_MISSING = {"errcode": 41008, "errmsg": "missing code"}
_ACCESS_TOKEN_EXPIRED = {"errcode": 42001, "errmsg": "access_token expired"}
_USER_REFUSED = {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
_MINUTE_QUOTA = {"errcode": 45011, "errmsg": "api minute-quota reach limit  mustslower  retry next minute"}
_DATA_FORMAT_ERROR = {"errcode": 47001, "errmsg": "data format error"}

_JSON = "application/json; encoding=utf-8"
# jscode2session really answers JSON labelled text/plain; reproduced so clients that trust the
# Content-Type break here rather than in production.
_JSCODE2SESSION_TYPE = "text/plain"


def _invalid_args(hint: str) -> dict[str, Any]:
    # 40097 is WeChat's generic "invalid args"; the hint names a field, never a value.
    return {"errcode": 40097, "errmsg": f"invalid args hint: [{hint}]"}


def _argument_invalid(key: str) -> dict[str, Any]:
    return {"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value invalid"}


def _hmac_id(secret: str, purpose: str, name: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{purpose}:{name}".encode(), hashlib.sha256).digest()
    # URL-safe base64 looks like a real openid (letters, digits, '-' and '_'); 1 + 27 = 28 chars.
    return "o" + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


def demo_openid(secret: str, name: str) -> str:
    """The stable openid the fake gives to the demo name `name` under the app secret `secret`."""
    return _hmac_id(secret, "openid", name)


def demo_unionid(secret: str, name: str) -> str:
    """The stable unionid the fake gives to the demo name `name`."""
    return _hmac_id(secret, "unionid", name)


# --------------------------------------------------------------------------------------------
# Template value rules of subscribe messages (per WeChat's documented key types).

_DATE = r"(?:\d{4}年\d{1,2}月\d{1,2}日|\d{4}[-/.]\d{1,2}[-/.]\d{1,2})"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?"
_MOMENT = rf"(?:{_DATE}(?:\s*{_TIME})?|{_TIME})"
_TIME_VALUE = re.compile(rf"{_MOMENT}(?:\s*~\s*{_MOMENT})?")

# type -> (maximum length, pattern the whole value must match or None)
_VALUE_RULES: dict[str, tuple[int, re.Pattern[str] | None]] = {
    "thing": (20, None),
    "number": (32, re.compile(r"[0-9]+(?:\.[0-9]+)?")),
    "letter": (32, re.compile(r"[A-Za-z]+")),
    "symbol": (5, re.compile(r"[!-/:-@\[-`{-~]+")),
    "character_string": (32, re.compile(r"[!-~]+")),
    "time": (64, _TIME_VALUE),
    "date": (64, _TIME_VALUE),
    "amount": (16, re.compile(r"[¥￥$€£]?[0-9]{1,10}(?:\.[0-9]{1,2})?元?")),
    "phone_number": (17, re.compile(r"[0-9+\-() ]+")),
    "car_number": (8, None),
    "phrase": (5, re.compile(r"[\u4e00-\u9fff]+")),
}
_KEY = re.compile(r"([a-z_]+?)([0-9]+)")


def _value_ok(key: str, value: str) -> bool:
    """Whether WeChat would accept `value` for template key `key` (e.g. "thing1")."""
    if not value:
        return False  # WeChat refuses empty template values
    match = _KEY.fullmatch(key)
    kind = match.group(1) if match else key
    if kind == "name":
        # 10 characters for a Chinese (or mixed) name, 20 for a purely Latin one.
        limit = 20 if value.isascii() else 10
        return len(value) <= limit
    limit, pattern = _VALUE_RULES.get(kind, (20, None))
    if len(value) > limit:
        return False
    return pattern is None or pattern.fullmatch(value) is not None


# --------------------------------------------------------------------------------------------
# State


@dataclass
class _FaceSession:
    openid: str
    out_seq_no: str
    cert_hash: str  # the certificate itself is not kept
    fails: bool
    expires_at: float


class FakeWeChat:
    """The fake's state and protocol logic; one per app, on `app.state.fake`.

    Tests read `sent_messages` and `token_requests`, and call `expire_tokens()`,
    `advance_time()`, `openid_for()` and `reset()`.
    """

    def __init__(
        self,
        *,
        appid: str,
        secret: str,
        slow_seconds: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appid = appid
        self.slow_seconds = slow_seconds
        self._secret = secret
        self._clock = clock
        self._offset = 0.0
        self._lock = threading.RLock()
        self._msgids = itertools.count(2_000_000_000_000_000_001)
        self.sent_messages: list[dict[str, Any]] = []
        self.token_requests = 0
        self._used_codes: OrderedDict[str, float] = OrderedDict()
        self._tokens: dict[str, float] = {}  # token -> expires_at
        self._basic_token: str | None = None
        self._stable_token: str | None = None
        self._faces: dict[str, _FaceSession] = {}

    # -- test controls -----------------------------------------------------------------------

    def now(self) -> float:
        """The fake's clock: real time plus whatever `advance_time` added."""
        with self._lock:
            return self._clock() + self._offset

    def advance_time(self, seconds: float) -> None:
        """Move the fake's clock forward (codes, tokens and verify_ids age accordingly)."""
        with self._lock:
            self._offset += seconds

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (calls with them get 42001)."""
        with self._lock:
            now = self.now()
            for token in self._tokens:
                self._tokens[token] = now - 1

    def reset(self) -> None:
        """Forget messages, codes, tokens, verify_ids and counters."""
        with self._lock:
            self.sent_messages.clear()
            self.token_requests = 0
            self._used_codes.clear()
            self._tokens.clear()
            self._basic_token = self._stable_token = None
            self._faces.clear()

    def openid_for(self, name: str) -> str:
        """The openid a `demo-<name>` code signs in as."""
        return demo_openid(self._secret, name)

    # -- protocol ----------------------------------------------------------------------------

    def check_app(self, appid: Any, secret: Any) -> dict[str, Any] | None:
        """The error answer for wrong app credentials, or None when they are right."""
        if not isinstance(appid, str) or not hmac.compare_digest(appid.encode(), self.appid.encode()):
            return _INVALID_APPID
        if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), self._secret.encode()):
            return _INVALID_APPSECRET
        return None

    def jscode2session(self, js_code: str) -> dict[str, Any]:
        """Answer for a (non-special) login code."""
        match = _DEMO_CODE.fullmatch(js_code)
        if match is None:
            return _INVALID_CODE
        with self._lock:
            now = self.now()
            self._forget_old_codes(now)
            used_at = self._used_codes.get(js_code)
            if used_at is not None:
                return _CODE_BEEN_USED if now - used_at < CODE_TTL_SECONDS else _INVALID_CODE
            self._used_codes[js_code] = now
        name = match.group(1)
        return {
            "openid": demo_openid(self._secret, name),
            "session_key": base64.b64encode(secrets.token_bytes(16)).decode("ascii"),
            "unionid": demo_unionid(self._secret, name),
        }

    def _forget_old_codes(self, now: float) -> None:
        # Insertion order is first-use order, so the oldest are at the front.
        while self._used_codes:
            code, used_at = next(iter(self._used_codes.items()))
            if now - used_at < CODE_MEMORY_SECONDS:
                break
            del self._used_codes[code]

    def issue_basic_token(self) -> dict[str, Any]:
        """/cgi-bin/token: a new token on every call; the previous one lives 5 more minutes."""
        with self._lock:
            self.token_requests += 1
            now = self.now()
            self._forget_dead_tokens(now)
            if self._basic_token in self._tokens:
                old = self._basic_token
                self._tokens[old] = min(self._tokens[old], now + OLD_TOKEN_GRACE_SECONDS)
            self._basic_token = self._new_token(now)
            return {"access_token": self._basic_token, "expires_in": TOKEN_TTL_SECONDS}

    def issue_stable_token(self, *, force_refresh: bool) -> dict[str, Any]:
        """/cgi-bin/stable_token: the current token while valid (with its remaining life);
        force_refresh replaces it at once and the old one stops working."""
        with self._lock:
            self.token_requests += 1
            now = self.now()
            self._forget_dead_tokens(now)
            current = self._stable_token
            if current is not None and not force_refresh:
                expires_at = self._tokens.get(current)
                if expires_at is not None and expires_at > now:
                    return {"access_token": current, "expires_in": int(expires_at - now)}
            if current is not None and force_refresh:
                self._tokens.pop(current, None)
            self._stable_token = self._new_token(now)
            return {"access_token": self._stable_token, "expires_in": TOKEN_TTL_SECONDS}

    def _new_token(self, now: float) -> str:
        token = secrets.token_urlsafe(96)  # real tokens are ~136 opaque characters
        self._tokens[token] = now + TOKEN_TTL_SECONDS
        return token

    def _forget_dead_tokens(self, now: float) -> None:
        # Keep expired tokens a day so they answer "expired" (42001), not "invalid" (40001).
        dead = [t for t, expires_at in self._tokens.items() if now - expires_at > 24 * 3600]
        for token in dead:
            del self._tokens[token]

    def check_token(self, token: str | None) -> dict[str, Any] | None:
        """The error answer for a missing, unknown or expired access token, or None if valid."""
        if not token:
            return _ACCESS_TOKEN_MISSING
        with self._lock:
            expires_at = self._tokens.get(token)
            if expires_at is None:
                return _INVALID_CREDENTIAL
            if expires_at <= self.now():
                return _ACCESS_TOKEN_EXPIRED
        return None

    def get_verify_id(self, body: dict[str, Any]) -> dict[str, Any]:
        """/cityservice/face/identify/getverifyid."""
        out_seq_no = body.get("out_seq_no")
        openid = body.get("openid")
        cert_info = body.get("cert_info")
        if not isinstance(out_seq_no, str) or not out_seq_no:
            return _invalid_args("out_seq_no")
        if not isinstance(openid, str) or not openid:
            return _INVALID_OPENID
        if not isinstance(cert_info, dict):
            return _invalid_args("cert_info")
        cert_type = cert_info.get("cert_type")
        cert_name = cert_info.get("cert_name")
        cert_no = cert_info.get("cert_no")
        if cert_type != CERT_TYPE_IDENTITY_CARD:
            return _invalid_args("cert_type")
        if not isinstance(cert_name, str) or not cert_name:
            return _invalid_args("cert_name")
        if not isinstance(cert_no, str) or not _ID_NUMBER_SHAPE.fullmatch(cert_no):
            return _invalid_args("cert_no")
        verify_id = secrets.token_urlsafe(48)
        with self._lock:
            now = self.now()
            for stale in [v for v, s in self._faces.items() if s.expires_at <= now]:
                del self._faces[stale]
            self._faces[verify_id] = _FaceSession(
                openid=openid,
                out_seq_no=out_seq_no,
                cert_hash=cert_hash(cert_type=cert_type, cert_name=cert_name, cert_no=cert_no),
                fails=cert_name == FAIL_NAME,
                expires_at=now + VERIFY_ID_TTL_SECONDS,
            )
        return {**_OK, "verify_id": verify_id, "expires_in": VERIFY_ID_TTL_SECONDS}

    def query_verify_info(self, body: dict[str, Any]) -> dict[str, Any]:
        """/cityservice/face/identify/queryverifyinfo. Every issued verify_id counts as if the
        user had gone through wx.requestFacialVerify."""
        verify_id = body.get("verify_id")
        if not isinstance(verify_id, str) or not verify_id:
            return _invalid_args("verify_id")
        with self._lock:
            session = self._faces.get(verify_id)
            if session is None or session.expires_at <= self.now():
                # WeChat documents no dedicated code for an unknown/expired verify_id; its
                # generic "invalid args" is what a wrong parameter gets.
                return _invalid_args("verify_id")
        if body.get("openid") != session.openid:
            return _invalid_args("openid")
        if body.get("out_seq_no") != session.out_seq_no:
            return _invalid_args("out_seq_no")
        sent_hash = body.get("cert_hash")
        if not isinstance(sent_hash, str) or not hmac.compare_digest(sent_hash, session.cert_hash):
            return _invalid_args("cert_hash")
        verify_ret = VERIFY_RET_FACE_MISMATCH if session.fails else VERIFY_RET_OK
        return {**_OK, "verify_ret": verify_ret}

    def send_subscribe_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """/cgi-bin/message/subscribe/send."""
        touser = body.get("touser")
        template_id = body.get("template_id")
        data = body.get("data")
        if not isinstance(touser, str) or not touser:
            return _INVALID_OPENID
        if not isinstance(template_id, str) or not template_id:
            return _INVALID_TEMPLATE_ID
        if body.get("miniprogram_state", "formal") not in ("developer", "trial", "formal"):
            return {"errcode": 47003, "errmsg": "argument invalid! miniprogram_state invalid"}
        if body.get("lang", "zh_CN") not in ("zh_CN", "en_US", "zh_HK", "zh_TW"):
            return {"errcode": 47003, "errmsg": "argument invalid! lang invalid"}
        if not isinstance(data, dict) or not data:
            return _DATA_FORMAT_ERROR
        if touser == self.openid_for(REFUSER_NAME):
            return _USER_REFUSED
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str) or not _value_ok(key, value):
                return _argument_invalid(key)
        with self._lock:
            msgid = next(self._msgids)
            self.sent_messages.append({**body, "msgid": msgid})
        return {**_OK, "msgid": msgid}


# --------------------------------------------------------------------------------------------
# HTTP


def _answer(data: dict[str, Any], media_type: str = _JSON) -> Response:
    # Always HTTP 200, as WeChat does, errors included.
    return Response(content=json.dumps(data, ensure_ascii=False), media_type=media_type)


async def _json_body(request: Request) -> dict[str, Any] | None:
    # WeChat parses the body as JSON whatever the Content-Type; so does the fake.
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def create_fake_wechat_app(*, appid: str, secret: str, slow_seconds: float = 3.0) -> fastapi.FastAPI:
    """A FastAPI app serving the fake WeChat API for one mini-program (`appid`, `secret`).

    `slow_seconds` is how long the `err-slow` login code takes to answer (make it longer than
    the client timeout under test). The state is on `app.state.fake` (a `FakeWeChat`).
    """
    app = fastapi.FastAPI(title="fake WeChat", docs_url=None, redoc_url=None, openapi_url=None)
    fake = FakeWeChat(appid=appid, secret=secret, slow_seconds=slow_seconds)
    app.state.fake = fake

    @app.get("/sns/jscode2session")
    async def jscode2session(request: Request) -> Response:
        query = request.query_params
        error = fake.check_app(query.get("appid"), query.get("secret"))
        if error is None and query.get("grant_type") != "authorization_code":
            error = _INVALID_GRANT_TYPE
        if error is not None:
            return _answer(error, _JSCODE2SESSION_TYPE)
        code = query.get("js_code") or ""
        if not code:
            return _answer(_CODE_MISSING, _JSCODE2SESSION_TYPE)
        if code == "err-500":
            return HTMLResponse("<html><body><h1>500 Internal Server Error</h1></body></html>", status_code=500)
        if code == "err-slow":
            await asyncio.sleep(fake.slow_seconds)  # async: doesn't hold a worker thread
            return _answer(_SYSTEM_ERROR, _JSCODE2SESSION_TYPE)
        special = {
            "err-40029": _INVALID_CODE,
            "err-40163": _CODE_BEEN_USED,
            "err-45011": _MINUTE_QUOTA,
            "err-40226": _CODE_BLOCKED,
            "err-busy": _SYSTEM_ERROR,
        }.get(code)
        return _answer(special or fake.jscode2session(code), _JSCODE2SESSION_TYPE)

    @app.get("/cgi-bin/token")
    async def token(request: Request) -> Response:
        query = request.query_params
        if query.get("grant_type") != "client_credential":
            return _answer(_INVALID_GRANT_TYPE)
        error = fake.check_app(query.get("appid"), query.get("secret"))
        return _answer(error or fake.issue_basic_token())

    @app.post("/cgi-bin/stable_token")
    async def stable_token(request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _answer(_DATA_FORMAT_ERROR)
        if body.get("grant_type") != "client_credential":
            return _answer(_INVALID_GRANT_TYPE)
        error = fake.check_app(body.get("appid"), body.get("secret"))
        return _answer(error or fake.issue_stable_token(force_refresh=body.get("force_refresh") is True))

    async def with_token(request: Request, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        # As WeChat: the token is checked before the body is looked at.
        error = fake.check_token(request.query_params.get("access_token"))
        if error is not None:
            return _answer(error)
        body = await _json_body(request)
        if body is None:
            return _answer(_DATA_FORMAT_ERROR)
        return _answer(handler(body))

    @app.post("/cityservice/face/identify/getverifyid")
    async def getverifyid(request: Request) -> Response:
        return await with_token(request, fake.get_verify_id)

    @app.post("/cityservice/face/identify/queryverifyinfo")
    async def queryverifyinfo(request: Request) -> Response:
        return await with_token(request, fake.query_verify_info)

    @app.post("/cgi-bin/message/subscribe/send")
    async def subscribe_send(request: Request) -> Response:
        return await with_token(request, fake.send_subscribe_message)

    return app


def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    log_level: str = "warning",
    startup_timeout: float = 10.0,
) -> tuple[str, Callable[[], None]]:
    """Serve an ASGI app with uvicorn on a free port in a background thread.

    Returns `(base_url, stop)`; `stop()` shuts the server down and may be called repeatedly.
    The socket is bound here (port 0) and handed to uvicorn, so there is no window in which
    another process could take the port. Access logs are off: WeChat's protocol puts secrets
    and codes into query strings.
    """
    import uvicorn  # only needed by tests and the demo runner

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # leave the host process's logging configuration alone
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()

    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    return f"http://{host}:{port}", stop
