"""Sign-in, tokens and real-name binding."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.accounts import tokens
from services.accounts.models import CitizenAccount, RealNameAttempt
from services.accounts.passwords import verify_password
from services.accounts.principal import Principal
from services.db import utcnow
from services.errors import Conflict, InvalidInput, Unauthorized
from services.points.models import ServicePoint, Staff
from services.subjects.identity_numbers import parse_person_number
from services.subjects.models import Subject
from services.subjects.protection import get_protector
from services.subjects.repository import find_subject, get_or_create_subject
from services.wechat.client import FaceVerifyFailed, WeChatClient


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "用户名或密码错误"


class IdNumberBound(Conflict):
    code = "id_number_bound"
    message = "该身份证号码已绑定其他账号"


class VerificationNotFound(InvalidInput):
    code = "face_verify_failed"
    message = "人脸核身记录不存在或已过期，请重新发起"


def _token_pair(session: Session, principal: Principal, *, family: str | None = None) -> dict[str, Any]:
    family = family or tokens.new_family()
    access, lifetime = tokens.issue_access_token(principal=principal.key, roles=principal.roles, family=family)
    refresh = tokens.issue_refresh_token(session, principal=principal.key, family=family)
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": lifetime,
            "user": describe_principal(session, principal)}


def wechat_login(session: Session, *, code: str, client: WeChatClient) -> dict[str, Any]:
    """Exchange a wx.login code for tokens, creating the citizen account on first sign-in."""
    wechat_session = client.code_to_session(code)
    account = session.exec(select(CitizenAccount).where(CitizenAccount.openid == wechat_session.openid)).first()
    if account is None:
        account = CitizenAccount(openid=wechat_session.openid)
        session.add(account)
        session.flush()
    return _token_pair(session, citizen_principal(session, account))


def staff_login(session: Session, *, username: str, password: str) -> dict[str, Any]:
    """Password sign-in for staff; the same answer for an unknown user and a wrong password."""
    staff = session.exec(select(Staff).where(Staff.username == username)).first()
    if not verify_password(staff.password_hash if staff else None, password) or staff is None or not staff.active:
        raise InvalidCredentials()
    return _token_pair(session, staff_principal(session, staff))


def refresh(session: Session, *, refresh_token: str) -> dict[str, Any]:
    principal_key, family, new_refresh = tokens.rotate_refresh_token(session, token=refresh_token)
    principal = load_principal(session, principal_key=principal_key)
    access, lifetime = tokens.issue_access_token(principal=principal.key, roles=principal.roles, family=family)
    return {"access_token": access, "refresh_token": new_refresh, "token_type": "bearer", "expires_in": lifetime,
            "user": describe_principal(session, principal)}


def logout(session: Session, *, claims: tokens.AccessClaims) -> None:
    tokens.revoke_access_token(session, claims=claims)
    if claims.family:
        tokens.revoke_family(session, family=claims.family)


def citizen_principal(session: Session, account: CitizenAccount) -> Principal:
    name = ""
    if account.subject_id is not None:
        subject = session.get(Subject, account.subject_id)
        name = subject.name if subject else ""
    return Principal(kind="citizen", account_id=account.id, roles=("citizen",), name=name,
                     subject_id=account.subject_id)


def staff_principal(session: Session, staff: Staff) -> Principal:
    point = session.get(ServicePoint, staff.service_point_id)
    return Principal(kind="staff", account_id=staff.id, roles=(staff.role,), name=staff.display_name,
                     service_point_id=staff.service_point_id,
                     jurisdiction_code=point.region_code if point else None)


def load_principal(session: Session, *, principal_key: str) -> Principal:
    """The current principal for a token's subject; a deleted or deactivated account is 401."""
    kind, _, raw_id = principal_key.partition(":")
    if kind == "citizen":
        account = session.get(CitizenAccount, int(raw_id))
        if account is not None:
            return citizen_principal(session, account)
    elif kind == "staff":
        staff = session.get(Staff, int(raw_id))
        if staff is not None and staff.active:
            return staff_principal(session, staff)
    raise tokens.InvalidToken()


def _mask_name(name: str) -> str:
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def describe_principal(session: Session, principal: Principal) -> dict[str, Any]:
    """The `/me` answer."""
    service_point = None
    if principal.service_point_id is not None:
        point = session.get(ServicePoint, principal.service_point_id)
        if point is not None:
            service_point = {"id": point.id, "name": point.name, "level": point.level,
                             "region_code": point.region_code}
    return {"id": principal.key, "roles": list(principal.roles),
            "real_name_verified": principal.subject_id is not None,
            "name_masked": _mask_name(principal.name), "service_point": service_point}


def start_real_name(session: Session, *, principal: Principal, name: str, id_number: str,
                    client: WeChatClient) -> dict[str, Any]:
    """Validate the claimed identity and open a WeChat face verification for it."""
    number = parse_person_number(id_number)
    name = name.strip()
    if not 1 <= len(name) <= 50:
        raise InvalidInput("姓名长度应为 1–50 个字符", detail=[{"field": "name", "reason": "length"}])
    account = session.get(CitizenAccount, principal.account_id)
    out_seq_no = secrets.token_hex(16)
    verify_id, expires_in = client.get_verify_id(openid=account.openid, name=name, id_number=number.value,
                                                 out_seq_no=out_seq_no)
    protector = get_protector()
    session.add(RealNameAttempt(account_id=account.id, verify_id=verify_id, out_seq_no=out_seq_no, name=name,
                                number_type=number.type.value, number_encrypted=protector.encrypt(number.value),
                                number_hash=protector.keyed_hash(number.value),
                                expires_at=utcnow() + timedelta(seconds=expires_in)))
    return {"verify_id": verify_id, "expires_in": expires_in}


def finish_real_name(session: Session, *, principal: Principal, verify_id: str,
                     client: WeChatClient) -> dict[str, Any]:
    """Ask WeChat whether the face verification passed; bind the subject to this account."""
    attempt = session.exec(select(RealNameAttempt).where(RealNameAttempt.verify_id == verify_id,
                                                         RealNameAttempt.account_id == principal.account_id)).first()
    if attempt is None or attempt.used_at is not None or attempt.expires_at <= utcnow():
        raise VerificationNotFound()
    account = session.get(CitizenAccount, principal.account_id)
    number_value = get_protector().decrypt(attempt.number_encrypted)
    if not client.query_verify_info(openid=account.openid, verify_id=verify_id, out_seq_no=attempt.out_seq_no,
                                    name=attempt.name, id_number=number_value):
        raise FaceVerifyFailed()
    number = parse_person_number(number_value)
    existing = find_subject(session, number=number)
    if existing is not None:
        holder = session.exec(select(CitizenAccount).where(CitizenAccount.subject_id == existing.id)).first()
        if holder is not None and holder.id != account.id:
            raise IdNumberBound()
    subject = existing or get_or_create_subject(session, number=number, name=attempt.name)
    attempt.used_at = utcnow()
    account.subject_id = subject.id
    session.add_all([attempt, account])
    try:
        session.flush()
    except IntegrityError as error:  # another account bound the same number a moment ago
        raise IdNumberBound() from error
    return describe_principal(session, citizen_principal(session, account))
