"""Dependencies: the database session, the current principal, role checks."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from services.accounts import tokens
from services.accounts.principal import Principal
from services.accounts.principal_cache import resolve_principal
from services.accounts.service import load_principal
from services.db import get_engine, statement_session
from services.errors import Forbidden
from services.matters.service import AdminOnly
from services.wechat.client import WeChatClient, get_wechat_client

bearer = HTTPBearer(auto_error=False)


SESSION_SCOPE_KEY = "onestop.session"


async def get_session(request: Request) -> Session:
    """The request's one session, committed when the route function returns and BEFORE the
    response is sent (so whatever a response announces is already there for the client's next
    call), rolled back on error unless the error says its changes must stick.

    Only opened here (no I/O until first used); its route class (api.routing.SessionRoute) ends
    it. A plain function and not a dependency with `yield`: FastAPI's machinery for those (exit
    stacks, cancel scopes, a context manager per request) cost about as much CPU as a simple
    read's queries. A route marked `autocommits` gets a session whose statements each commit on
    their own (PostgreSQL): nothing is left to commit, and its service writes a change of several
    statements in a transaction of its own."""
    if getattr(request.scope.get("endpoint"), "autocommits", False):  # api.routing.reads_only / autocommits
        session = statement_session(get_engine())
    else:
        session = Session(get_engine(), expire_on_commit=False)
    request.scope[SESSION_SCOPE_KEY] = session
    return session


def claims_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> tokens.AccessClaims:
    # CPU work and usually a cache hit (services.accounts.tokens): no thread hop
    claims = request.scope.get("onestop.claims")
    if claims is None:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise tokens.InvalidToken("缺少登录凭证", code="missing_token")
        claims = request.scope["onestop.claims"] = tokens.decode_access_token(credentials.credentials)
    return claims


async def get_claims(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> tokens.AccessClaims:
    return claims_of(request, credentials)


async def current_principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                            session: Session = Depends(get_session)) -> Principal:
    # the token is read here and not through get_claims: each level of dependencies costs FastAPI
    # a resolution of its own on every request
    return await resolve_principal(session, claims=claims_of(request, credentials), load=load_principal)


def citizen_only(principal: Principal) -> Principal:
    if principal.kind != "citizen":
        raise Forbidden("仅限群众账号", code="citizen_only")
    return principal


async def require_citizen(principal: Principal = Depends(current_principal)) -> Principal:
    return citizen_only(principal)


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
