"""The route class of every router (SessionRoute): it ends the request's database session.

The session dependency (api.deps.get_session) only opens a session. Its route class finishes
it once the route function is done and BEFORE the response is sent: committed, or rolled back
when the route raised (committed anyway for an error whose changes must stick), then closed.

A sync route function that takes the `session` commits it in its own worker thread, right after
it returns: finishing it later from the event loop would cost one more round trip through the
thread pool on every request, about 5% of a simple read's CPU. Whatever such a route raises is
still rolled back (or committed) by the route class.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlmodel import Session

from api.deps import SESSION_SCOPE_KEY
from services.db import again_if_dropped, each_statement_commits
from services.errors import OnestopError


class SessionRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _commit_after(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handle = super().get_route_handler()

        async def handle_then_end_session(request: Request) -> Response:
            try:
                response = await handle(request)
            except OnestopError as error:
                await _end_session(request, commit=error.keep_changes)
                raise
            except BaseException:
                await _end_session(request, commit=False)
                raise
            await _end_session(request, commit=True)
            return response

        return handle_then_end_session


async def _end_session(request: Request, *, commit: bool) -> None:
    session: Session | None = request.scope.pop(SESSION_SCOPE_KEY, None)
    if session is None:  # the route took no session
        return
    try:
        if session.in_transaction() and not each_statement_commits(session):
            await anyio.to_thread.run_sync(session.commit if commit else session.rollback)
    finally:
        session.close()  # after commit or rollback no connection is held: no I/O here


def _commit_after(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if (getattr(endpoint, "commits_its_session", False) or inspect.iscoroutinefunction(endpoint)
            or "session" not in inspect.signature(endpoint).parameters):
        return endpoint

    # A statement session's connections are lent without a ping: on one the server dropped (a
    # restart), the route's first statement fails and the route is simply run again — a read
    # always, an autocommit route if it had not written yet (services.db.again_if_dropped).
    run_again_if_dropped = getattr(endpoint, "autocommits", False)

    @functools.wraps(endpoint)  # FastAPI reads the signature and annotations through __wrapped__
    def endpoint_then_commit(*args: Any, **kwargs: Any) -> Any:
        session = kwargs["session"]
        if run_again_if_dropped:
            result = again_if_dropped(functools.partial(endpoint, *args, **kwargs), session=session)
        else:
            result = endpoint(*args, **kwargs)
        if not each_statement_commits(session):
            session.commit()
        elif session.new or session.dirty or session.deleted:  # would be lost: no commit comes
            raise RuntimeError("a change left in an autocommit route's session: write it in one statement "
                               "or in services.db.transaction(session)")
        return result

    endpoint_then_commit.commits_its_session = True
    return endpoint_then_commit


def reads_only(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a route that only reads (put it under the @router decorator): on PostgreSQL its
    session runs each statement on its own, with no BEGIN and COMMIT around them
    (services.db.statement_session) — two round trips fewer — and a read on a connection the
    server dropped is simply run again. A route that writes anything, even a log row, must not be
    marked."""
    endpoint.reads_only = True
    return autocommits(endpoint)


def autocommits(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a route whose session runs each statement on its own on PostgreSQL
    (services.db.statement_session): its reads, and a change it writes in one statement
    (services.db.write_guarded), need no BEGIN, COMMIT or pool ping around them; a change of
    several statements must take services.db.transaction(session)."""
    endpoint.autocommits = True
    return endpoint
