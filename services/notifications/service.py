"""Case notices: which events the applicant hears about, what the message says (in Chinese,
naming the matter and the next step, within WeChat's field limits), and sending it.

The case engine asks `notice_of_action` for a transition's notice; the certificate job calls
`enqueue_case_notice(event="certificate_ready")`, the SLA sweep `event="overdue_apology"`.
Each adds a `notify_case_event` outbox job in the caller's transaction (deduplicated), which
the worker runs: WeChat's 43101 (the user refused) is recorded and not retried; WeChat being
busy, slow or over its quota is retried by the outbox with backoff.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from services.accounts.models import CitizenAccount
from services.db import utcnow
from services.errors import OnestopError
from services.notifications.models import Notification
from services.notifications.settings import get_notification_settings
from services.outbox.models import OutboxJob
from services.outbox.service import enqueue
from services.sla.calendar import CHINA

log = logging.getLogger("onestop.notifications")
JOB_KIND = "notify_case_event"

EVENTS = ("accepted", "correction_needed", "decided", "certificate_ready", "overdue_apology", "rectified")

# (status phrase ≤ 5 Chinese characters, next step) per event; `decided` depends on the decision.
_MESSAGES: dict[str, tuple[str, str]] = {
    "accepted": ("已受理", "正在审查，请留意办理进度"),
    "correction_needed": ("需补正", "请按告知一次性补齐材料"),
    "certificate_ready": ("证照已生成", "可在小程序查看下载电子证照"),
    "overdue_apology": ("办理超期", "抱歉超期，我们正加快办理"),
    "rectified": ("整改完成", "欢迎您再次评价我们的服务"),
}
_DECISIONS: dict[str, tuple[str, str]] = {
    "approved": ("准予办理", "审批通过，请留意领取结果"),
    "completed": ("已办结", "请留意领取办理结果"),
    "delivered": ("已送达", "办理结果已送达，请查收"),
    "denied": ("不予许可", "可在小程序查看理由和救济途径"),
    "not_accepted": ("不予受理", "可在小程序查看理由"),
}


# ---------------------------------------------------------------- enqueueing

def enqueue_case_notice(session: Session, *, case_id: str, event: str, key: str | None = None) -> None:
    """Queue a notice about a case, in the caller's transaction. `key` distinguishes repeated
    events of one kind (e.g. the event's seq); the same (case, event, key) is queued once."""
    job = case_notice_job(case_id=case_id, event=event, key=key)
    enqueue(session, kind=job.kind, payload=job.payload, dedupe_key=job.dedupe_key)


def case_notice_job(*, case_id: str, event: str, key: str | None = None) -> OutboxJob:
    """The outbox job of a notice (see enqueue_case_notice), for the caller to write."""
    if event not in EVENTS:
        raise ValueError(f"unknown notice event {event!r}")
    dedupe = f"notify:{case_id}:{event}" + (f":{key}" if key else "")
    return OutboxJob(kind=JOB_KIND, payload={"case_id": case_id, "event": event, "dedupe": dedupe}, dedupe_key=dedupe)


def event_for_action(action: str, to_state: str) -> str | None:
    """The notice (if any) an applicant gets for a transition."""
    if action == "request_correction":
        return "correction_needed"
    if to_state in ("approved", "denied", "not_accepted"):
        return "decided"
    if action == "accept":
        return "accepted"
    return None


def notice_of_action(*, case_id: str, action: str, to_state: str, seq: int) -> OutboxJob | None:
    """The case engine's one call for a transition: the job of the applicant's notice, if any,
    which the engine writes with the transition."""
    event = event_for_action(action, to_state)
    return case_notice_job(case_id=case_id, event=event, key=str(seq)) if event is not None else None


# ---------------------------------------------------------------- composing

_KEY = re.compile(r"([a-z_]+?)([0-9]+)")
_NOT_CHINESE = re.compile(r"[^\u4e00-\u9fff]")
_NOT_PRINTABLE_ASCII = re.compile(r"[^!-~]")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_value(key: str, value: str) -> str:
    """A value WeChat accepts for a template key of its type (`thing1` → thing: 20 characters;
    `phrase3` → 5 Chinese characters; `character_string2` → 32 printable ASCII; `time5`, `date`:
    a time; `number`: digits; `name`: 10 characters, 20 if Latin). Never empty."""
    match = _KEY.fullmatch(key)
    kind = match.group(1) if match else key
    value = " ".join(str(value).split())
    if kind == "phrase":
        value = _NOT_CHINESE.sub("", value)[:5] or "有更新"
    elif kind == "character_string":
        value = _NOT_PRINTABLE_ASCII.sub("", value)[:32] or "-"
    elif kind == "number":
        value = re.sub(r"[^0-9]", "", value)[:32] or "0"
    elif kind == "name":
        value = _cut(value, 20 if value.isascii() else 10) or "申请人"
    elif kind in ("time", "date"):
        value = value[:64]
    else:  # thing and anything unknown: WeChat's most common limit
        value = _cut(value, 20) or "无"
    return value


def compose(*, event: str, matter_name: str, case_number: str, case_state: str, due_date: date | None,
            at: datetime) -> dict[str, str]:
    """The template values (template keys from the settings) for one notice."""
    if event == "decided":
        status, next_step = _DECISIONS.get(case_state, ("已办理", "可在小程序查看办理结果"))
    else:
        status, next_step = _MESSAGES[event]
        if event == "accepted" and due_date is not None:
            next_step = f"承诺{due_date.month}月{due_date.day}日前办结，请留意进度"
    values = {"matter": matter_name, "number": case_number, "status": status, "next_step": next_step,
              "time": at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")}
    fields = get_notification_settings().fields
    return {fields[name]: fit_value(fields[name], value) for name, value in values.items() if name in fields}


# ---------------------------------------------------------------- sending

def recipient(session: Session, *, subject_id: int, created_by_principal: str) -> CitizenAccount | None:
    """The applicant's own mini-program account (the one bound to the case's subject), else the
    citizen who filed it (e.g. a legal representative for a company); none for a person a
    helper applied for who has no account."""
    account = session.exec(select(CitizenAccount).where(CitizenAccount.subject_id == subject_id)).first()
    if account is not None:
        return account
    kind, _, raw_id = created_by_principal.partition(":")
    if kind == "citizen" and raw_id.isdigit():
        return session.get(CitizenAccount, int(raw_id))
    return None


def _record(session: Session, *, dedupe: str, case_id: str, event: str, status: str, account_id: int | None = None,
            template_id: str = "", msgid: str | None = None, errcode: int | None = None,
            data: dict[str, Any] | None = None) -> Notification:
    notification = Notification(dedupe_key=dedupe, case_id=case_id, event=event, account_id=account_id,
                                template_id=template_id, status=status, msgid=msgid, errcode=errcode,
                                data=data or {})
    session.add(notification)
    session.flush()
    return notification


def send_case_notice(session: Session, *, case_id: str, event: str, dedupe: str, client=None) -> Notification | None:
    """Compose and send one notice, recording the outcome. Idempotent per `dedupe`. Raises
    WeChatUnavailable / WeChatRateLimited for the outbox to retry; every other outcome is final."""
    from services.cases.models import Case
    from services.wechat.client import (SubscribeMessageInvalid, SubscribeRefused, WeChatError, WeChatRateLimited,
                                        WeChatUnavailable, get_wechat_client)

    done = session.exec(select(Notification).where(Notification.dedupe_key == dedupe)).first()
    if done is not None:
        return done
    case = session.get(Case, case_id)
    if case is None:
        return None
    settings = get_notification_settings()
    account = recipient(session, subject_id=case.subject_id, created_by_principal=case.created_by_principal)
    if account is None:
        return _record(session, dedupe=dedupe, case_id=case_id, event=event, status="no_recipient")
    template_id = settings.template_for(event)
    if not settings.enabled or not template_id:
        return _record(session, dedupe=dedupe, case_id=case_id, event=event, status="skipped", account_id=account.id)
    data = compose(event=event, matter_name=_matter_name(session, case), case_number=case.number,
                   case_state=case.state, due_date=case.due_date, at=utcnow())
    client = client or get_wechat_client()
    outcome: dict[str, Any] = {"account_id": account.id, "template_id": template_id, "data": data}
    try:
        msgid = client.send_subscribe_message(openid=account.openid, template_id=template_id, data=data,
                                              page=settings.page.format(case_id=case.id),
                                              miniprogram_state=settings.miniprogram_state, lang="zh_CN")
    except SubscribeRefused:
        log.info("notice refused by the user (43101)", extra={"case_id": case_id, "event": event})
        return _record(session, dedupe=dedupe, case_id=case_id, event=event, status="refused", errcode=43101, **outcome)
    except SubscribeMessageInvalid as error:
        log.error("notice refused by WeChat as invalid", extra={"case_id": case_id, "event": event,
                                                               "detail": error.detail})
        return _record(session, dedupe=dedupe, case_id=case_id, event=event, status="invalid", errcode=47003, **outcome)
    except (WeChatUnavailable, WeChatRateLimited):
        raise  # the outbox retries with backoff
    except WeChatError as error:
        errcode = (error.detail or {}).get("errcode") if isinstance(error.detail, dict) else None
        log.error("notice failed", extra={"case_id": case_id, "event": event, "errcode": errcode})
        return _record(session, dedupe=dedupe, case_id=case_id, event=event, status="failed", errcode=errcode, **outcome)
    return _record(session, dedupe=dedupe, case_id=case_id, event=event, status="sent", msgid=msgid, **outcome)


def _matter_name(session: Session, case) -> str:
    from services.matters import service as matters

    try:
        versioned = getattr(matters, "matter_version", None)
        matter = versioned(session, case.matter_code, case.matter_version) if versioned else matters.get_matter(case.matter_code)
        return matter.definition.name
    except (OnestopError, LookupError):  # a retired matter still gets its notice, named by its code
        return case.matter_code


def notices_for_case(session: Session, *, case_id: str) -> list[Notification]:
    return list(session.exec(select(Notification).where(Notification.case_id == case_id).order_by(Notification.id)))
