"""The regional figures' rollups equal a straightforward recomputation from the cases: after a
build, after an incremental refresh of changed cases, after a reconciliation; for every level of
a subtree, a date window and a matter; the incremental rollups are row for row what a build
makes; the open cases' due soon / overdue follow the day they are asked."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import String, literal, select, union_all, update
from sqlmodel import Session

from services.accounts.models import CitizenAccount
from services.accounts.principal import Principal
from services.cases.models import Case
from services.db import utcnow
from services.evaluations.models import Evaluation
from services.figures import repository, service
from services.figures.models import PointFigures, PointOpenFigures, RefreshState, RegionFigures, RegionOpenFigures
from services.points.models import ServicePoint, Staff
from services.regions.codes import subtree_prefix
from services.sla.calendar import get_calendar, today_in_china
from services.sla.settings import get_sla_settings
from tests.services.accounts.helpers import insert_subject

CHINA = timezone(timedelta(hours=8))
PROVINCE = Principal(kind="staff", account_id=0, roles=("admin",), jurisdiction_code="360000000000")
VILLAGES = ("361130102200", "361130102201", "361130102001", "361130103001", "361130001001", "360102004001")
TOWN_ITSELF = "361130103000"  # a case whose applicant region is a town (no village level)
MATTERS = ("residence-certificate", "social-security-card")
# (state, sla_state, accepted, closed) — "first_review" stands for a matter's own review step
STATES = (("submitted", "not_started", False, False), ("correcting", "not_started", False, False),
          ("accepted", "running", True, False), ("in_review", "running", True, False),
          ("first_review", "running", True, False), ("suspended", "paused", True, False),
          ("approved", "stopped", True, True), ("completed", "stopped", True, True),
          ("delivered", "stopped", True, True), ("denied", "stopped", True, True),
          ("not_accepted", "stopped", False, True), ("withdrawn", "stopped", False, True),
          ("withdrawn", "stopped", True, True))
WINDOWS = ({}, {"date_from": date(2026, 1, 1)}, {"date_to": date(2026, 6, 30)},
           {"date_from": date(2025, 12, 1), "date_to": date(2026, 3, 31), "matter_code": "residence-certificate"},
           {"matter_code": "social-security-card"})
REGIONS = ("360000000000", "361100000000", "361130000000", "361130102000", "361130103000", "361130102200",
           "360102000000")


@pytest.fixture
def world(session: Session, seeded):
    point = session.execute(select(ServicePoint).where(ServicePoint.region_code == "361130102000")).scalar_one()
    clerks = list(session.execute(select(Staff).where(Staff.service_point_id == point.id)).scalars())
    subject = insert_subject(session, name="李四")
    account = CitizenAccount(openid=f"o{uuid.uuid4().hex[:27]}", subject_id=subject.id)
    session.add(account)
    session.flush()
    return {"point": point, "clerks": clerks, "subject": subject, "account": account, "rng": random.Random(4)}


def _moment(rng: random.Random, day: date) -> datetime:
    # minutes around midnight China time too: 00:10 China is the previous day in UTC
    minute = rng.choice([10, 23 * 60 + 50, rng.randint(0, 24 * 60 - 1)])
    return datetime.combine(day, time(0), tzinfo=CHINA).astimezone(timezone.utc) + timedelta(minutes=minute)


def _set_state(case: Case, rng: random.Random, today: date) -> None:
    state, sla_state, accepted, closed = rng.choice(STATES)
    case.state, case.sla_state = state, sla_state
    case.accepted_at = case.submitted_at + timedelta(hours=rng.uniform(0.1, 40)) if accepted else None
    start = case.accepted_at or case.submitted_at
    case.closed_at = start + timedelta(hours=rng.uniform(0, 24 * 12)) if closed else None
    case.due_date = (today + timedelta(days=rng.choice([-5, -1, 0, 1, 2, 9]))) if accepted else None
    case.updated_at = utcnow()


def _new_case(session: Session, world, *, today: date) -> Case:
    rng = world["rng"]
    day = today - timedelta(days=rng.randint(0, 420))
    case = Case(id=str(uuid.uuid4()), number=f"F{uuid.uuid4().hex[:20]}", matter_code=rng.choice(MATTERS),
                matter_version=1, state="submitted", version=1, subject_id=world["subject"].id,
                subject_hash=uuid.uuid4().hex, applicant_name="李四",
                region_code=rng.choice(VILLAGES + (TOWN_ITSELF,)), receiving_channel="online",
                handling_point_id=world["point"].id, assignee_id=rng.choice([None, *[c.id for c in world["clerks"]]]),
                routing_reason="测试", form={}, created_by="self", created_by_principal="system:test",
                submitted_at=_moment(rng, day), updated_at=utcnow())
    _set_state(case, rng, today)
    session.add(case)
    session.flush()
    return case


def _rate(session: Session, world, case: Case, level: int, round_: int = 1) -> None:
    session.add(Evaluation(case_id=case.id, round=round_, level=level, account_id=world["account"].id,
                           service_point_id=case.handling_point_id, clerk_id=case.assignee_id,
                           region_code=case.region_code, matter_code=case.matter_code, created_at=utcnow()))
    session.flush()


# ---------------------------------------------------------------- the oracle: plain Python over the cases

def _oracle(session: Session, *, region_code: str, date_from=None, date_to=None, matter_code=None) -> dict:
    calendar = get_calendar(session)
    today = today_in_china()
    soon = calendar.add_working_days(today, get_sla_settings().due_soon_days)
    latest: dict[str, tuple[int, int]] = {}
    for case_id, round_, level in session.execute(select(Evaluation.case_id, Evaluation.round, Evaluation.level)):
        if case_id not in latest or round_ > latest[case_id][0]:
            latest[case_id] = (round_, level)
    out: dict[str, int] = defaultdict(int)
    prefix = subtree_prefix(region_code)
    for case in session.execute(select(Case).where(Case.region_code.startswith(prefix))).scalars():
        day = case.submitted_at.astimezone(CHINA).date()
        if (date_from and day < date_from) or (date_to and day > date_to) or \
                (matter_code and case.matter_code != matter_code):
            continue
        out["received"] += 1
        out["accepted"] += case.accepted_at is not None
        if case.state in ("approved", "completed", "delivered"):
            out["completed"] += 1
            if case.accepted_at and case.closed_at:
                out["completion_cases"] += 1
                out["working_days"] += calendar.working_days_between(case.accepted_at.astimezone(CHINA).date(),
                                                                     case.closed_at.astimezone(CHINA).date())
        elif case.state in ("denied", "not_accepted", "withdrawn"):
            out[case.state] += 1
        else:
            out["open"] += 1
            out[f"open:{case.state}"] += 1
            if case.sla_state == "running" and case.due_date is not None:
                out["overdue"] += case.due_date < today
                out["due_soon"] += today <= case.due_date <= soon
            out["paused"] += case.sla_state == "paused"
        if case.id in latest:
            level = latest[case.id][1]
            out["ratings"] += 1
            out["score"] += level
            out["satisfied"] += level >= 4
    return dict(out)


def _served(figures: dict) -> dict:
    out = {name: figures[name] for name in ("received", "accepted", "completed", "denied", "not_accepted",
                                            "withdrawn", "open", "overdue", "due_soon", "paused", "completion_cases")}
    out.update({f"open:{state}": n for state, n in figures["open_by_state"].items()})
    ratings = figures["satisfaction"]["ratings"]
    out.update(ratings=ratings, score=sum(int(level) * n for level, n in figures["satisfaction"]["by_level"].items()),
               satisfied=figures["satisfaction"]["by_level"]["5"] + figures["satisfaction"]["by_level"]["4"])
    if figures["avg_working_days_to_completion"] is not None:
        out["avg"] = figures["avg_working_days_to_completion"]
    return {key: value for key, value in out.items() if value}


def _expected(oracle: dict) -> dict:
    out = {key: value for key, value in oracle.items() if key != "working_days"}
    if oracle.get("completion_cases"):
        out["avg"] = round(oracle["working_days"] / oracle["completion_cases"], 2)
    return {key: value for key, value in out.items() if value}


def _assert_matches_oracle(session: Session) -> None:
    for region in REGIONS:
        for window in WINDOWS:
            served = service.region_figures(session, principal=PROVINCE, region_code=region, **window)
            assert _served(served["figures"]) == _expected(_oracle(session, region_code=region, **window)), \
                (region, window)
            for child in served["children"]:
                if child["figures"]["received"]:
                    assert _served(child["figures"]) == _expected(
                        _oracle(session, region_code=child["code"], **window)), (child["code"], window)


def _snapshot(session: Session) -> dict:
    tables = {}
    for model in (RegionFigures, PointFigures, RegionOpenFigures, PointOpenFigures):
        table = model.__table__
        rows = session.execute(select(table)).all()
        tables[table.name] = sorted(tuple(str(value) for value in row) for row in rows)
    return tables


# ---------------------------------------------------------------- the tests

def test_build_refresh_and_reconcile_equal_a_recomputation_from_the_cases(session, world):
    today = today_in_china()
    cases = [_new_case(session, world, today=today) for _ in range(60)]
    rng = world["rng"]
    for case in rng.sample(cases, 25):
        if case.state in ("completed", "delivered", "denied", "not_accepted"):
            _rate(session, world, case, rng.randint(1, 5))
    assert service.rebuild(session)["mode"] == "rebuild"
    _assert_matches_oracle(session)

    # changes of every kind: transitions, a rating and a second round, a transfer, a new case
    for case in rng.sample(cases, 30):
        _set_state(case, rng, today)
        case.assignee_id = rng.choice([None, *[c.id for c in world["clerks"]]])
        session.add(case)
    rated = next(case for case in cases if case.state in ("completed", "delivered")
                 and not session.execute(select(Evaluation).where(Evaluation.case_id == case.id)).first())
    _rate(session, world, rated, 2)
    _rate(session, world, rated, 5, round_=2)
    moved = cases[0]
    moved.region_code, moved.matter_code, moved.updated_at = "360102004001", "social-security-card", utcnow()
    session.add(moved)
    cases.append(_new_case(session, world, today=today))
    session.flush()
    report = service.refresh(session)
    assert report["mode"] == "refresh" and report["changed"] >= 30
    _assert_matches_oracle(session)

    incremental = _snapshot(session)
    service.rebuild(session)
    assert _snapshot(session) == incremental  # row for row what a build makes (emptied rows deleted)

    # a change that leaves updated_at as it was (a bulk UPDATE of an old case) is missed by the
    # refresh, healed by the reconciliation
    stale = next(case for case in cases if case.state in ("submitted", "correcting"))
    session.execute(update(Case).where(Case.id == stale.id).values(
        state="withdrawn", sla_state="stopped", closed_at=utcnow(), updated_at=utcnow() - timedelta(days=2)))
    assert service.refresh(session)["changed"] == 0
    before = service.region_figures(session, principal=PROVINCE, region_code=stale.region_code)["figures"]
    report = service.reconcile(session)
    assert report["mode"] == "reconcile" and report["changed"] == 1
    after = service.region_figures(session, principal=PROVINCE, region_code=stale.region_code)["figures"]
    assert after["withdrawn"] == before["withdrawn"] + 1 and after["open"] == before["open"] - 1
    _assert_matches_oracle(session)
    assert service.reconcile(session)["changed"] == 0  # nothing left to heal


def test_a_subtree_adds_up_village_town_county(session, world):
    today = today_in_china()
    for _ in range(30):
        _new_case(session, world, today=today)
    service.rebuild(session)
    county = service.region_figures(session, principal=PROVINCE, region_code="361130000000")
    additive = ("received", "accepted", "completed", "denied", "not_accepted", "withdrawn", "open", "overdue",
                "due_soon", "paused", "completion_cases")
    for name in additive:
        assert county["figures"][name] == sum(child["figures"][name] for child in county["children"]), name
    town = service.region_figures(session, principal=PROVINCE, region_code="361130102000")
    as_child = next(child for child in county["children"] if child["code"] == "361130102000")
    assert as_child["figures"] == town["figures"]
    assert {child["code"] for child in town["children"]} >= {"361130102200", "361130102201", "361130102001"}
    assert all(child["level"] == "village" for child in town["children"])
    village = service.region_figures(session, principal=PROVINCE, region_code="361130102200")
    assert village["children"] == []
    as_grandchild = next(child for child in town["children"] if child["code"] == "361130102200")
    assert as_grandchild["figures"] == village["figures"]
    # a case at town level counts in the town, in none of its villages
    jiangwan = service.region_figures(session, principal=PROVINCE, region_code=TOWN_ITSELF)
    direct = _oracle(session, region_code=TOWN_ITSELF)["received"] - sum(
        child["figures"]["received"] for child in jiangwan["children"])
    assert direct == sum(1 for case in session.execute(select(Case.region_code)).scalars() if case == TOWN_ITSELF)


def test_the_chain_of_a_code_follows_its_digits():
    assert repository.region_chain("361130102200") == [
        ("360000000000", "province", None), ("361100000000", "city", "360000000000"),
        ("361130000000", "county", "361100000000"), ("361130102000", "town", "361130000000"),
        ("361130102200", "village", "361130102000")]
    # 东莞市: towns directly under the city
    assert repository.region_chain("441900003001") == [
        ("440000000000", "province", None), ("441900000000", "city", "440000000000"),
        ("441900003000", "town", "441900000000"), ("441900003001", "village", "441900003000")]
    assert repository.region_chain("361130000000")[-1] == ("361130000000", "county", "361100000000")


def test_the_sql_chain_is_the_python_chain(session):
    codes = ["361130102200", "441900003001", "361130000000", "360000000000", "429004001000", "361130103000"]
    rows = set()
    for code in codes:
        parts = []
        value = literal(code, String(12))
        for expression, level, parent, condition in repository._chain_sql(value):
            part = select(expression.label("code"), literal(level).label("level"), parent.label("parent"))
            parts.append(part.where(condition) if condition is not None else part)
        rows |= {(code, *row) for row in session.execute(union_all(*parts)).all()}
    expected = {(code, *link) for code in codes for link in repository.region_chain(code)}
    assert rows == expected


def test_due_soon_and_overdue_follow_the_day_they_are_asked(session, world, monkeypatch):
    today = today_in_china()
    case = _new_case(session, world, today=today)
    case.state, case.sla_state, case.accepted_at, case.closed_at = "accepted", "running", utcnow(), None
    case.region_code, case.due_date = "360102004001", today + timedelta(days=1)
    session.add(case)
    session.flush()
    service.rebuild(session)
    figures = service.region_figures(session, principal=PROVINCE, region_code="360102004001")["figures"]
    soon = get_calendar(session).add_working_days(today, get_sla_settings().due_soon_days)
    assert figures["overdue"] == 0 and figures["due_soon"] == (1 if case.due_date <= soon else 0)
    later = today + timedelta(days=3)  # no refresh: the due date is kept, the day moves on
    monkeypatch.setattr(service, "today_in_china", lambda: later)
    figures = service.region_figures(session, principal=PROVINCE, region_code="360102004001")["figures"]
    assert figures["overdue"] == 1 and figures["due_soon"] == 0 and figures["open_by_state"] == {"accepted": 1}


def test_before_the_first_build_the_figures_say_they_are_not_ready(session, world):
    session.execute(update(RefreshState).where(RefreshState.id == 1).values(watermark=None, refreshed_at=None))
    body = service.region_figures(session, principal=PROVINCE, region_code="361130000000")
    assert body["ready"] is False and body["as_of"] is None
    report = service.refresh(session)  # the first refresh builds everything
    assert report["mode"] == "rebuild"
    body = service.region_figures(session, principal=PROVINCE, region_code="361130000000")
    assert body["ready"] is True and body["as_of"] is not None


def test_the_worker_refreshes_every_interval_and_reconciles_daily(session, world):
    from services.figures import tasks
    from services.outbox.models import OutboxJob

    now = datetime(2030, 3, 1, 10, 0, 30, tzinfo=timezone.utc)
    at = tasks.schedule_refresh(session, now=now)
    assert at == datetime(2030, 3, 1, 10, 0, tzinfo=timezone.utc)
    tasks.schedule_refresh(session, now=now)  # a second worker starting: still one job for the slot
    nightly = tasks.schedule_reconcile(session, now=now)  # 18:00:30 in China: the next 03:00 is tomorrow's
    assert nightly == datetime(2030, 3, 1, 19, 0, tzinfo=timezone.utc)
    jobs = session.execute(select(OutboxJob.kind, OutboxJob.run_after).where(
        OutboxJob.dedupe_key.in_([f"figures_refresh:{at.isoformat()}", f"figures_reconcile:{nightly.isoformat()}"]))).all()
    assert sorted(kind for kind, _ in jobs) == ["figures_reconcile", "figures_refresh"]

    _new_case(session, world, today=today_in_china())
    tasks.figures_refresh_job(session, {})
    state = session.get(RefreshState, 1)
    assert state.watermark is not None and state.last_run["mode"] in ("refresh", "rebuild")
    assert session.execute(select(OutboxJob).where(OutboxJob.kind == "figures_refresh",
                                                   OutboxJob.run_after > utcnow())).first() is not None
