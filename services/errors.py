"""The project's error types. Services raise these; one handler in api/ renders them as
`{"error": code, "message": text, "detail": ...}` with the status each type carries."""

from __future__ import annotations

from typing import Any


class OnestopError(Exception):
    status_code: int = 400
    code: str = "bad_request"
    message: str = "请求有误"
    # Set on an instance when the transaction must still be committed although the request
    # fails (e.g. a reused refresh token: the family revocation must stick).
    keep_changes: bool = False

    def __init__(self, message: str | None = None, *, detail: Any = None, code: str | None = None):
        self.message = message or type(self).message
        self.detail = detail
        if code:
            self.code = code
        super().__init__(self.message)


class InvalidInput(OnestopError):
    status_code = 422
    code = "validation_error"
    message = "请求内容不合法"


class Unauthorized(OnestopError):
    status_code = 401
    code = "unauthorized"
    message = "未登录或登录已失效"


class Forbidden(OnestopError):
    status_code = 403
    code = "forbidden"
    message = "无权执行该操作"


class NotFound(OnestopError):
    status_code = 404
    code = "not_found"
    message = "资源不存在"


class Conflict(OnestopError):
    status_code = 409
    code = "conflict"
    message = "与当前状态冲突"


class PayloadTooLarge(OnestopError):
    status_code = 413
    code = "payload_too_large"
    message = "上传内容过大"


class UnsupportedMediaType(OnestopError):
    status_code = 415
    code = "unsupported_media_type"
    message = "不支持的文件类型"


class TooManyRequests(OnestopError):
    status_code = 429
    code = "too_many_requests"
    message = "请求过于频繁，请稍后再试"

    def __init__(self, message: str | None = None, *, retry_after: int = 60, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(OnestopError):
    status_code = 503
    code = "service_unavailable"
    message = "依赖的服务暂不可用"
