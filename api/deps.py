"""Dependencies: the database session, the current principal, role checks."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from services.accounts import tokens
from services.accounts.principal import Principal
from services.accounts.principal_cache import resolve_principal
from services.accounts.service import load_principal
from services.db import get_engine
from services.errors import Forbidden, OnestopError
from services.wechat.client import WeChatClient, get_wechat_client

_bearer = HTTPBearer(auto_error=False)


def _transaction() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except OnestopError as error:
            if error.keep_changes:
                session.commit()
            else:
                session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise


async def get_session(session: Session = Depends(_transaction, scope="function")) -> Session:
    """One transaction per request: committed when the route function returns and BEFORE the
    response is sent (so whatever a response announces is already there for the client's next
    call), rolled back on error unless the error says its changes must stick."""
    return session


def get_claims(request: Request,
               credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> tokens.AccessClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise tokens.InvalidToken("缺少登录凭证", code="missing_token")
    claims = tokens.decode_access_token(credentials.credentials)
    request.state.claims = claims
    return claims


def current_principal(claims: tokens.AccessClaims = Depends(get_claims),
                      session: Session = Depends(get_session)) -> Principal:
    return resolve_principal(session, claims=claims, load=load_principal)


def require_citizen(principal: Principal = Depends(current_principal)) -> Principal:
    if principal.kind != "citizen":
        raise Forbidden("仅限群众账号", code="citizen_only")
    return principal


def require_staff(principal: Principal = Depends(current_principal)) -> Principal:
    if principal.kind != "staff":
        raise Forbidden("仅限工作人员账号", code="staff_only")
    return principal


def wechat_client() -> WeChatClient:
    return get_wechat_client()
