"""The routing index: a pure decision over regions and points, rebuilt when either changes —
also when the change is made by another process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import Session

from services.points.models import ServicePoint
from services.routing import index as routing_index
from services.routing.service import InactiveRegion, NoHandlingPoint, UnknownRegion, route

BAISHI = "361130102201"  # 白石村委会: no station in the demo


def test_decisions_walk_up_and_name_what_is_missing(seeded, engine):
    with Session(engine) as session:
        index = routing_index.build_index(session)
    village = index.decide(handle_level="village", region_code=BAISHI)
    assert village.point.level == "town" and village.skipped_levels == ("village",)
    county = index.decide(handle_level="county", region_code=BAISHI)
    assert county.point.name == "婺源县政务服务中心" and county.skipped_levels == ()
    elsewhere = index.decide(handle_level="village", region_code="360102002001")  # 南昌: no points at all
    assert elsewhere.point is None and elsewhere.skipped_levels == ("village", "town", "county")


def test_route_errors_are_precise(seeded, engine):
    with Session(engine) as session:
        with pytest.raises(UnknownRegion):
            route(session, handle_level="village", region_code="361130999999")
        with pytest.raises(NoHandlingPoint) as missing:
            route(session, handle_level="town", region_code="360102002001")
        assert missing.value.detail["searched_levels"] == ["town", "county"]


def test_an_inactive_region_is_refused(seeded, engine, monkeypatch):
    with Session(engine) as session:
        index = routing_index.build_index(session)
    region = index.regions[BAISHI]
    index.regions[BAISHI] = routing_index.RegionRef(region.parent_code, region.name, False)
    monkeypatch.setattr(routing_index, "get_index", lambda _session: index)
    monkeypatch.setattr("services.routing.service.get_index", lambda _session: index)
    with Session(engine) as session, pytest.raises(InactiveRegion):
        route(session, handle_level="village", region_code=BAISHI)


def test_a_point_added_by_another_process_is_used_after_the_next_check(seeded, engine, monkeypatch):
    monkeypatch.setattr(routing_index, "CHECK_SECONDS", 0.0)
    with Session(engine) as session:
        assert route(session, handle_level="village", region_code=BAISHI).handling_point.level == "town"
    script = (
        "from services.db import session_scope\n"
        "from services.points.models import ServicePoint\n"
        "from services.routing.index import mark_changed\n"
        "with session_scope() as s:\n"
        f"    s.add(ServicePoint(name='白石村便民服务站', level='village', region_code='{BAISHI}'))\n"
        "    mark_changed(s)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy(), timeout=120)
    try:
        with Session(engine) as session:
            decision = route(session, handle_level="village", region_code=BAISHI)
        assert decision.handling_point.name == "白石村便民服务站"
        assert "进入待认领队列" in decision.reason or "暂无在岗窗口人员" in decision.reason  # no clerk there yet
    finally:
        with Session(engine) as session:
            point = session.query(ServicePoint).filter(ServicePoint.region_code == BAISHI).one()
            point.active = False
            session.add(point)
            routing_index.mark_changed(session)
            session.commit()
        with Session(engine) as session:
            assert route(session, handle_level="village", region_code=BAISHI).handling_point.level == "town"
