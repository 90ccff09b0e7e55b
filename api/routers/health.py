"""Liveness, readiness and metrics (no prefix, no auth)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from services.config import get_settings
from services.db import get_engine

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database (and Redis, if configured) answer",
            responses={503: {"description": "A dependency does not answer"}})
def readyz() -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # readiness reports failures; it never raises
        checks["database"] = f"error: {type(error).__name__}"
    redis_url = get_settings().redis_url
    if redis_url:
        import redis

        try:
            client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
            client.ping()
            client.close()
            checks["redis"] = "ok"
        except Exception as error:
            checks["redis"] = f"error: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    failed = [name for name, value in checks.items() if value != "ok"]
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    if not ready:
        body.update({"error": "not_ready", "message": "依赖的服务暂不可用：" + "、".join(failed)})
    return JSONResponse(status_code=200 if ready else 503, content=body)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
