"""Sign-in, tokens, password change and real-name binding."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.accounts import lockout, tokens
from services.accounts.models import CitizenAccount, RealNameAttempt
from services.accounts.passwords import hash_password, verify_password
from services.accounts.principal import Principal
from services.accounts.principal_cache import principal_changed
from services.accounts.settings import get_account_settings
from services.db import again_if_dropped, insert_now, transaction, utcnow
from services.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from services.points.models import ServicePoint, Staff
from services.subjects.identity_numbers import parse_person_number
from services.subjects.models import Subject
from services.subjects.protection import get_protector
from services.subjects.repository import create_subject, find_subject
from services.wechat.client import FaceVerifyFailed, WeChatClient

log = logging.getLogger("onestop.accounts")


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "用户名或密码错误"


class IdNumberBound(Conflict):
    code = "id_number_bound"
    message = "该身份证号码已绑定其他账号"


class AlreadyVerified(Conflict):
    code = "real_name_already_verified"
    message = "本账号已完成实名认证"


class VerificationNotFound(InvalidInput):
    code = "face_verify_failed"
    message = "人脸核身记录不存在或已过期，请重新发起"


class CurrentPasswordWrong(Forbidden):
    code = "current_password_wrong"
    message = "当前密码不正确"


class WeakPassword(InvalidInput):
    code = "weak_password"
    message = "新密码不符合复杂度要求"


class StaffOnly(Forbidden):
    code = "staff_only"
    message = "仅限工作人员账号"


def _token_pair(session: Session, principal: Principal, *, family: str | None = None) -> dict[str, Any]:
    family = family or tokens.new_family()
    access, lifetime, access_record = tokens.new_access_token(principal=principal.key, roles=principal.roles,
                                                              family=family)
    refresh, refresh_record = tokens.new_refresh_token(principal=principal.key, family=family)
    insert_now(session, access_record, refresh_record)  # one round trip
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": lifetime,
            "user": describe_principal(session, principal)}


_ACCOUNT_BY_OPENID = select(CitizenAccount).where(CitizenAccount.openid == bindparam("openid"))  # built once


def wechat_login(session: Session, *, code: str, client: WeChatClient) -> dict[str, Any]:
    """Exchange a wx.login code for tokens, creating the citizen account on first sign-in.

    The route runs on a statement session (api.routing.autocommits): a returning citizen's
    sign-in is a read and ONE write statement (both token records), with no BEGIN, COMMIT or
    pool ping; a first sign-in takes a transaction."""
    wechat_session = client.code_to_session(code)
    # the code is spent by now: a connection the database dropped must not fail the sign-in
    account = again_if_dropped(lambda: session.exec(_ACCOUNT_BY_OPENID, params={"openid": wechat_session.openid})
                               .first(), session=session)
    if account is not None:
        return _token_pair(session, citizen_principal(session, account))
    with transaction(session) as writing:
        try:
            with writing.begin_nested():  # two first sign-ins at once: one creates, the other reads
                account = CitizenAccount(openid=wechat_session.openid)
                writing.add(account)
        except IntegrityError:
            account = writing.exec(select(CitizenAccount).where(CitizenAccount.openid == wechat_session.openid)).one()
        return _token_pair(writing, citizen_principal(writing, account))


def staff_login(session: Session, *, username: str, password: str, address: str) -> dict[str, Any]:
    """Password sign-in for staff; the same answer for an unknown user and a wrong password.
    Locked (429) after repeated failures for the account or from the address."""
    try:
        lockout.check_not_locked(session, username=username, address=address)
    except lockout.TooManyAttempts as error:
        lockout.record_attempt(session, username=username, address=address, staff_id=None, succeeded=False,
                               reason="locked")
        error.keep_changes = True
        raise
    staff = session.exec(select(Staff).where(Staff.username == username)).first()
    if not verify_password(staff.password_hash if staff else None, password) or staff is None or not staff.active:
        lockout.record_attempt(session, username=username, address=address,
                               staff_id=staff.id if staff else None, succeeded=False, reason="invalid")
        log.warning("staff sign-in failed", extra={"staff_id": staff.id if staff else None})
        error = InvalidCredentials()
        error.keep_changes = True  # the failure must count even though the request fails
        raise error
    lockout.record_attempt(session, username=username, address=address, staff_id=staff.id, succeeded=True,
                           reason="ok")
    return _token_pair(session, staff_principal(session, staff))


def password_problems(password: str, *, username: str = "") -> list[dict[str, str]]:
    """Why a new staff password is too weak ([] if it is fine)."""
    settings = get_account_settings()
    problems = []
    if len(password) < settings.password_min_length:
        problems.append({"field": "new_password", "reason": "too_short",
                         "message": f"至少 {settings.password_min_length} 个字符"})
    classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                   any(c.isdigit() for c in password), any(not c.isalnum() for c in password)))
    if classes < settings.password_min_classes:
        problems.append({"field": "new_password", "reason": "too_simple",
                         "message": f"需包含小写字母、大写字母、数字、符号中的至少 {settings.password_min_classes} 类"})
    if username and username.lower() in password.lower():
        problems.append({"field": "new_password", "reason": "contains_username", "message": "不能包含用户名"})
    return problems


def change_password(session: Session, *, principal: Principal, claims: tokens.AccessClaims, current_password: str,
                    new_password: str, address: str) -> dict[str, Any]:
    """A staff member changes their password: the current one is checked (and a wrong one counts
    toward the lock-out), every other session of the account ends, a new token pair is returned."""
    if principal.kind != "staff":
        raise StaffOnly()
    staff = session.get(Staff, principal.account_id)
    lockout.check_not_locked(session, username=staff.username, address=address)
    if not verify_password(staff.password_hash, current_password):
        lockout.record_attempt(session, username=staff.username, address=address, staff_id=staff.id,
                               succeeded=False, reason="wrong_current")
        error = CurrentPasswordWrong()
        error.keep_changes = True
        raise error
    problems = password_problems(new_password, username=staff.username)
    if new_password == current_password:
        problems.append({"field": "new_password", "reason": "unchanged", "message": "新密码不能与当前密码相同"})
    if problems:
        raise WeakPassword(detail=problems)
    staff.password_hash = hash_password(new_password)
    session.add(staff)
    tokens.revoke_principal(session, principal=principal.key)
    lockout.record_attempt(session, username=staff.username, address=address, staff_id=staff.id, succeeded=True,
                           reason="password_changed")
    log.info("staff password changed", extra={"staff_id": staff.id})
    return _token_pair(session, staff_principal(session, staff))


def refresh(session: Session, *, refresh_token: str) -> dict[str, Any]:
    """The next pair of the refresh token's family (the token itself is used up)."""
    principal_key, family = tokens.use_refresh_token(session, token=refresh_token)
    return _token_pair(session, load_principal(session, principal_key=principal_key), family=family)


