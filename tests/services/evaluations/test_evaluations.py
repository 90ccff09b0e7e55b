"""好差评: who may rate what and when, rectification for the right supervisor, one re-rating,
and the figures per point, clerk and region."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from services.accounts.models import CitizenAccount
from services.accounts.service import citizen_principal, staff_principal
from services.errors import Forbidden
from services.evaluations import figures, service
from services.evaluations.models import Rectification
from services.evaluations.settings import get_evaluation_settings
from services.outbox.models import OutboxJob
from services.points.models import ServicePoint, Staff
from services.sla.calendar import get_calendar, today_in_china
from tests.services.accounts.helpers import insert_case, insert_subject

STATION_REGION = "361130102200"  # 秋口村: its station has no supervisor; 秋口镇's answers for it


def _staff(session, username: str):
    staff = session.exec(select(Staff).where(Staff.username == username)).one()
    return staff, staff_principal(session, staff)


def _citizen(session):
    subject = insert_subject(session, name="张三")
    account = CitizenAccount(openid=f"o{uuid.uuid4().hex[:27]}", subject_id=subject.id)
    session.add(account)
    session.flush()
    return subject, citizen_principal(session, account)


@pytest.fixture
def station(session, seeded):
    point = session.exec(select(ServicePoint).where(ServicePoint.region_code == STATION_REGION)).one()
    clerk, _ = _staff(session, f"clerk-{STATION_REGION}")
    return point, clerk


def _finished_case(session, station, subject, *, state="completed", closed_days_ago=0.0):
    point, clerk = station
    return insert_case(session, subject_id=subject.id, handling_point_id=point.id, assignee_id=clerk.id, state=state,
                       closed_days_ago=closed_days_ago, region_code=STATION_REGION)


def test_the_applicant_rates_a_finished_case_once(session, station):
    subject, citizen = _citizen(session)
    case = _finished_case(session, station, subject)
    evaluation = service.evaluate(session, principal=citizen, case_id=case.id, level=5, comment=" 很好 ")
    view = service.evaluation_view(evaluation)
    assert view["label"] == "非常满意" and view["round"] == 1 and view["comment"] == "很好"
    assert evaluation.clerk_id == station[1].id and evaluation.service_point_id == station[0].id
    with pytest.raises(service.AlreadyEvaluated):
        service.evaluate(session, principal=citizen, case_id=case.id, level=4, comment=None)
    assert session.exec(select(Rectification).where(Rectification.case_id == case.id)).first() is None


@pytest.mark.parametrize("state", ["submitted", "accepted", "in_review", "correcting", "suspended", "approved",
                                   "withdrawn"])
def test_an_unfinished_case_cannot_be_rated(session, station, state):
    subject, citizen = _citizen(session)
    case = _finished_case(session, station, subject, state=state, closed_days_ago=None)
    with pytest.raises(service.CaseNotCompleted):
        service.evaluate(session, principal=citizen, case_id=case.id, level=5, comment=None)


def test_only_the_applicant_rates_and_others_do_not_even_see_the_case(session, station):
    subject, citizen = _citizen(session)
    case = _finished_case(session, station, subject)
    _, stranger = _citizen(session)
    with pytest.raises(service.CaseNotFound):
        service.evaluate(session, principal=stranger, case_id=case.id, level=1, comment=None)
    _, clerk = _staff(session, f"clerk-{STATION_REGION}")
    with pytest.raises(service.ApplicantOnly):
        service.evaluate(session, principal=clerk, case_id=case.id, level=5, comment=None)
    _, other_clerk = _staff(session, "clerk-361130103")
    with pytest.raises(service.CaseNotFound):
        service.evaluate(session, principal=other_clerk, case_id=case.id, level=5, comment=None)


def test_after_the_window_an_unrated_case_counts_as_satisfied(session, station, monkeypatch):
    subject, citizen = _citizen(session)
    case = _finished_case(session, station, subject, closed_days_ago=30)
    with pytest.raises(service.EvaluationWindowClosed):
        service.evaluate(session, principal=citizen, case_id=case.id, level=1, comment=None)
    state = service.case_evaluation_state(session, principal=citizen, case_id=case.id)
    assert state["defaulted"] is True and state["effective_level"] == 4 and state["can_evaluate"] is False
    monkeypatch.setattr(get_evaluation_settings(), "default_satisfied", False)
    assert service.evaluate(session, principal=citizen, case_id=case.id, level=2, comment=None).round == 1


def test_a_bad_rating_opens_a_rectification_for_the_supervisor_above_a_station(session, station):
    subject, citizen = _citizen(session)
    case = _finished_case(session, station, subject, state="denied")
    evaluation = service.evaluate(session, principal=citizen, case_id=case.id, level=2, comment="等了很久")
    rectification = session.exec(select(Rectification).where(Rectification.evaluation_id == evaluation.id)).one()
    town_supervisor, supervisor = _staff(session, "supervisor-361130102")
    assert rectification.supervisor_id == town_supervisor.id and rectification.state == "open"
    assert rectification.service_point_id == station[0].id
    days = get_evaluation_settings().rectification_working_days
    assert rectification.due_date == get_calendar(session).add_working_days(today_in_china(), days)
    # the applicant can't rate again until it is done
    with pytest.raises(service.AlreadyEvaluated):
        service.evaluate(session, principal=citizen, case_id=case.id, level=4, comment=None)
    # who sees it: the town's and the county's supervisors; not another town's, not a clerk
    assert [r.id for r in service.list_rectifications(session, principal=supervisor, state="open")].count(rectification.id) == 1
    _, county = _staff(session, "supervisor-361130")
    assert service.get_rectification(session, principal=county, rectification_id=rectification.id)
    _, other_town = _staff(session, "supervisor-361130103")
    with pytest.raises(service.RectificationNotFound):
        service.get_rectification(session, principal=other_town, rectification_id=rectification.id)
    assert rectification.id not in [r.id for r in service.list_rectifications(session, principal=other_town, state=None)]
    _, clerk = _staff(session, f"clerk-{STATION_REGION}")
    with pytest.raises(Forbidden):
        service.list_rectifications(session, principal=clerk, state=None)
    with pytest.raises(service.RectificationNotFound):
        service.get_rectification(session, principal=clerk, rectification_id=rectification.id)
    # done, with a return visit: the applicant is told and may rate once more
    done = service.complete_rectification(session, principal=supervisor, rectification_id=rectification.id,
                                          measures="窗口服务培训", return_visit_method="phone",
                                          return_visit_summary="电话回访，申请人认可", applicant_satisfied=True)
    assert done.state == "done" and done.completed_by == town_supervisor.id
    session.flush()
    notice = session.exec(select(OutboxJob).where(OutboxJob.dedupe_key == f"notify:{case.id}:rectified:{done.id}")).one()
    assert notice.payload["event"] == "rectified"
    with pytest.raises(service.RectificationDone):
        service.complete_rectification(session, principal=supervisor, rectification_id=rectification.id, measures="x",
                                       return_visit_method="phone", return_visit_summary="x", applicant_satisfied=None)
    again = service.evaluate(session, principal=citizen, case_id=case.id, level=4, comment="改进了")
    assert again.round == 2
    with pytest.raises(service.AlreadyEvaluated):
        service.evaluate(session, principal=citizen, case_id=case.id, level=5, comment=None)
    state = service.case_evaluation_state(session, principal=citizen, case_id=case.id)
    assert state["effective_level"] == 4 and [item["round"] for item in state["items"]] == [1, 2]
    assert state["rectifications"][0]["state"] == "done" and "measures" not in state["rectifications"][0]


def test_a_point_with_its_own_supervisor_answers_for_itself(session, seeded):
    subject, citizen = _citizen(session)
    town = session.exec(select(ServicePoint).where(ServicePoint.region_code == "361130103000")).one()
    case = insert_case(session, subject_id=subject.id, handling_point_id=town.id, region_code="361130103201")
    evaluation = service.evaluate(session, principal=citizen, case_id=case.id, level=1, comment=None)
    rectification = session.exec(select(Rectification).where(Rectification.evaluation_id == evaluation.id)).one()
    assert rectification.supervisor_point_id == town.id


def test_figures_per_point_and_clerk_roll_up_into_the_region(session, station):
    point, clerk = station
    _, town_supervisor = _staff(session, "supervisor-361130102")
    before = figures.evaluation_figures(session, principal=town_supervisor, service_point_id=point.id)
    region_before = figures.evaluation_figures(session, principal=town_supervisor)
    levels = [5, 4, 1]
    for level in levels:
        subject, citizen = _citizen(session)
        case = _finished_case(session, station, subject)
        service.evaluate(session, principal=citizen, case_id=case.id, level=level, comment=None)
    old_subject, _ = _citizen(session)
    _finished_case(session, station, old_subject, closed_days_ago=40)  # unrated, window over: 满意
    fresh_subject, _ = _citizen(session)
    _finished_case(session, station, fresh_subject)  # unrated, still inside its window
    after = figures.evaluation_figures(session, principal=town_supervisor, service_point_id=point.id)
    assert after["closed"] - before["closed"] == 5 and after["rated"] - before["rated"] == 3
    assert after["defaulted_satisfied"] - before["defaulted_satisfied"] == 1
    assert after["awaiting"] - before["awaiting"] == 1
    for level in ("5", "4", "1"):
        assert after["by_level"][level] - before["by_level"][level] == 1
    assert after["effective_by_level"]["4"] - before["effective_by_level"]["4"] == 2
    assert after["rectifications"]["open"] - before["rectifications"]["open"] == 1
    clerk_row = next(row for row in after["by_clerk"] if row["staff_id"] == clerk.id)
    assert clerk_row["closed"] >= 5 and clerk_row["name"] == clerk.display_name
    region_after = figures.evaluation_figures(session, principal=town_supervisor)
    assert region_after["scope"] == "region:361130102000"
    assert region_after["closed"] - region_before["closed"] == 5
    assert any(row["service_point_id"] == point.id for row in region_after["by_point"])
    assert 0 <= region_after["satisfaction_rate"] <= 1


def test_figures_stay_inside_the_caller_s_jurisdiction(session, station):
    point, _ = station
    _, clerk = _staff(session, f"clerk-{STATION_REGION}")
    assert figures.evaluation_figures(session, principal=clerk)["scope"] == f"point:{point.id}"
    _, other_clerk = _staff(session, "clerk-361130103")
    with pytest.raises(service.OutsideJurisdiction):
        figures.evaluation_figures(session, principal=other_clerk, service_point_id=point.id)
    with pytest.raises(service.OutsideJurisdiction):
        figures.evaluation_figures(session, principal=clerk, region_code="361130000000")
    _, other_town = _staff(session, "supervisor-361130103")
    with pytest.raises(service.OutsideJurisdiction):
        figures.evaluation_figures(session, principal=other_town, region_code="361130102000")
    _, county = _staff(session, "supervisor-361130")
    assert figures.evaluation_figures(session, principal=county, region_code="361130102000")["scope"] == "region:361130102000"
    _, helper = _staff(session, f"helper-{STATION_REGION}")
    with pytest.raises(Forbidden):
        figures.evaluation_figures(session, principal=helper)
    _, citizen = _citizen(session)
    with pytest.raises(Forbidden):
        figures.evaluation_figures(session, principal=citizen)
