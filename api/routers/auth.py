"""Sign-in, token refresh, logout, and the caller's own account."""

from typing import Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.deps import current_principal, get_claims, get_session, require_citizen, wechat_client
from api.errors import errors
from services.accounts import service
from services.accounts.principal import Principal
from services.accounts.tokens import AccessClaims
from services.wechat.client import WeChatClient

router = APIRouter(tags=["sign-in"])


class WeChatLogin(BaseModel):
    code: str = Field(min_length=1, max_length=128, examples=["demo-zhangsan.1"])


class StaffLogin(BaseModel):
    username: str = Field(min_length=1, max_length=64, examples=["clerk-361130"])
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class RealNameStart(BaseModel):
    name: str = Field(min_length=1, max_length=50, examples=["张三"])
    id_number: str = Field(min_length=1, max_length=32, examples=["（18 位公民身份号码）"])


class RealNameFinish(BaseModel):
    verify_id: str = Field(min_length=1, max_length=128)


@router.post("/auth/wechat-login", summary="Citizen sign-in with a wx.login code",
             responses=errors(401, 403, 422, 429, 503))
def wechat_login(body: WeChatLogin, session: Session = Depends(get_session),
                 client: WeChatClient = Depends(wechat_client)) -> dict[str, Any]:
    return service.wechat_login(session, code=body.code, client=client)


@router.post("/auth/login", summary="Staff sign-in with username and password", responses=errors(401, 422, 429))
def staff_login(body: StaffLogin, session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.staff_login(session, username=body.username, password=body.password)


@router.post("/auth/refresh", summary="Rotate a refresh token for a new pair", responses=errors(401, 422))
def refresh(body: RefreshRequest, session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.refresh(session, refresh_token=body.refresh_token)


@router.post("/auth/logout", summary="End this session (access and refresh token)",
             status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
def logout(claims: AccessClaims = Depends(get_claims), session: Session = Depends(get_session)) -> None:
    service.logout(session, claims=claims)


@router.get("/me", summary="The caller's account", responses=errors(401))
def me(principal: Principal = Depends(current_principal), session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.describe_principal(session, principal)


@router.post("/me/real-name/start", summary="Start WeChat face verification for a name and ID number",
             responses=errors(401, 403, 422, 503))
def real_name_start(body: RealNameStart, principal: Principal = Depends(require_citizen),
                    session: Session = Depends(get_session),
                    client: WeChatClient = Depends(wechat_client)) -> dict[str, Any]:
    return service.start_real_name(session, principal=principal, name=body.name, id_number=body.id_number,
                                   client=client)


@router.post("/me/real-name", summary="Finish real-name binding after wx.requestFacialVerify",
             responses=errors(401, 403, 409, 422, 503))
def real_name_finish(body: RealNameFinish, principal: Principal = Depends(require_citizen),
                     session: Session = Depends(get_session),
                     client: WeChatClient = Depends(wechat_client)) -> dict[str, Any]:
    return service.finish_real_name(session, principal=principal, verify_id=body.verify_id, client=client)
