"""Case notices through WeChat subscribe messages: composed in Chinese within WeChat's limits,
sent through the outbox, 43101 recorded and not retried, outages retried with backoff, the
access token cached and refreshed."""

from __future__ import annotations

import os
import re
import uuid
from datetime import date, datetime, timezone

import pytest
from sqlmodel import Session, select

from services.accounts.models import CitizenAccount
from services.db import session_scope, utcnow, write_at_once
from services.notifications.models import Notification
from services.notifications.service import (compose, enqueue_case_notice, event_for_action, fit_value,
                                            notice_of_action, send_case_notice)
from services.outbox.models import OutboxJob
from services.outbox.service import adding_jobs
from services.points.models import ServicePoint
from tests.services.accounts.helpers import insert_case, insert_subject

REDIS_URL = os.environ.get("ONESTOP_TEST_REDIS_URL")


@pytest.mark.parametrize("key, value, expected", [
    ("thing1", "农村宅基地和建房（规划许可）审批及乡村建设规划许可证核发", "农村宅基地和建房（规划许可）审批及乡村…"),
    ("thing4", "正常长度", "正常长度"),
    ("phrase3", "已受理 (ok)", "已受理"),
    ("phrase3", "证照已生成啦啦", "证照已生成"),
    ("phrase3", "ok", "有更新"),
    ("character_string2", "36113020261126000001 办件", "36113020261126000001"),
    ("character_string2", "编号", "-"),
    ("number9", "第12件", "12"),
    ("name1", "欧阳娜娜娜娜娜娜娜娜娜", "欧阳娜娜娜娜娜娜娜…"),
])
def test_values_fit_wechat_s_rules(key, value, expected):
    fitted = fit_value(key, value)
    assert fitted == expected and len(fitted) <= 20
    from services.wechat.fake_server import _value_ok

    assert _value_ok(key, fitted)


@pytest.mark.parametrize("event, state", [("accepted", "accepted"), ("correction_needed", "correcting"),
                                          ("decided", "approved"), ("decided", "denied"), ("decided", "not_accepted"),
                                          ("certificate_ready", "approved"), ("overdue_apology", "in_review"),
                                          ("rectified", "completed")])
def test_every_message_names_the_matter_and_the_next_step_within_limits(event, state):
    from services.wechat.fake_server import _value_ok

    data = compose(event=event, matter_name="居住证明开具", case_number="36113020261126000001", case_state=state,
                   due_date=date(2026, 12, 3), at=datetime(2026, 11, 26, 2, 30, tzinfo=timezone.utc))
    assert data["thing1"] == "居住证明开具" and data["character_string2"] == "36113020261126000001"
    assert data["time5"] == "2026-11-26 10:30"  # Beijing time
    assert re.fullmatch(r"[\u4e00-\u9fff]{1,5}", data["phrase3"])
    assert re.search(r"[\u4e00-\u9fff]", data["thing4"])  # a next step, in Chinese
    assert all(_value_ok(key, value) for key, value in data.items())
    if event == "accepted":
        assert "12月3日" in data["thing4"]


def test_transitions_map_to_the_events_applicants_care_about():
    assert event_for_action("accept", "accepted") == "accepted"
    assert event_for_action("accept", "approved") == "decided"  # a 即办件 decided at acceptance
    assert event_for_action("request_correction", "correcting") == "correction_needed"
    assert event_for_action("refuse", "not_accepted") == "decided"
    assert event_for_action("approve", "approved") == "decided"
    assert event_for_action("deny", "denied") == "decided"
    assert event_for_action("claim", "submitted") is None
    assert event_for_action("review_pass", "in_review") is None


def _case_with_account(session, *, name: str, with_account: bool = True, created_by_principal: str = "staff:1"):
    subject = insert_subject(session, name="张三")
    point = session.exec(select(ServicePoint).where(ServicePoint.level == "village")).first()
    account = None
    if with_account:
        from services.wechat.fake_server import demo_openid

        account = CitizenAccount(openid=demo_openid("demo-secret", name), subject_id=subject.id)
        session.add(account)
        session.flush()
    case = insert_case(session, subject_id=subject.id, handling_point_id=point.id, state="accepted",
                       created_by_principal=created_by_principal, closed_days_ago=None)
    return case, account


def test_a_notice_is_sent_once_and_recorded(session, seeded, fake_wechat):
    name = f"n{uuid.uuid4().hex[:10]}"
    case, account = _case_with_account(session, name=name)
    before = len(fake_wechat.sent_messages)
    sent = send_case_notice(session, case_id=case.id, event="accepted", dedupe=f"notify:{case.id}:accepted:2")
    assert sent.status == "sent" and sent.msgid and sent.account_id == account.id
    message = fake_wechat.sent_messages[-1]
    assert len(fake_wechat.sent_messages) == before + 1
    assert message["touser"] == account.openid and message["page"] == f"pages/cases/detail?id={case.id}"
    assert message["data"]["phrase3"]["value"] == "已受理" and message["lang"] == "zh_CN"
    again = send_case_notice(session, case_id=case.id, event="accepted", dedupe=f"notify:{case.id}:accepted:2")
    assert again.id == sent.id and len(fake_wechat.sent_messages) == before + 1


