"""One error body everywhere: {"error", "message", "detail"}; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.errors import OnestopError, TooManyRequests

log = logging.getLogger("onestop.api")


class ErrorBody(BaseModel):
    error: str
    message: str
    detail: Any = None


def error_response(status: int, code: str, message: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "message": message, "detail": detail},
                        headers=headers)


def _field_name(location: tuple) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(location[-1] if location else "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OnestopError)
    async def onestop_error(_request: Request, error: OnestopError) -> JSONResponse:
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyRequests) else None
        return error_response(error.status_code, error.code, error.message, error.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        detail = [{"field": _field_name(tuple(item.get("loc", ()))), "reason": item.get("type", "invalid"),
                   "message": item.get("msg", "")} for item in error.errors()]
        return error_response(422, "validation_error", "请求内容不合法", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {400: ("bad_request", "请求格式不正确"), 404: ("not_found", "资源不存在"), 405: ("method_not_allowed", "不支持该请求方法"),
                 401: ("unauthorized", "未登录或登录已失效"), 413: ("payload_too_large", "请求内容超过大小限制")}
        code, message = codes.get(error.status_code, ("http_error", str(error.detail)))
        return error_response(error.status_code, code, message, None, getattr(error, "headers", None))

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> JSONResponse:
        # PostgreSQL gave up the transaction to let another one through (40P01 deadlock, e.g. two
        # transfers crossing between the same two clerks' load rows; 40001 serialization): it was
        # rolled back whole, and the same request sent again will go through
        if getattr(error.orig, "sqlstate", None) in ("40P01", "40001"):
            log.warning("transaction rolled back by the database", extra={"sqlstate": error.orig.sqlstate})
            return error_response(503, "database_busy", "系统繁忙，请稍后重试", None, {"Retry-After": "1"})
        return await unexpected(request, error)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "服务器内部错误，请稍后重试")


# Used in routes' `responses=` so the OpenAPI document shows every error they can return.
def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {400: "请求有误", 401: "未登录、凭证伪造或已过期", 403: "无权执行", 404: "不存在或无权查看",
                    409: "与当前状态冲突", 413: "内容过大", 415: "类型不支持", 422: "请求内容不合法",
                    429: "请求过于频繁", 503: "依赖的服务暂不可用"}
    return {status: {"model": ErrorBody, "description": descriptions.get(status, "")} for status in statuses}
