"""ASGI middleware: request id, access log and metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.logging import request_id_var

log = logging.getLogger("onestop.http")

REQUESTS = Counter("onestop_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("onestop_http_request_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def _route_template(scope: Scope) -> str:
    """The path with its parameters put back as names (/api/v1/cases/{case_id}), so ids and
    codes stay out of logs and metric labels."""
    if scope.get("route") is None:
        return "unmatched"
    segments = scope["path"].split("/")
    names = {str(value): name for name, value in (scope.get("path_params") or {}).items()}
    return "/".join(f"{{{names[segment]}}}" if segment in names else segment for segment in segments)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 8 <= len(incoming) <= 64 and incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info("request", extra={"method": scope["method"], "route": route, "status": status,
                                       "duration_ms": round(elapsed * 1000, 1)})
            request_id_var.reset(token)


class JsonTooLargeMiddleware:
    """Starlette's body-size limiter answers 413 in plain text; rewrite it into the project's
    error body so every error looks the same."""

    BODY = json.dumps({"error": "payload_too_large", "message": "请求内容超过大小限制", "detail": None},
                      ensure_ascii=False).encode()

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rewriting = False

        async def rewrite(message: Message) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start" and message["status"] == 413:
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                if not content_type.startswith(b"application/json"):
                    rewriting = True
                    await send({"type": "http.response.start", "status": 413,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(self.BODY)).encode())]})
                    return
            if rewriting and message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": self.BODY})
                return
            await send(message)

        await self.app(scope, receive, rewrite)
