"""Request limits: the rate-limit dependency factory and the hardening middleware.

`rate_limited(name)` is a FastAPI dependency counting each request against the named limit of
services.ratelimit (429 with Retry-After when over), keyed by the client address;
`rate_limited_principal(name)` gives the route its principal, counted per signed-in account.
`ONESTOP_RATE_LIMITS=off` turns every limit off.

`HardeningMiddleware` (pure ASGI) refuses, before any route runs:
  - JSON bodies nested deeper than `MAX_JSON_DEPTH`, or carrying a NUL character (`\\u0000`,
    which PostgreSQL cannot store in text) or numbers longer than `MAX_NUMBER_DIGITS` digits;
  - paths and query strings carrying a NUL byte or invalid UTF-8;
and adds the security headers every answer carries (nosniff, no framing, no caching of
answers that may hold tokens or personal data, no referrer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import bearer, claims_of, get_session
from services.accounts import principal_cache
from services.accounts.principal import Principal
from services.accounts.service import load_principal
from services.ratelimit import address_identity, enforce_async

MAX_JSON_DEPTH = 32
MAX_NUMBER_DIGITS = 100
SCAN_LIMIT = 2 * 1024 * 1024  # larger JSON bodies are refused by the routes' own size limit anyway

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_LONG_NUMBER = re.compile(rb"[0-9]{%d,}" % (MAX_NUMBER_DIGITS + 1))
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
NO_STORE = (b"cache-control", b"no-store")


def client_address(request: Request) -> str:
    """The peer address as the server sees it. Behind a reverse proxy run uvicorn with
    `--proxy-headers --forwarded-allow-ips=<the proxy>` so that this is the client's address;
    X-Forwarded-For is never trusted here (anyone can send one)."""
    return request.client.host if request.client else "unknown"


def rate_limited(name: str) -> Callable[..., Awaitable[None]]:
    """A dependency enforcing the named limit (services.ratelimit.settings) per client address."""
    async def per_address(request: Request) -> None:
        await enforce_async(name, address_identity(client_address(request)))

    per_address.__name__ = f"rate_limit_{name.replace('-', '_')}"
    return per_address


def rate_limited_principal(name: str) -> Callable[..., Awaitable[Principal]]:
    """`current_principal`, with the request counted against the named limit per signed-in
    account (429 with Retry-After when over). With Redis, the limit's script also reads what
    resolving the principal needs (its token's revocation, its account's generation): one round
    trip for both, on every limited request."""
    async def principal_within_limit(request: Request,
                                     credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                                     session: Session = Depends(get_session)) -> Principal:
        claims = claims_of(request, credentials)
        read = await enforce_async(name, "principal:" + claims.principal,
                                   also_read=principal_cache.redis_keys(claims))
        return await principal_cache.resolve_principal(session, claims=claims, load=load_principal, read=read)

    principal_within_limit.__name__ = f"principal_within_{name.replace('-', '_')}_limit"
    return principal_within_limit


def json_problem(body: bytes) -> tuple[str, str] | None:
    """(error code, message) when a JSON body must be refused before parsing, else None.

    Cheap first: substring searches and counts in C; the string-aware scans only run when the
    cheap test says there may be a problem (a typical application body costs a few µs)."""
    if b"\x00" in body or (b"\\u0000" in body and _NUL_ESCAPE.search(body)):
        return "invalid_character", "请求内容含有不允许的字符（NUL）"
    stripped = None
    if _LONG_NUMBER.search(body):
        stripped = _STRING.sub(b'""', body)
        if _LONG_NUMBER.search(stripped):
            return "number_too_long", f"数字不能超过 {MAX_NUMBER_DIGITS} 位"
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:  # else it cannot nest that deep
        stripped = stripped if stripped is not None else _STRING.sub(b'""', body)
        depth = 0
        for match in _BRACKET.finditer(stripped):
            if match.group() in (b"[", b"{"):
                depth += 1
                if depth > MAX_JSON_DEPTH:
                    return "json_too_deep", f"JSON 嵌套不能超过 {MAX_JSON_DEPTH} 层"
            else:
                depth -= 1
    try:
        json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8: the same answer FastAPI gives bad JSON
        return "validation_error", "请求内容不是合法的 JSON"
    return None


def _error(status: int, code: str, message: str, detail=None) -> tuple[dict, bytes]:
    body = json.dumps({"error": code, "message": message, "detail": detail}, ensure_ascii=False).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *SECURITY_HEADERS, NO_STORE]}
    return start, body


def _valid_target(scope: Scope) -> bool:
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    query = scope.get("query_string") or b""
    for part in (raw, query):
        decoded = unquote_to_bytes(part.replace(b"+", b" ") if part is query else part)
        if b"\x00" in decoded:
            return False
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


class HardeningMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in SECURITY_HEADERS if header[0] not in present)
                if b"cache-control" not in present:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        if not _valid_target(scope):
            start, body = _error(400, "invalid_request_target", "请求地址或参数含有不允许的字符")
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return

        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        # FastAPI parses a body without a Content-Type as JSON too
        is_json = content_type in (b"", b"application/json") or content_type.endswith(b"+json")
        if not is_json or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send_with_headers)
            return

        # Read the body (up to SCAN_LIMIT), check it, then hand it on unchanged.
        chunks: list[bytes] = []
        size = 0
        more = True
        pending: list[Message] = []
        while more:
            message = await receive()
            if message["type"] != "http.request":
                pending.append(message)
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > SCAN_LIMIT:
                break
        body = b"".join(chunks)
        if not more and not pending and body.strip():
            problem = json_problem(body)
            if problem is not None:
                detail = [{"field": "body", "reason": problem[0], "message": problem[1]}] \
                    if problem[0] == "validation_error" else None
                start, error_body = _error(422, *problem, detail=detail)
                await send(start)
                await send({"type": "http.response.body", "body": error_body})
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send_with_headers)


# ---------------------------------------------------------------- the OpenAPI document

COMMON_ERRORS = {
    "400": "请求格式不正确：正文不是合法的 JSON 或 multipart，或地址、参数含有不允许的字符（NUL、非 UTF-8）",
    "422": "请求内容不合法：字段错误在 detail 中逐项列出；JSON 嵌套过深、含 NUL 或超长数字也在此列",
    "500": "服务器内部错误（不含任何内部细节）",
}


def document_common_errors(app) -> None:
    """Make the OpenAPI document say what every operation can answer besides its own errors:
    400 (malformed body or request target), 422 in the project's error body (FastAPI documents
    its own `HTTPValidationError` shape, which the error handler never sends) and 500. Idempotent;
    call after every router is included."""
    if getattr(app.state, "common_errors_documented", False):
        return
    app.state.common_errors_documented = True
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        document = build()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", {
            "title": "ErrorBody", "type": "object", "required": ["error", "message"],
            "properties": {"error": {"type": "string", "title": "Error"},
                           "message": {"type": "string", "title": "Message"},
                           "detail": {"title": "Detail"}}})
        error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for item in document.get("paths", {}).values():
            for method, operation in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                responses = operation.setdefault("responses", {})
                for status, description in COMMON_ERRORS.items():
                    existing = responses.get(status)
                    schema = ((existing or {}).get("content", {}).get("application/json", {}).get("schema") or {})
                    if existing is None or schema.get("$ref", "").endswith("/HTTPValidationError"):
                        responses[status] = {"description": description, "content": error_body}
        for unused in ("HTTPValidationError", "ValidationError"):
            if unused in components and unused not in str(document.get("paths")):
                components.pop(unused)
        app.openapi_schema = document
        return document

    app.openapi = openapi