def logout(session: Session, *, claims: tokens.AccessClaims) -> None:
    """End this session: the access token presented and its refresh-token family."""
    tokens.revoke_access_token(session, claims=claims)
    if claims.family:
        tokens.revoke_family(session, family=claims.family)


def citizen_principal(session: Session, account: CitizenAccount) -> Principal:
    subject = session.get(Subject, account.subject_id) if account.subject_id is not None else None
    return Principal(kind="citizen", account_id=account.id, roles=("citizen",), name=subject.name if subject else "",
                     subject_id=account.subject_id, subject_hash=subject.number_hash if subject else None)


def staff_principal(session: Session, staff: Staff) -> Principal:
    point = session.get(ServicePoint, staff.service_point_id)
    return Principal(kind="staff", account_id=staff.id, roles=(staff.role,), name=staff.display_name,
                     service_point_id=staff.service_point_id,
                     jurisdiction_code=point.region_code if point else None)


def load_principal(session: Session, *, principal_key: str) -> Principal:
    """The current principal for a token's subject; a deleted or deactivated account is 401."""
    kind, _, raw_id = principal_key.partition(":")
    if not raw_id.isdigit() or len(raw_id) > 18:
        raise tokens.InvalidToken()
    if kind == "citizen":
        account = session.get(CitizenAccount, int(raw_id))
        if account is not None:
            return citizen_principal(session, account)
    elif kind == "staff":
        staff = session.get(Staff, int(raw_id))
        if staff is not None and staff.active:
            return staff_principal(session, staff)
    raise tokens.InvalidToken()


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***."""
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


_mask_name = mask_name  # the earlier private name


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
            "name_masked": mask_name(principal.name), "service_point": service_point}


def start_real_name(session: Session, *, principal: Principal, name: str, id_number: str,
                    client: WeChatClient) -> dict[str, Any]:
    """Validate the claimed identity and open a WeChat face verification for it.

    Whether the number is already bound to another account is NOT checked here: answering
    that before the face matched would let anyone probe which ID numbers use the service."""
    number = parse_person_number(id_number)
    name = name.strip()
    if not 1 <= len(name) <= 50 or any(not (ch.isalpha() or ch in "·•. ") for ch in name):
        raise InvalidInput("姓名应为 1–50 个字（可含间隔号 ·）", detail=[{"field": "name", "reason": "invalid"}])
    account = session.get(CitizenAccount, principal.account_id)
    if account.subject_id is not None:
        raise AlreadyVerified()
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
    """Ask WeChat whether the face verification passed; bind the subject to this account.
    A verified number binds to one account only (409 for a second one)."""
    attempt = session.exec(select(RealNameAttempt).where(RealNameAttempt.verify_id == verify_id,
                                                         RealNameAttempt.account_id == principal.account_id)).first()
    if attempt is None or attempt.used_at is not None or attempt.expires_at <= utcnow():
        raise VerificationNotFound()
    account = session.get(CitizenAccount, principal.account_id)
    if account.subject_id is not None:
        raise AlreadyVerified()
    number_value = get_protector().decrypt(attempt.number_encrypted)
    verified = client.query_verify_info(openid=account.openid, verify_id=verify_id, out_seq_no=attempt.out_seq_no,
                                        name=attempt.name, id_number=number_value)
    attempt.used_at = utcnow()  # a verify_id answers once, passed or not
    session.add(attempt)
    if not verified:
        error = FaceVerifyFailed()
        error.keep_changes = True
        raise error
    number = parse_person_number(number_value)
    for _ in range(2):  # a second round only when someone created the subject at the same moment
        existing = find_subject(session, number=number)
        if existing is not None:
            holder = session.exec(select(CitizenAccount).where(CitizenAccount.subject_id == existing.id)).first()
            if holder is not None and holder.id != account.id:
                raise IdNumberBound()
        try:
            with session.begin_nested():
                subject = existing or create_subject(session, number=number, name=attempt.name)
                account.subject_id = subject.id
                session.add(account)
            principal_changed(session, principal_key=f"citizen:{account.id}")
            break
        except IntegrityError:
            continue
    else:  # another account bound the same number a moment ago
        raise IdNumberBound()
    log.info("real name bound", extra={"account_id": account.id})
    return describe_principal(session, citizen_principal(session, account))
