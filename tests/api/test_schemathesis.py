"""Schemathesis over the whole API: generated requests — from the document's examples, valid
data and invalid data — to every operation of the OpenAPI document, as a citizen and as a
supervisor. No answer may be a 5xx, and every answer must match what the document says about
it (status code documented, content type, body schema).

Bounded for CI: SCHEMATHESIS_MAX_EXAMPLES per operation, role and mode (default 10: about a
minute). Every failure is collected (not just the first), so one run lists them all."""

from __future__ import annotations

import os
import warnings
from collections import defaultdict

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from tests.services.accounts.helpers import issue6_app

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
ADDRESS = "192.0.2.66"  # its own address: lock-outs caused by fuzzed sign-ins stay here
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations that end the session they are called with get a token of their own each time.
SESSION_ENDING = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/me/password")}
# Failures in other teams' routes, known and reported (issue 6's note); (operation, check).
# A failure not listed here fails the test; a listed one that no longer happens is a warning.
KNOWN_FAILURES: set[tuple[str, str]] = set()


def _with_client_address(app, address: str):
    """The app as seen from `address` (Schemathesis's in-process client always says "testclient")."""
    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "client": (address, 50000)}
        await app(scope, receive, send)

    return wrapped


@pytest.fixture(scope="module")
def fuzzed_app(seeded):
    """Limits off and the lock-out out of reach while fuzzing: the document's examples name real
    demo accounts, whose failed sign-ins must not lock them for the rest of the suite."""
    from fastapi.testclient import TestClient

    from services.accounts.settings import get_account_settings
    from services.config import get_settings
    from tests.support import staff_token, verified_citizen

    patch = pytest.MonkeyPatch()
    patch.setattr(get_settings(), "rate_limits", "off")
    patch.setattr(get_account_settings(), "login_max_failures", 1_000_000)
    app = _with_client_address(issue6_app(), ADDRESS)
    with TestClient(app) as client:
        citizen, _ = verified_citizen(client)
        supervisor = staff_token(client, "supervisor-361130102")
        yield app, {"citizen": citizen, "supervisor": supervisor}
    patch.undo()
    # The fuzzed sign-ins and password checks failed against real demo accounts (the document's
    # examples name them): forget them, so they lock nobody out for the rest of the suite.
    from sqlalchemy import delete

    from services.accounts.models import LoginAttempt
    from services.db import session_scope

    with session_scope() as session:
        session.execute(delete(LoginAttempt).where(LoginAttempt.address == ADDRESS))


def _fresh_token(token: str) -> str:
    from services.accounts import tokens as token_service
    from services.db import session_scope

    claims = token_service.decode_access_token(token)
    with session_scope() as session:
        fresh, _ = token_service.issue_access_token(principal=claims.principal, roles=claims.roles,
                                                    family=token_service.new_family(), session=session)
    return fresh


def _describe(case, response, error: Exception) -> str:
    body = response.text[:300] if response is not None else ""
    status = response.status_code if response is not None else "-"
    return f"{case.method} {case.formatted_path} -> {status} {body!r}: {str(error).splitlines()[0][:300]}"


def _run(app, tokens: dict[str, str]) -> dict[tuple[str, str], list[str]]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[tuple[str, str], list[str]] = defaultdict(list)
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        strategies = [operation.as_strategy(generation_mode=mode) for mode in (GenerationMode.POSITIVE,
                                                                             GenerationMode.NEGATIVE)]
        strategies += operation.get_strategies_from_examples()  # the document's own examples
        for role, token in tokens.items():
            for strategy in strategies:
                _exercise(strategy, role=role, token=token, label=label, failures=failures)
    return failures


def _exercise(strategy, *, role: str, token: str, label: str, failures: dict) -> None:
    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def exercise(case) -> None:
        use = _fresh_token(token) if (case.method.upper(), case.path) in SESSION_ENDING else token
        response = None
        try:
            response = case.call(headers={"Authorization": f"Bearer {use}"})
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as error:  # collect, don't stop: one run lists every failure
            names = {type(error).__name__}
            for inner in getattr(error, "exceptions", ()):
                names.add(type(inner).__name__)
            key = (label, ",".join(sorted(names)))
            if len(failures[key]) < 3:
                failures[key].append(f"[{role}] " + _describe(case, response, error))

    try:
        exercise()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        pass


def test_the_whole_api_holds_under_generated_input(fuzzed_app):
    app, tokens = fuzzed_app
    failures = _run(app, tokens)
    new = {key: samples for key, samples in failures.items() if key not in KNOWN_FAILURES}
    gone = KNOWN_FAILURES - set(failures)
    if gone:
        warnings.warn(f"known Schemathesis failures no longer happen, remove them: {sorted(gone)}")
    assert not new, "\n\n".join(f"{label} [{check}]\n  " + "\n  ".join(samples)
                                for (label, check), samples in sorted(new.items()))
