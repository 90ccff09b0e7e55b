"""The client onestop uses to talk to WeChat's server API (the real one, or the shipped fake).

WeChat's protocol in brief, as this client relies on it:

* Every answer is HTTP 200 with a JSON object, even errors: `{"errcode": n, "errmsg": "..."}`
  (a missing or 0 `errcode` means success). `jscode2session` even answers with
  `Content-Type: text/plain`, so the body is parsed as JSON whatever the content type says.
  Anything else (a 5xx, an HTML error page, a timeout) means WeChat is unavailable.
* Server-to-server calls carry an `access_token` in the query string. We get it from
  `POST /cgi-bin/stable_token`, which (unlike `/cgi-bin/token`) hands every caller the same
  token while it is valid, so several onestop processes don't invalidate each other's token.
* A token rejected with 40001 / 42001 is refreshed once and the call retried.

Personal data (name, id number) goes only into request bodies: never into URLs, log lines or
exception messages. Secrets and codes that the protocol puts into query strings are scrubbed
from httpx's own request log (see `_RedactWeChatQuery`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import httpx

from services.config import get_settings
from services.errors import Forbidden, InvalidInput, ServiceUnavailable, TooManyRequests, Unauthorized

logger = logging.getLogger(__name__)

# verify_ret of queryverifyinfo meaning "the face matched the certificate holder" (识别成功).
VERIFY_RET_OK = 10000
CERT_TYPE_IDENTITY_CARD = "IDENTITY_CARD"

# errcodes this client gives a meaning to.
ERR_SYSTEM_BUSY = -1
ERR_INVALID_CREDENTIAL = 40001
ERR_INVALID_CODE = 40029
ERR_CODE_BEEN_USED = 40163
ERR_HIGH_RISK_USER = 40226
ERR_ACCESS_TOKEN_EXPIRED = 42001
ERR_USER_REFUSED_MESSAGE = 43101
ERR_RATE_LIMITED = 45011
ERR_ARGUMENT_INVALID = 47003

_TOKEN_REJECTED = frozenset({ERR_INVALID_CREDENTIAL, ERR_ACCESS_TOKEN_EXPIRED})


# --------------------------------------------------------------------------------------------
# Errors


class WeChatCodeInvalid(Unauthorized):
    """The `wx.login` code is unknown, expired or already used (40029, 40163)."""

    code = "wechat_code_invalid"
    message = "微信登录凭证无效或已使用"


class WeChatUnavailable(ServiceUnavailable):
    """WeChat didn't answer usefully: -1 (busy), timeout, connection error, 5xx, non-JSON."""

    code = "wechat_unavailable"
    message = "微信服务暂不可用，请稍后再试"


class WeChatRateLimited(TooManyRequests):
    """WeChat's per-minute quota for this app is used up (45011)."""

    code = "wechat_rate_limited"
    message = "微信接口调用过于频繁，请稍后再试"


class WeChatUserBlocked(Forbidden):
    """WeChat rates the user high-risk and blocks the mini-program login (40226)."""

    code = "wechat_user_blocked"
    message = "该微信账号存在风险，暂无法登录"


class FaceVerifyFailed(InvalidInput):
    """Face verification didn't confirm the person (raised by callers of `query_verify_info`)."""

    code = "face_verify_failed"
    message = "人脸核身未通过"


class WeChatError(ServiceUnavailable):
    """Any other errcode; `detail` is `{"errcode": n}` (plus `field` where WeChat names one)."""

    code = "wechat_error"
    message = "微信服务返回错误"


class SubscribeRefused(Forbidden):
    """The user hasn't accepted (or has turned off) this subscribe message template (43101)."""

    code = "wechat_subscribe_refused"
    message = "用户未订阅该消息"


class SubscribeMessageInvalid(InvalidInput):
    """WeChat rejected a template value, e.g. a `thing` longer than 20 characters (47003)."""

    code = "wechat_message_invalid"
    message = "订阅消息内容不符合微信要求"


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class WeChatSession:
    """Who a `wx.login` code belongs to. The `session_key` is deliberately not kept."""

    openid: str
    unionid: str | None


def cert_hash(*, cert_type: str, cert_name: str, cert_no: str) -> str:
    """The `cert_hash` queryverifyinfo expects for the certificate sent to getverifyid.

    The formula as published by WeChat (and implemented alike by several public SDKs): each of
    cert_type, cert_name, cert_no is UTF-8 encoded and base64-encoded, joined as
    `cert_type=<b64>&cert_name=<b64>&cert_no=<b64>`, hashed with SHA-256, lower-case hex.
    """
    def b64(value: str) -> str:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")

    joined = f"cert_type={b64(cert_type)}&cert_name={b64(cert_name)}&cert_no={b64(cert_no)}"
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Token cache


