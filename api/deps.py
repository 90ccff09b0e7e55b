"""Dependencies: the database session, the current principal, role checks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from services.accounts import tokens
from services.accounts.principal import Principal
from services.accounts.principal_cache import resolve_principal
from services.accounts.service import load_principal
from services.db import get_engine, without_transactions
from services.errors import Forbidden, OnestopError
from services.matters.service import AdminOnly
from services.wechat.client import WeChatClient, get_wechat_client

_bearer = HTTPBearer(auto_error=False)


async def _transaction(request: Request) -> AsyncIterator[Session]:
    # Async, so that opening the session (no I/O until first used) costs no hop to a worker
    # thread. A sync route commits in its own worker thread (api.routing.CommitInWorkerRoute);
    # whatever is still open here — an error to roll back, an async route's work — is finished
    # in one. A sync generator here would cost two hops on every request.
    engine = main = get_engine()
    if getattr(request.scope.get("endpoint"), "reads_only", False):  # api.routing.reads_only
        engine = without_transactions(main)
    session = Session(engine, expire_on_commit=False)
    # the reads' own pool (PostgreSQL) commits each statement on its own: nothing is left to
    # commit or roll back; on SQLite the reads keep the one engine and their transactions
    session.info["no_transaction"] = engine is not main
    try:
        yield session
        await _in_thread(session, session.commit)
    except OnestopError as error:
        await _in_thread(session, session.commit if error.keep_changes else session.rollback)
        raise
    except BaseException:
        await _in_thread(session, session.rollback)
        raise
    finally:
        session.close()  # after commit or rollback no connection is held: no I/O here


async def _in_thread(session: Session, finish) -> None:
    if session.in_transaction() and not session.info["no_transaction"]:
        await anyio.to_thread.run_sync(finish)


async def get_session(session: Session = Depends(_transaction, scope="function")) -> Session:
    """One transaction per request: committed when the route function returns and BEFORE the
    response is sent (so whatever a response announces is already there for the client's next
    call), rolled back on error unless the error says its changes must stick."""
    return session


async def get_claims(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> tokens.AccessClaims:
    # async: verifying a token is CPU work (and usually a cache hit), not worth a thread hop
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise tokens.InvalidToken("缺少登录凭证", code="missing_token")
    claims = tokens.decode_access_token(credentials.credentials)
    request.state.claims = claims
    return claims


async def current_principal(claims: tokens.AccessClaims = Depends(get_claims),
                            session: Session = Depends(get_session)) -> Principal:
    return await resolve_principal(session, claims=claims, load=load_principal)


async def require_citizen(principal: Principal = Depends(current_principal)) -> Principal:
    if principal.kind != "citizen":
        raise Forbidden("仅限群众账号", code="citizen_only")
    return principal


async def require_staff(principal: Principal = Depends(current_principal)) -> Principal:
    if principal.kind != "staff":
        raise Forbidden("仅限工作人员账号", code="staff_only")
    return principal


async def require_admin(principal: Principal = Depends(current_principal)) -> Principal:
    if principal.kind != "staff" or "admin" not in principal.roles:
        raise AdminOnly()
    return principal


async def wechat_client() -> WeChatClient:
    return get_wechat_client()
