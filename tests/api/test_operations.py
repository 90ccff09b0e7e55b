"""Health, readiness, metrics, OpenAPI, request ids."""

from __future__ import annotations

import os

import pytest


def test_health_ready_metrics_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    if os.environ.get("ONESTOP_REDIS_URL"):
        assert ready.json()["checks"]["redis"] == "ok"
    client.get("/api/v1/matters")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "onestop_http_requests_total" in metrics.text
    assert 'route="/api/v1/matters"' in metrics.text
    document = client.get("/openapi.json").json()
    assert "/api/v1/cases" in document["paths"] and "/api/v1/cases/{case_id}/actions" in document["paths"]
    assert client.get("/docs").status_code == 200


def test_readyz_names_the_dependency_that_fails(client, monkeypatch):
    from services.config import get_settings

    monkeypatch.setattr(get_settings(), "redis_url", "redis://127.0.0.1:1/0")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("error") and "redis" in ready.json()["message"]


def test_request_id_is_echoed_or_made(client):
    assert len(client.get("/healthz").headers["x-request-id"]) >= 16
    assert client.get("/healthz", headers={"X-Request-Id": "abcdef123456"}).headers["x-request-id"] == "abcdef123456"


@pytest.mark.parametrize("path", ["/api/v1/cases", "/api/v1/certificates", "/api/v1/me"])
def test_private_routes_need_a_token(client, path):
    assert client.get(path).status_code == 401
