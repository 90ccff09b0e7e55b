"""Helpers for issue 6's tests: an app with the new routers and middleware (whether or not
api/app.py registers them yet), clients from other addresses, and cases written directly."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi.testclient import TestClient


def issue6_app():
    """create_app() plus, when app.py doesn't register them yet, the consents and evaluations
    routers and the hardening middleware."""
    from api.app import JSON_BODY_LIMIT, create_app
    from api.limits import HardeningMiddleware, document_common_errors
    from api.routers import consents, evaluations

    app = create_app(start_worker=False)
    included = {id(getattr(route, "original_router", None)) for route in app.routes}
    for router in (consents.router, evaluations.router):
        if id(router) not in included:
            app.include_router(router, prefix="/api/v1", max_body_size=JSON_BODY_LIMIT)
    if not any(getattr(item, "cls", None) is HardeningMiddleware for item in app.user_middleware):
        app.add_middleware(HardeningMiddleware)
    document_common_errors(app)
    return app


def client_from(app, address: str) -> TestClient:
    """A test client whose requests come from `address` (lock-outs and limits are per address)."""
    return TestClient(app, raise_server_exceptions=False, client=(address, 50000))


def insert_case(session, *, subject_id: int, handling_point_id: int, state: str = "completed",
                created_by_principal: str = "system:test", assignee_id: int | None = None,
                region_code: str = "361130102200", closed_days_ago: float | None = 0.0,
                matter_code: str = "residence-certificate", created_by: str = "self") -> "Case":  # noqa: F821
    """A case row written directly (for service tests that need a case in a given state)."""
    from services.cases.models import Case
    from services.db import utcnow

    now = utcnow()
    case = Case(id=str(uuid.uuid4()), number=f"T{uuid.uuid4().hex[:20]}", matter_code=matter_code, matter_version=1,
                state=state, version=1, subject_id=subject_id, subject_hash=uuid.uuid4().hex, applicant_name="测试",
                region_code=region_code, receiving_channel="online", handling_point_id=handling_point_id,
                assignee_id=assignee_id, routing_reason="测试", form={}, created_by=created_by,
                created_by_principal=created_by_principal, submitted_at=now, updated_at=now,
                closed_at=(now - timedelta(days=closed_days_ago)) if closed_days_ago is not None else None)
    session.add(case)
    session.flush()
    return case


def insert_subject(session, *, name: str = "测试") -> "Subject":  # noqa: F821
    from services.subjects.identity_numbers import parse_person_number
    from services.subjects.repository import get_or_create_subject
    from tests.support import make_id_number

    return get_or_create_subject(session, number=parse_person_number(make_id_number()), name=name)
