"""The route class of every router: a sync route function that takes the request's `session`
commits it in the same worker thread, right after it returns.

The session dependency (api.deps) would otherwise commit in a thread hop of its own after the
route function's — one more round trip through the thread pool on every request, about 5% of
a simple read's CPU. Whatever the route raises still goes to the dependency, which rolls back
(or commits, for errors whose changes must stick) as before; the response is sent only after
the commit either way.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute

from services.db import again_if_dropped


class CommitInWorkerRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _commit_after(endpoint), **kwargs)


def _commit_after(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if (getattr(endpoint, "commits_its_session", False) or inspect.iscoroutinefunction(endpoint)
            or "session" not in inspect.signature(endpoint).parameters):
        return endpoint

    reads = getattr(endpoint, "reads_only", False)

    @functools.wraps(endpoint)  # FastAPI reads the signature and annotations through __wrapped__
    def endpoint_then_commit(*args: Any, **kwargs: Any) -> Any:
        session = kwargs["session"]
        if reads:  # on a connection the server dropped, a read is simply run again
            result = again_if_dropped(functools.partial(endpoint, *args, **kwargs), session=session)
        else:
            result = endpoint(*args, **kwargs)
        if not session.info.get("no_transaction"):
            session.commit()
        return result

    endpoint_then_commit.commits_its_session = True
    return endpoint_then_commit


def reads_only(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a route that only reads (put it under the @router decorator): on PostgreSQL its
    session runs each statement on its own, with no BEGIN and COMMIT around them
    (services.db.without_transactions) — two round trips fewer. A route that writes anything,
    even a log row, must not be marked."""
    endpoint.reads_only = True
    return endpoint
