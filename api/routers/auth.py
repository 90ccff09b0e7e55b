"""Sign-in, token refresh, logout, password change, and the caller's own account."""

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import citizen_only, current_principal, get_claims, get_session, require_citizen, wechat_client
from api.errors import errors
from api.limits import client_address, rate_limited, rate_limited_principal
from api.responses import PlainJSONResponse
from api.routing import SessionRoute, autocommits
from services.accounts import service
from services.accounts.principal import Principal
from services.accounts.tokens import AccessClaims
from services.subjects.identity_numbers import SAMPLE_ID_NUMBER
from services.wechat.client import WeChatClient

router = APIRouter(tags=["sign-in"], route_class=SessionRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WeChatLogin(_Body):
    code: str = Field(min_length=1, max_length=128, description="the code from wx.login (single use, 5 minutes)",
                      examples=["demo-zhangsan.1"])


class StaffLogin(_Body):
    username: str = Field(min_length=1, max_length=64, examples=["clerk-361130-1"])
    password: str = Field(min_length=1, max_length=256, examples=["Demo-abcdefghij"])


class RefreshRequest(_Body):
    refresh_token: str = Field(min_length=1, max_length=256, examples=["f3L0bQ…"])


class RealNameStart(_Body):
    name: str = Field(min_length=1, max_length=50, examples=["张三"])
    id_number: str = Field(min_length=1, max_length=32, description="公民身份号码 (18 位；示例取自 GB 11643-1999 标准文本)",
                           examples=[SAMPLE_ID_NUMBER])


class RealNameFinish(_Body):
    verify_id: str = Field(min_length=1, max_length=128, examples=["vZ2uX…"])


class PasswordChange(_Body):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256, description="至少 10 位，含大小写字母、数字、符号中的 3 类",
                              examples=["Wuyuan-2026-Spring"])


class ServicePointRef(BaseModel):
    id: int
    name: str
    level: Literal["county", "town", "village"] | str
    region_code: str


class Me(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "citizen:1", "roles": ["citizen"], "real_name_verified": True, "name_masked": "张*",
         "service_point": None},
        {"id": "staff:7", "roles": ["clerk"], "real_name_verified": False, "name_masked": "王*",
         "service_point": {"id": 3, "name": "秋口镇便民服务中心", "level": "town", "region_code": "361130102000"}}]})

    id: str = Field(description='"citizen:<n>" or "staff:<n>"')
    roles: list[str]
    real_name_verified: bool
    name_masked: str
    service_point: ServicePointRef | None


class Tokens(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"access_token": "eyJhbGciOiJFUzI1NiIs…", "refresh_token": "f3L0bQ…", "token_type": "bearer",
         "expires_in": 900, "user": {"id": "citizen:1", "roles": ["citizen"], "real_name_verified": False,
                                     "name_masked": "", "service_point": None}}]})

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="seconds the access token stays valid")
    user: Me


class RealNameStarted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"verify_id": "vZ2uX…", "expires_in": 3600}]})

    verify_id: str = Field(description="pass to wx.requestFacialVerify")
    expires_in: int


@router.post("/auth/wechat-login", summary="Citizen sign-in with a wx.login code", response_model=Tokens,
             description="401 `wechat_code_invalid` for an unknown, expired or used code (WeChat 40029 / 40163); "
                         "403 `wechat_user_blocked` when WeChat blocks the user (40226); 429 `wechat_rate_limited` "
                         "when the mini-program's WeChat quota is used up (45011), or `rate_limited` for too many "
                         "sign-ins from one address; 503 `wechat_unavailable` when WeChat is busy (-1), times out "
                         "or answers garbage.",
             responses=errors(401, 403, 422, 429, 503),
             dependencies=[Depends(rate_limited("wechat-login"))])
@autocommits
def wechat_login(body: WeChatLogin, session: Session = Depends(get_session),
                 client: WeChatClient = Depends(wechat_client)) -> PlainJSONResponse:
    # answered as built: FastAPI would validate a sync route's return value against the response
    # model in a second worker-thread hop (the model still documents the answer)
    return PlainJSONResponse(service.wechat_login(session, code=body.code, client=client))


@router.post("/auth/login", summary="Staff sign-in with username and password", response_model=Tokens,
             description="The same 401 `invalid_credentials` for an unknown user and a wrong password. After 10 "
                         "failures within 15 minutes for an account or from an address: 429 `too_many_attempts` "
                         "with `Retry-After` (configurable).",
             responses=errors(401, 422, 429), dependencies=[Depends(rate_limited("staff-login"))])
def staff_login(body: StaffLogin, request: Request, session: Session = Depends(get_session)) -> PlainJSONResponse:
    return PlainJSONResponse(service.staff_login(session, username=body.username, password=body.password,
                                                 address=client_address(request)))


@router.post("/auth/refresh", summary="Rotate a refresh token for a new pair", response_model=Tokens,
             description="The old refresh token stops working. Presenting a used one again revokes its whole "
                         "family (every refresh and access token issued from the same sign-in): 401.",
             responses=errors(401, 422, 429), dependencies=[Depends(rate_limited("refresh"))])
def refresh(body: RefreshRequest, session: Session = Depends(get_session)) -> PlainJSONResponse:
    return PlainJSONResponse(service.refresh(session, refresh_token=body.refresh_token))


@router.post("/auth/logout", summary="End this session (access and refresh token)",
             status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
def logout(claims: AccessClaims = Depends(get_claims), session: Session = Depends(get_session)) -> None:
    service.logout(session, claims=claims)


@router.get("/me", summary="The caller's account", response_model=Me, responses=errors(401))
def me(principal: Principal = Depends(current_principal), session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.describe_principal(session, principal)


@router.post("/me/password", summary="Staff: change the password", response_model=Tokens,
             description="Checks the current password (a wrong one counts toward the sign-in lock-out), enforces "
                         "the password policy (422 `weak_password` with the reasons), ends every other session "
                         "of the account and answers a new token pair.",
             responses=errors(401, 403, 422, 429))
def change_password(body: PasswordChange, request: Request, principal: Principal = Depends(current_principal),
                    claims: AccessClaims = Depends(get_claims),
                    session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.change_password(session, principal=principal, claims=claims,
                                   current_password=body.current_password, new_password=body.new_password,
                                   address=client_address(request))


@router.post("/me/real-name/start", summary="Start WeChat face verification for a name and ID number",
             response_model=RealNameStarted,
             description="422 `invalid_id_number` with `detail.reason` (length, character, birth_date, "
                         "check_character, region); 409 `real_name_already_verified`.",
             responses=errors(401, 403, 409, 422, 429, 503))
def real_name_start(body: RealNameStart, principal: Principal = Depends(rate_limited_principal("real-name")),
                    session: Session = Depends(get_session),
                    client: WeChatClient = Depends(wechat_client)) -> dict[str, Any]:
    citizen_only(principal)
    return service.start_real_name(session, principal=principal, name=body.name, id_number=body.id_number,
                                   client=client)


@router.post("/me/real-name", summary="Finish real-name binding after wx.requestFacialVerify", response_model=Me,
             description="422 `face_verify_failed` when WeChat's queryverifyinfo does not confirm the person "
                         "(or the verify_id is unknown, used or expired); 409 `id_number_bound` when another "
                         "account holds that number.",
             responses=errors(401, 403, 409, 422, 503))
def real_name_finish(body: RealNameFinish, principal: Principal = Depends(require_citizen),
                     session: Session = Depends(get_session),
                     client: WeChatClient = Depends(wechat_client)) -> dict[str, Any]:
    return service.finish_real_name(session, principal=principal, verify_id=body.verify_id, client=client)
