"""The FastAPI application."""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.limits import HardeningMiddleware, document_common_errors
from api.logging import configure_logging
from api.middleware import JsonTooLargeMiddleware, RequestContextMiddleware
from api.routers import admin_points
from api.routers import (admin_calendar, admin_matters, auth, bundles, cases, catalogue, certificates, consents,
                         evaluations, figures, files, health)
from services.config import get_settings
from services.db import get_engine
from services.matters.service import ensure_catalogue_loads
from services.outbox.registry import register_all_handlers, schedule_periodic_jobs
from services.outbox.service import run_forever

log = logging.getLogger("onestop")

JSON_BODY_LIMIT = 1024 * 1024  # uploads set their own, larger limit on the route

DESCRIPTION = """onestop — 一网通办 backend: citizens apply from the WeChat mini-program, service points
process cases, approved cases produce signed e-certificates anyone can verify.

Errors always have the body `{"error": code, "message": text, "detail": ...}`."""


def create_app(*, start_worker: bool | None = None) -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    ensure_catalogue_loads()  # refuse to start with a broken catalogue rather than serve half of it
    register_all_handlers()
    if start_worker is None:
        start_worker = settings.run_worker_in_server

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stop = threading.Event()
        thread = None
        if start_worker:
            schedule_periodic_jobs(get_engine())
            thread = threading.Thread(target=run_forever, name="onestop-worker", daemon=True,
                                      kwargs={"engine": get_engine(), "stop": stop,
                                              "poll_seconds": settings.worker_poll_seconds})
            thread.start()
            log.info("worker started inside the server process")
        # What start-up loaded (modules, routes, settings) lives as long as the process: frozen,
        # the garbage collector's full collections, which stall every request in flight, stop
        # walking it again and again.
        gc.collect()
        gc.freeze()
        # A request leaves almost no garbage cycles: its objects die by reference counting. At
        # Python's default (a young collection every 700 net allocations) the collector still
        # took 2.3% of the server's CPU under the case-list load, and its full collections
        # stalled every request in flight for about 20 ms, several times a minute; at 20,000
        # it ran 3 young collections in the same run and no full one (tests/bench/README.md).
        gc.set_threshold(20_000, 20, 20)
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=10)

    app = FastAPI(title="onestop", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    # outermost last: the request context wraps everything, hardening runs before any route
    app.add_middleware(JsonTooLargeMiddleware)
    app.add_middleware(HardeningMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    prefix = "/api/v1"
    # routes are matched in order: the case routes, the busiest by far, first (no path of the
    # routers before them in the list overlaps theirs, so nothing else changes)
    for router in (cases.router, auth.router, catalogue.router, admin_matters.router, bundles.router,
                   evaluations.router, consents.router, files.router, certificates.router, certificates.public,
                   figures.router, admin_calendar.router):
        app.include_router(router, prefix=prefix, max_body_size=JSON_BODY_LIMIT)
    app.include_router(admin_points.router, prefix=prefix, max_body_size=JSON_BODY_LIMIT)
    document_common_errors(app)

    if settings.demo and not settings.wechat_base_url:
        from services.wechat.fake_server import create_fake_wechat_app

        app.mount("/fake-wechat", create_fake_wechat_app(appid=settings.wechat_appid, secret=settings.wechat_secret))
    return app
