"""Helpers of the case, SLA and bundle tests."""

from __future__ import annotations

from tests.support import staff_token

_tokens: dict[str, str] = {}


def staff(client, username: str) -> str:
    """A staff member's access token, signed in once per test session (staff sign-in is rate
    limited per address; access tokens outlive the suite)."""
    if username not in _tokens:
        _tokens[username] = staff_token(client, username)
    return _tokens[username]


def ensure_routers(app) -> None:
    """Mount this work's routers onto the test app if api/app.py doesn't include them yet."""
    from api.routers import admin_calendar, bundles, figures

    included = {id(getattr(route, "original_router", None)) for route in app.routes}
    for module in (bundles, figures, admin_calendar):
        if id(module.router) not in included:
            app.include_router(module.router, prefix="/api/v1")
