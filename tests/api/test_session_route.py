"""The request's session is opened by a plain dependency (api.deps.get_session) and ended by its
route class (api.routing.SessionRoute): a route that takes a session under any other route class
would never commit."""

from __future__ import annotations

from fastapi.routing import APIRoute, iter_route_contexts

from api.deps import get_session
from api.routing import SessionRoute


def _calls(dependant) -> set:
    found = {dependant.call}
    for each in dependant.dependencies:
        found |= _calls(each)
    return found


def test_every_route_that_takes_a_session_ends_it():
    from api.app import create_app

    routes = [context.route for context in iter_route_contexts(create_app(start_worker=False).routes)
              if isinstance(context.route, APIRoute)]
    with_session = [route for route in routes if get_session in _calls(route.dependant)]
    assert len(with_session) > 50  # the walk does find them
    assert [route.path for route in with_session if not isinstance(route, SessionRoute)] == []