def test_a_refusal_43101_is_recorded_and_not_retried(session, seeded, fake_wechat):
    case, _ = _case_with_account(session, name="refuser")
    before = len(fake_wechat.sent_messages)
    refused = send_case_notice(session, case_id=case.id, event="decided", dedupe=f"notify:{case.id}:decided:3")
    assert refused.status == "refused" and refused.errcode == 43101
    assert len(fake_wechat.sent_messages) == before


def test_someone_without_an_account_gets_no_message(session, seeded):
    case, _ = _case_with_account(session, name="nobody", with_account=False, created_by_principal="staff:9")
    record = send_case_notice(session, case_id=case.id, event="accepted", dedupe=f"notify:{case.id}:accepted:1")
    assert record.status == "no_recipient"


def test_an_expired_access_token_is_refreshed(session, seeded, fake_wechat):
    case, _ = _case_with_account(session, name=f"n{uuid.uuid4().hex[:10]}")
    send_case_notice(session, case_id=case.id, event="accepted", dedupe=f"notify:{case.id}:a")
    tokens_before = fake_wechat.token_requests
    fake_wechat.expire_tokens()  # the cached token now answers 42001
    record = send_case_notice(session, case_id=case.id, event="correction_needed", dedupe=f"notify:{case.id}:b")
    assert record.status == "sent" and fake_wechat.token_requests > tokens_before
    tokens_after = fake_wechat.token_requests
    send_case_notice(session, case_id=case.id, event="decided", dedupe=f"notify:{case.id}:c")
    assert fake_wechat.token_requests == tokens_after  # cached again


def test_enqueueing_is_deduplicated(session, seeded):
    case, _ = _case_with_account(session, name=f"n{uuid.uuid4().hex[:10]}")
    for _ in range(3):
        job = notice_of_action(case_id=case.id, action="accept", to_state="accepted", seq=2)
        write_at_once(session, adding_jobs(session, [job]))
    enqueue_case_notice(session, case_id=case.id, event="accepted", key="2")
    assert notice_of_action(case_id=case.id, action="claim", to_state="submitted", seq=3) is None
    session.flush()
    jobs = session.exec(select(OutboxJob).where(OutboxJob.kind == "notify_case_event",
                                                OutboxJob.payload["case_id"].as_string() == case.id)).all()
    assert [job.payload["event"] for job in jobs] == ["accepted"]
    with pytest.raises(ValueError):
        enqueue_case_notice(session, case_id=case.id, event="party")


def test_a_wechat_outage_is_retried_by_the_outbox_with_backoff(engine, seeded, fake_wechat, monkeypatch):
    from services.outbox.registry import register_all_handlers
    from services.outbox.service import run_until_idle
    from services.wechat import client as wechat_module

    register_all_handlers()
    name = f"n{uuid.uuid4().hex[:10]}"
    with session_scope() as session:
        case, _ = _case_with_account(session, name=name)
        enqueue_case_notice(session, case_id=case.id, event="certificate_ready", key="cert-1")
        case_id = case.id
    broken = wechat_module.WeChatClient(base_url="http://127.0.0.1:1", appid="wxdemo0000000000", secret="demo-secret",
                                        timeout=0.3)
    monkeypatch.setattr(wechat_module, "get_wechat_client", lambda: broken)
    run_until_idle(engine)
    with Session(engine) as session:
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"notify:{case_id}:certificate_ready:cert-1")).one()
        assert job.state == "pending" and job.attempts == 1 and job.run_after > utcnow()
        assert "WeChatUnavailable" in job.last_error
        assert session.exec(select(Notification).where(Notification.case_id == case_id)).first() is None
        job.run_after = utcnow()
        session.add(job)
        session.commit()
    monkeypatch.undo()
    run_until_idle(engine)
    with Session(engine) as session:
        job = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"notify:{case_id}:certificate_ready:cert-1")).one()
        assert job.state == "done"
        notice = session.exec(select(Notification).where(Notification.case_id == case_id)).one()
        assert notice.status == "sent" and notice.data["phrase3"] == "证照已生成"


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (ONESTOP_TEST_REDIS_URL)")
def test_the_access_token_is_shared_through_redis(fake_wechat):
    import redis

    from services.wechat.client import RedisTokenCache, WeChatClient, get_wechat_client

    from services.config import get_settings

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    cache = RedisTokenCache(client)
    settings = get_settings()
    first = WeChatClient(base_url=settings.resolved_wechat_base_url, appid=settings.wechat_appid,
                         secret=settings.wechat_secret, token_cache=cache)
    second = WeChatClient(base_url=settings.resolved_wechat_base_url, appid=settings.wechat_appid,
                          secret=settings.wechat_secret, token_cache=RedisTokenCache(client))
    client.delete(f"onestop:wechat:access_token:{settings.wechat_appid}")
    token = first.access_token()
    requests = fake_wechat.token_requests
    assert second.access_token() == token and fake_wechat.token_requests == requests
    assert 0 < client.pttl(f"onestop:wechat:access_token:{settings.wechat_appid}") <= 7200 * 1000
    get_wechat_client.cache_clear()
    try:
        assert isinstance(get_wechat_client()._cache, RedisTokenCache)
    finally:
        get_wechat_client.cache_clear()
    broken = RedisTokenCache(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2,
                                                  socket_connect_timeout=0.2))
    assert broken.get("x") is None
    broken.set("x", "y", 10)  # an outage is an empty cache, not an error