class TokenCache(Protocol):
    """Where access tokens are kept between calls. In-memory by default; a Redis-backed one
    (`GET` / `SET key value EX ttl`) shares one token between all onestop processes."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: float) -> None: ...


class InMemoryTokenCache:
    """A thread-safe in-process `TokenCache`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        """The value stored under `key`, or None when missing or past its ttl."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            value, expires_at = item
            if time.monotonic() >= expires_at:
                del self._items[key]
                return None
            return value

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds (ttl <= 0 removes it)."""
        with self._lock:
            if ttl <= 0:
                self._items.pop(key, None)
            else:
                self._items[key] = (value, time.monotonic() + ttl)


class RedisTokenCache:
    """A `TokenCache` in Redis, so every onestop process (and every machine) uses one WeChat
    access token instead of each fetching its own. Values expire in Redis itself. A Redis that
    does not answer behaves as an empty cache (the token is fetched from WeChat again)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get(self, key: str) -> str | None:
        from redis.exceptions import RedisError

        try:
            value = self._client.get(key)
        except RedisError:
            logger.warning("wechat token cache: Redis unavailable")
            return None
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return value or None

    def set(self, key: str, value: str, ttl: float) -> None:
        from redis.exceptions import RedisError

        try:
            if ttl <= 0:
                self._client.delete(key)
            else:
                self._client.set(key, value, px=max(1, int(ttl * 1000)))
        except RedisError:
            logger.warning("wechat token cache: Redis unavailable")


# --------------------------------------------------------------------------------------------
# Log redaction


class _RedactWeChatQuery(logging.Filter):
    """httpx logs every request URL at INFO. WeChat's protocol puts the app secret, the login
    code and the access token into query strings, so scrub those values before the record is
    emitted anywhere. Installed once on the "httpx" logger; touches only matching records."""

    _PATTERN = re.compile(r"([?&](?:secret|js_code|access_token)=)[^&\s\"']*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(self._scrub(arg) for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = self._PATTERN.sub(r"\1***", record.msg)
        return True

    def _scrub(self, arg: Any) -> Any:
        if isinstance(arg, (httpx.URL, str)):
            text = str(arg)
            if self._PATTERN.search(text):
                return self._PATTERN.sub(r"\1***", text)
        return arg


def _install_log_redaction() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactWeChatQuery) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactWeChatQuery())


_install_log_redaction()


# --------------------------------------------------------------------------------------------
# Client


class WeChatClient:
    """A synchronous client for the parts of WeChat's server API onestop uses.

    Thread-safe: one instance (one `httpx.Client`, so connections are reused) serves the whole
    process. Every method raises the typed errors above rather than returning errcodes.
    """

    def __init__(
        self,
        *,
        base_url: str,
        appid: str,
        secret: str,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        self.appid = appid
        self._secret = secret
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": "onestop-wechat-client"},
        )
        self._cache: TokenCache = token_cache if token_cache is not None else InMemoryTokenCache()
        self._cache_key = f"onestop:wechat:access_token:{appid}"
        # Serialises token fetches in this process so a burst of calls after expiry makes one
        # stable_token request, not one per thread.
        self._token_lock = threading.Lock()

    # -- sign-in -----------------------------------------------------------------------------

    def code_to_session(self, code: str) -> WeChatSession:
        """Exchange a `wx.login` code for the user's openid (and unionid, when WeChat has one).

        Raises WeChatCodeInvalid for a bad, expired or used code, WeChatRateLimited,
        WeChatUserBlocked, WeChatUnavailable or WeChatError.
        """
        # Real codes are short opaque strings; refuse obvious junk without spending quota.
        if not code or len(code) > 256 or any(ch.isspace() for ch in code):
            raise WeChatCodeInvalid()
        data = self._request(
            "GET",
            "/sns/jscode2session",
            params={
                "appid": self.appid,
                "secret": self._secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        self._raise_for_errcode("/sns/jscode2session", data)
        openid = data.get("openid")
        if not isinstance(openid, str) or not openid:
            raise WeChatUnavailable(detail={"reason": "bad_response"})
        unionid = data.get("unionid")
        return WeChatSession(openid=openid, unionid=unionid if isinstance(unionid, str) and unionid else None)

    # -- access token ------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token: from the cache, else from `POST /cgi-bin/stable_token`.

        Cached until about 5 minutes before WeChat says it expires, so a call never goes out
        with a token that dies on the way.
        """
        token = self._cache.get(self._cache_key)
        if token:
            return token
        with self._token_lock:
            token = self._cache.get(self._cache_key)
            if token:
                return token
            return self._fetch_token(force_refresh=False)

    def _refresh_rejected_token(self, rejected: str) -> str:
        """A replacement for a token WeChat just refused (40001 / 42001)."""
        with self._token_lock:
            cached = self._cache.get(self._cache_key)
            if cached and cached != rejected:
                return cached  # another thread has already replaced it
            token = self._fetch_token(force_refresh=False)
            if token == rejected:
                # stable_token's normal mode hands back the token it considers current; if that
                # is the one just refused, only force_refresh gets a new one. Force refresh is
                # rationed by WeChat (and invalidates the old token for everyone), so it is the
                # second resort, not the first.
                token = self._fetch_token(force_refresh=True)
            return token

    def _fetch_token(self, *, force_refresh: bool) -> str:
        body: dict[str, Any] = {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret}
        if force_refresh:
            body["force_refresh"] = True
        data = self._request("POST", "/cgi-bin/stable_token", json_body=body)
        self._raise_for_errcode("/cgi-bin/stable_token", data)
        token = data.get("access_token")
        expires_in = data.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise WeChatUnavailable(detail={"reason": "bad_response"})
        # Keep a safety margin of 5 minutes (or half the remaining life of a nearly spent token,
        # which stable_token can hand out: it returns the current token with its remaining time).
        margin = min(300, expires_in // 2)
        self._cache.set(self._cache_key, token, expires_in - margin)
        return token

    def _call_with_token(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `path?access_token=...`, refreshing the token once if WeChat refuses it."""
        token = self.access_token()
        data = self._request("POST", path, params={"access_token": token}, json_body=body)
        if _errcode(data) in _TOKEN_REJECTED:
            logger.info("wechat %s refused the access token (errcode %s); refreshing", path, _errcode(data))
            token = self._refresh_rejected_token(token)
            data = self._request("POST", path, params={"access_token": token}, json_body=body)
        self._raise_for_errcode(path, data)
        return data

    # -- face verification (人脸核身) --------------------------------------------------------

    def get_verify_id(self, *, openid: str, name: str, id_number: str, out_seq_no: str) -> tuple[str, int]:
        """Start a face verification of the holder of a resident id card.

        Returns `(verify_id, expires_in)`; the mini-program passes verify_id to
        `wx.requestFacialVerify`. `out_seq_no` is our own reference for this attempt and must be
        sent again to `query_verify_info`.
        """
        data = self._call_with_token(
            "/cityservice/face/identify/getverifyid",
            {
                "out_seq_no": out_seq_no,
                "cert_info": {"cert_type": CERT_TYPE_IDENTITY_CARD, "cert_name": name, "cert_no": id_number},
                "openid": openid,
            },
        )
        verify_id = data.get("verify_id")
        expires_in = data.get("expires_in", 3600)
        if not isinstance(verify_id, str) or not verify_id or not isinstance(expires_in, int):
            raise WeChatUnavailable(detail={"reason": "bad_response"})
        return verify_id, expires_in

    def query_verify_ret(self, *, openid: str, verify_id: str, out_seq_no: str, name: str, id_number: str) -> int:
        """WeChat's `verify_ret` for a verification: 10000 is success; 1xxxx are verification
        failures (e.g. 10004 face mismatch); 9xxxx are client-side outcomes (e.g. user cancelled)."""
        data = self._call_with_token(
            "/cityservice/face/identify/queryverifyinfo",
            {
                "verify_id": verify_id,
                "out_seq_no": out_seq_no,
                "cert_hash": cert_hash(cert_type=CERT_TYPE_IDENTITY_CARD, cert_name=name, cert_no=id_number),
                "openid": openid,
            },
        )
        verify_ret = data.get("verify_ret")
        if not isinstance(verify_ret, int):
            raise WeChatUnavailable(detail={"reason": "bad_response"})
        return verify_ret

    def query_verify_info(self, *, openid: str, verify_id: str, out_seq_no: str, name: str, id_number: str) -> bool:
        """True iff WeChat says the verification succeeded (verify_ret == 10000).

        name and id_number must be the ones sent to `get_verify_id`; WeChat checks them via the
        cert_hash. Callers turn False into `FaceVerifyFailed`.
        """
        verify_ret = self.query_verify_ret(
            openid=openid, verify_id=verify_id, out_seq_no=out_seq_no, name=name, id_number=id_number
        )
        return verify_ret == VERIFY_RET_OK

    # -- subscribe messages ------------------------------------------------------------------

    def send_subscribe_message(
        self,
        *,
        openid: str,
        template_id: str,
        data: dict[str, str],
        page: str | None = None,
        miniprogram_state: str | None = None,
        lang: str | None = None,
    ) -> str:
        """Send a subscribe message (订阅消息); returns WeChat's msgid as a string.

        `data` maps template keys to values, e.g. `{"thing1": "户口迁移", "time2": "2024-05-01 10:00"}`.
        Raises SubscribeRefused (43101), SubscribeMessageInvalid (47003), WeChatRateLimited,
        WeChatUnavailable or WeChatError.
        """
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        if page is not None:
            body["page"] = page
        if miniprogram_state is not None:
            body["miniprogram_state"] = miniprogram_state
        if lang is not None:
            body["lang"] = lang
        answer = self._call_with_token("/cgi-bin/message/subscribe/send", body)
        msgid = answer.get("msgid")
        if msgid is None:
            raise WeChatUnavailable(detail={"reason": "bad_response"})
        return str(msgid)

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> WeChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One HTTP exchange; returns the decoded JSON object or raises WeChatUnavailable."""
        try:
            if json_body is None:
                response = self._http.request(method, path, params=params)
            else:
                # ensure_ascii=False: WeChat expects UTF-8 text in the body, not \\u escapes
                # (subscribe messages are stored as sent).
                content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
                response = self._http.request(
                    method,
                    path,
                    params=params,
                    content=content,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
        except httpx.TimeoutException:
            logger.warning("wechat %s timed out", path)
            raise WeChatUnavailable(detail={"reason": "timeout"}) from None
        except httpx.TransportError as exc:
            # The exception text (e.g. "Connection refused") carries no URL, but the exception
            # object does, so it is not chained: a traceback must not show the query string.
            logger.warning("wechat %s unreachable: %s", path, type(exc).__name__)
            raise WeChatUnavailable(detail={"reason": "unreachable"}) from None
        if response.status_code != 200:
            logger.warning("wechat %s answered HTTP %s", path, response.status_code)
            raise WeChatUnavailable(detail={"reason": f"http_{response.status_code}"})
        try:
            data = json.loads(response.content)
        except ValueError:
            logger.warning("wechat %s answered a non-JSON body", path)
            raise WeChatUnavailable(detail={"reason": "bad_response"}) from None
        if not isinstance(data, dict):
            raise WeChatUnavailable(detail={"reason": "bad_response"})
        return data

    def _raise_for_errcode(self, path: str, data: dict[str, Any]) -> None:
        errcode = _errcode(data)
        if errcode == 0:
            return
        # errmsg is WeChat's own text (no personal data); only the errcode goes into the error.
        logger.warning("wechat %s answered errcode %s", path, errcode)
        if errcode in (ERR_INVALID_CODE, ERR_CODE_BEEN_USED):
            raise WeChatCodeInvalid(detail={"errcode": errcode})
        if errcode == ERR_SYSTEM_BUSY:
            raise WeChatUnavailable(detail={"errcode": errcode})
        if errcode == ERR_RATE_LIMITED:
            raise WeChatRateLimited(retry_after=60, detail={"errcode": errcode})
        if errcode == ERR_HIGH_RISK_USER:
            raise WeChatUserBlocked(detail={"errcode": errcode})
        if errcode == ERR_USER_REFUSED_MESSAGE:
            raise SubscribeRefused(detail={"errcode": errcode})
        if errcode == ERR_ARGUMENT_INVALID and path == "/cgi-bin/message/subscribe/send":
            detail: dict[str, Any] = {"errcode": errcode}
            field = _field_from_errmsg(data.get("errmsg"))
            if field:
                detail["field"] = field
            raise SubscribeMessageInvalid(detail=detail)
        raise WeChatError(detail={"errcode": errcode})


def _errcode(data: dict[str, Any]) -> int:
    """The errcode of an answer; missing means 0 (success), as in jscode2session's success."""
    value = data.get("errcode", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # unreadable errcode: treat like WeChat's own "system error"


_FIELD_IN_ERRMSG = re.compile(r"data\.([A-Za-z_]+[0-9]*)\.value")


def _field_from_errmsg(errmsg: Any) -> str | None:
    """The template key in "argument invalid! data.thing1.value invalid", if any."""
    if not isinstance(errmsg, str):
        return None
    match = _FIELD_IN_ERRMSG.search(errmsg)
    return match.group(1) if match else None


@lru_cache
def get_wechat_client() -> WeChatClient:
    """The process-wide client, configured from settings (cached; `cache_clear()` to rebuild).
    With Redis configured, the access token is cached there and shared by every process."""
    settings = get_settings()
    token_cache: TokenCache | None = None
    if settings.redis_url:
        from services.ratelimit.connection import redis_client

        token_cache = RedisTokenCache(redis_client())
    return WeChatClient(
        base_url=settings.resolved_wechat_base_url,
        appid=settings.wechat_appid,
        secret=settings.wechat_secret,
        timeout=settings.wechat_timeout_seconds,
        token_cache=token_cache,
    )
