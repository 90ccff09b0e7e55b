"""Regional figures (一网协同): keeping the rollups (build, refresh, reconcile) and serving them
for a region with its direct children, or for a service point with its clerks.

Keeping them: a case is folded in as a fact (repository.fact_select); what the fact adds to
each rollup row is `contributions`; folding a changed case adds its new contributions and
subtracts its stored ones, so the rollups always equal the sum of the stored facts. The refresh
folds the cases updated (or rated) since the watermark, the reconciliation every case whose fact
drifted, the build all of them in SQL.

Serving them: a handful of indexed lookups, whatever the size of the subtree; `as_of` says up to
when changes are in. Due soon and overdue are worked out at request time from the open cases'
due dates, as services/sla/counts.py does from the cases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from services.accounts.principal import Principal
from services.db import utcnow
from services.errors import Forbidden, InvalidInput
from services.figures import repository
from services.figures.models import COUNTER_NAMES, NO_DUE_DATE, UNASSIGNED, RefreshState
from services.figures.repository import CLOSED_STATES, FACT_COLUMNS, OUTCOME_STATES, region_chain
from services.figures.settings import get_figures_settings
from services.points.models import ServicePoint, Staff
from services.regions.codes import is_region_code, level_of
from services.regions.repository import subtree_prefix
from services.routing.service import UnknownRegion
from services.sla.calendar import get_calendar, today_in_china
from services.sla.settings import get_sla_settings
from services.sla.calendar import CHINA
from workflows.calendar import statutory_years

log = logging.getLogger("onestop.figures")

WIDE_ROLES = ("supervisor", "admin")  # a jurisdiction subtree
POINT_ROLES = ("clerk", "reviewer")  # their own point
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2100, 12, 31)
LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


class OutsideJurisdiction(Forbidden):
    code = "outside_jurisdiction"
    message = "超出您的管辖范围"


class InvalidDateRange(InvalidInput):
    code = "invalid_date_range"
    message = "日期范围不合法"


class UnknownMatterCode(InvalidInput):
    code = "unknown_matter"
    message = "事项编码不存在"


# ============================================================================ keeping the rollups

def _fact(values: tuple) -> dict[str, Any]:
    return dict(zip(FACT_COLUMNS, values))


def outcome_of(state: str) -> str:
    """completed | denied | not_accepted | withdrawn | open."""
    for outcome, states in OUTCOME_STATES.items():
        if state in states:
            return outcome
    return "open"


def counters_of(fact: dict[str, Any]) -> dict[str, int]:
    """What one fact adds to each counter (repository.counter_sql is the same in SQL)."""
    outcome = outcome_of(fact["state"])
    timed = outcome == "completed" and fact["working_days"] is not None
    values = {name: 0 for name in COUNTER_NAMES}
    values["received"] = 1
    values["accepted"] = int(bool(fact["accepted"]))
    values[outcome] = 1
    values["completion_cases"] = int(timed)
    values["completion_working_days"] = fact["working_days"] if timed else 0
    if fact["rating"] in LEVELS:
        values[f"rated_{fact['rating']}"] = 1
    return values


def contributions(fact: dict[str, Any]) -> Iterator[tuple[str, tuple, tuple, dict[str, int]]]:
    """(rollup, key, extra columns, counters) of every row one fact adds to."""
    counters = counters_of(fact)
    day, matter = fact["day"], fact["matter_code"]
    chain = region_chain(fact["region_code"])
    for code, level, parent in chain:
        yield "regions", (code, day, matter), (level, parent), counters
    yield "points", (fact["service_point_id"], day, matter, fact["staff_id"]), (), counters
    if fact["state"] not in CLOSED_STATES:
        due = fact["due_date"] if fact["sla_state"] == "running" and fact["due_date"] is not None else NO_DUE_DATE
        for code, level, parent in chain:
            yield "regions_open", (code, day, matter, fact["state"], fact["sla_state"], due), (level, parent), {"cases": 1}
        yield ("points_open", (fact["service_point_id"], day, matter, fact["staff_id"], fact["state"],
                               fact["sla_state"], due), (), {"cases": 1})


def fold(session: Session, *, case_ids: Sequence[str]) -> dict[str, int]:
    """Bring these cases' facts, and so the rollups, up to date. Returns what changed."""
    new = repository.read_new_facts(session, case_ids=case_ids)
    old = repository.read_stored_facts(session, case_ids=case_ids)
    deltas: dict[str, dict[tuple, tuple[tuple, dict[str, int]]]] = defaultdict(dict)

    def add(values: tuple, sign: int) -> None:
        for table, key, extra, counters in contributions(_fact(values)):
            _, changes = deltas[table].setdefault(key, (extra, defaultdict(int)))
            for name, value in counters.items():
                changes[name] += sign * value

    changed, gone = [], []
    for case_id in case_ids:
        now, before = new.get(case_id), old.get(case_id)
        if now == before:
            continue
        if now is not None:
            add(now, +1)
            changed.append(now)
        else:
            gone.append(case_id)
        if before is not None:
            add(before, -1)
    repository.save_facts(session, facts=changed)
    repository.delete_facts(session, case_ids=gone)
    rows = 0
    for table, by_key in deltas.items():
        nonzero = {key: (extra, changes) for key, (extra, changes) in by_key.items() if any(changes.values())}
        rows += repository.apply_deltas(session, name=table, deltas=nonzero)
    return {"examined": len(case_ids), "changed": len(changed) + len(gone), "rows": rows}


def calendar_fingerprint(calendar) -> str:
    overrides = sorted((day.isoformat(), working) for day, working in (calendar.overrides or {}).items())
    return hashlib.sha256(json.dumps([statutory_years(), overrides]).encode()).hexdigest()


def ensure_working_days(session: Session, state: RefreshState, *, first: date | None) -> None:
    """Make figures_working_days number every day from `first` (or what it covers) to a month
    from now, on the calendar in force."""
    calendar = get_calendar(session)
    fingerprint = calendar_fingerprint(calendar)
    today = today_in_china()
    same = state.calendar_fingerprint == fingerprint and state.working_days_from is not None
    start = min(day for day in (first, state.working_days_from if same else None, today) if day is not None)
    if same and state.working_days_from <= start and state.working_days_to >= today:
        return
    end = today + timedelta(days=31)
    repository.write_working_days(session, first=start, last=end, is_working_day=calendar.is_working_day)
    state.calendar_fingerprint, state.working_days_from, state.working_days_to = fingerprint, start, end


def _fold_in_batches(session: Session, state: RefreshState, case_ids: list[str]) -> dict[str, int]:
    report = {"examined": 0, "changed": 0, "rows": 0}
    size = get_figures_settings().batch_size
    for start in range(0, len(case_ids), size):
        batch = case_ids[start:start + size]
        first, _ = repository.day_span(session, case_ids=batch)
        ensure_working_days(session, state, first=first)
        for name, value in fold(session, case_ids=batch).items():
            report[name] += value
    return report


def _finish(session: Session, state: RefreshState, *, mode: str, started: datetime, report: dict[str, Any]) -> dict:
    finished = utcnow()
    t0 = report.pop("_t0")
    report = {"mode": mode, **report, "seconds": round(time.perf_counter() - t0, 3),
              "watermark": started.isoformat()}
    state.watermark = started
    state.refreshed_at = finished
    state.last_run = report
    session.add(state)
    session.flush()
    log.info("figures %s", mode, extra={"report": report})
    return report


def rebuild(session: Session) -> dict[str, Any]:
    """Empty the rollups and build them again from every case, in SQL. Readers keep seeing the
    old rows until the caller commits (DELETE, not TRUNCATE)."""
    state = repository.lock_state(session)
    t0, started = time.perf_counter(), utcnow()
    repository.clear_rollups(session)
    first, _ = repository.day_span(session)
    ensure_working_days(session, state, first=first)
    counts = repository.bulk_build(session)
    state.rebuilt_at = utcnow()
    return _finish(session, state, mode="rebuild", started=started, report={"_t0": t0, "rows": counts})


def refresh(session: Session, *, wait: bool = True) -> dict[str, Any]:
    """Fold in the cases updated or rated since the last refresh (minus the overlap); the first
    time, build everything. With wait=False, return at once if another refresh is running."""
    state = repository.lock_state(session, wait=wait)
    if state is None:
        return {"mode": "skipped", "reason": "another refresh is running"}
    if state.watermark is None:  # never built: build (the lock is already ours)
        return rebuild(session)
    t0, started = time.perf_counter(), utcnow()
    since = state.watermark - timedelta(seconds=get_figures_settings().overlap_seconds)
    case_ids = repository.changed_case_ids(session, since=since)
    report = _fold_in_batches(session, state, case_ids)
    return _finish(session, state, mode="refresh", started=started,
                   report={"_t0": t0, "since": since.isoformat(), **report})


def reconcile(session: Session) -> dict[str, Any]:
    """Recompute every case's fact in SQL and fold in those that differ from the stored ones
    (changes that did not touch updated_at, a changed calendar, deleted cases)."""
    state = repository.lock_state(session)
    if state.watermark is None:
        return rebuild(session)
    t0, started = time.perf_counter(), utcnow()
    first, _ = repository.day_span(session)
    ensure_working_days(session, state, first=first)
    case_ids = repository.drifted_case_ids(session)
    report = _fold_in_batches(session, state, case_ids)
    state.reconciled_at = utcnow()
    return _finish(session, state, mode="reconcile", started=started, report={"_t0": t0, **report})


# ============================================================================ serving them

def _role(principal: Principal) -> str:
    return principal.roles[0] if principal.roles else ""


def covers(principal: Principal, region_code: str) -> bool:
    """Whether the region lies inside the caller's jurisdiction subtree."""
    return bool(principal.jurisdiction_code) and is_region_code(principal.jurisdiction_code) \
        and region_code.startswith(subtree_prefix(principal.jurisdiction_code))


def _authorise_region(principal: Principal, region_code: str) -> None:
    role = _role(principal)
    allowed = (principal.kind == "staff"
               and ((role in WIDE_ROLES and covers(principal, region_code))
                    or (role in POINT_ROLES and principal.jurisdiction_code == region_code)))
    if not allowed:
        raise OutsideJurisdiction(detail={"region_code": region_code})


def authorise_point(session: Session, principal: Principal, service_point_id: int) -> ServicePoint:
    """The point, if the caller may see its figures: their own, or (supervisors, admins) any
    point inside their jurisdiction. An unknown point is refused the same way (no probing)."""
    point = session.get(ServicePoint, service_point_id)
    wide = _role(principal) in WIDE_ROLES
    allowed = principal.kind == "staff" and _role(principal) != "helper" and point is not None and (
        point.id == principal.service_point_id or (wide and covers(principal, point.region_code)))
    if not allowed:
        raise OutsideJurisdiction(detail={"service_point_id": service_point_id})
    return point


def check_filters(session: Session, *, date_from: date | None, date_to: date | None,
                  matter_code: str | None) -> None:
    """422 for dates out of 2000–2100, `from` after `to`, or a matter code nobody has defined."""
    problems = [{"field": field, "reason": "out_of_range"}
                for field, day in (("from", date_from), ("to", date_to))
                if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY]
    if problems:
        raise InvalidDateRange(f"日期须在 {EARLIEST_DAY} 至 {LATEST_DAY} 之间", detail=problems)
    if date_from is not None and date_to is not None and date_from > date_to:
        raise InvalidDateRange("开始日期晚于结束日期", detail=[{"field": "from", "reason": "after_to"}])
    if matter_code is not None and not _matter_exists(session, matter_code):
        raise UnknownMatterCode(detail=[{"field": "matter_code", "reason": "unknown"}])


def _matter_exists(session: Session, code: str) -> bool:
    from services.matters.models import MatterVersion
    from workflows.catalogue import default_catalogue

    if default_catalogue().get(code) is not None:
        return True
    return session.execute(select(MatterVersion.id).where(MatterVersion.code == code).limit(1)).first() is not None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(CHINA).isoformat() if moment else None


def _freshness(session: Session) -> dict[str, Any]:
    state = repository.read_state(session)
    today = today_in_china()
    due_soon_days = get_sla_settings().due_soon_days
    return {"as_of": _iso(state.watermark if state else None),
            "refreshed_at": _iso(state.refreshed_at if state else None),
            "ready": bool(state and state.watermark),
            "today": today.isoformat(), "due_soon_days": due_soon_days,
            "_soon": get_calendar(session).add_working_days(today, due_soon_days), "_today": today}


def present(counters: dict[str, int] | None, open_now: dict[str, Any] | None) -> dict[str, Any]:
    """The figures of one region, point or clerk from its summed counters and open rows."""
    counters = counters or {name: 0 for name in COUNTER_NAMES}
    open_now = open_now or {"by_state": {}, "overdue": 0, "due_soon": 0, "paused": 0}
    ratings = sum(counters[f"rated_{level}"] for level in LEVELS)
    score = sum(level * counters[f"rated_{level}"] for level in LEVELS)
    satisfied = counters["rated_5"] + counters["rated_4"]
    timed = counters["completion_cases"]
    return {
        "received": counters["received"], "accepted": counters["accepted"], "completed": counters["completed"],
        "denied": counters["denied"], "not_accepted": counters["not_accepted"], "withdrawn": counters["withdrawn"],
        "open": counters["open"], "open_by_state": dict(sorted(open_now["by_state"].items())),
        "due_soon": open_now["due_soon"], "overdue": open_now["overdue"], "paused": open_now["paused"],
        "completion_cases": timed,
        "avg_working_days_to_completion": round(counters["completion_working_days"] / timed, 2) if timed else None,
        "satisfaction": {
            "ratings": ratings, "average_score": round(score / ratings, 2) if ratings else None,
            "satisfied_share": round(satisfied / ratings, 4) if ratings else None,
            "by_level": {str(level): counters[f"rated_{level}"] for level in sorted(LEVELS, reverse=True)},
        },
    }


def region_figures(session: Session, *, principal: Principal, region_code: str, date_from: date | None = None,
                   date_to: date | None = None, matter_code: str | None = None) -> dict[str, Any]:
    """Figures of the applicants' cases in a region's subtree (submitted in [from, to], of one
    matter or all), and the same for each direct child region."""
    _authorise_region(principal, region_code)
    region, child_rows = repository.region_and_children(session, region_code=region_code)
    if region is None:
        raise UnknownRegion(detail=[{"field": "region_code", "reason": "unknown"}])
    check_filters(session, date_from=date_from, date_to=date_to, matter_code=matter_code)
    fresh = _freshness(session)
    today, soon = fresh.pop("_today"), fresh.pop("_soon")
    window = {"day_from": date_from, "day_to": date_to, "matter_code": matter_code}
    counters = repository.region_counters(session, region_code=region_code, **window)
    open_now = repository.region_open(session, region_code=region_code, today=today, soon=soon, **window)
    totals, open_total = counters.pop(region_code, None), open_now.pop(region_code, None)
    by_child, open_children = counters, open_now
    known = {child.code: child for child in child_rows if child.active or child.code in counters}
    missing = (set(by_child) | set(open_children)) - set(known)
    if missing:  # retired codes that old cases still point at, or codes the tree does not list
        known.update(repository.regions_by_code(session, codes=missing))
    children = []
    for code in sorted(set(known) | missing):
        child = known.get(code)
        children.append({"code": code, "name": child.name if child else "", "level": child.level if child else
                         level_of(code), "active": bool(child.active) if child else False,
                         "figures": present(by_child.get(code), open_children.get(code))})
    return {
        "region": {"code": region.code, "name": region.name, "level": region.level},
        "from": date_from.isoformat() if date_from else None, "to": date_to.isoformat() if date_to else None,
        "matter_code": matter_code, **fresh,
        "figures": present(totals, open_total),
        "children": children,
    }


def point_figures(session: Session, *, principal: Principal, service_point_id: int, date_from: date | None = None,
                  date_to: date | None = None, matter_code: str | None = None) -> dict[str, Any]:
    """Figures of the cases a service point handles (submitted in [from, to], of one matter or
    all), and the same per assignee (staff_id null: waiting in the point's pool)."""
    point = authorise_point(session, principal, service_point_id)
    check_filters(session, date_from=date_from, date_to=date_to, matter_code=matter_code)
    fresh = _freshness(session)
    today, soon = fresh.pop("_today"), fresh.pop("_soon")
    window = {"day_from": date_from, "day_to": date_to, "matter_code": matter_code}
    by_staff = repository.point_counters(session, service_point_id=point.id, **window)
    open_by_staff = repository.point_open(session, service_point_id=point.id, today=today, soon=soon, **window)
    totals = {name: sum(values[name] for values in by_staff.values()) for name in COUNTER_NAMES}
    open_total: dict[str, Any] = {"by_state": defaultdict(int), "overdue": 0, "due_soon": 0, "paused": 0}
    for bucket in open_by_staff.values():
        for state, count in bucket["by_state"].items():
            open_total["by_state"][state] += count
        for name in ("overdue", "due_soon", "paused"):
            open_total[name] += bucket[name]
    staff = {member.id: member for member in session.execute(
        select(Staff).where(Staff.service_point_id == point.id, Staff.active.is_(True),
                            Staff.role.in_(("clerk", "reviewer", "supervisor")))).scalars()}
    others = (set(by_staff) | set(open_by_staff)) - set(staff) - {UNASSIGNED}
    if others:  # transferred away since, or deactivated: their cases still count here
        staff.update({member.id: member for member in session.execute(
            select(Staff).where(Staff.id.in_(others))).scalars()})
    ids = sorted(set(staff) | set(by_staff) | set(open_by_staff))
    clerks = [{"staff_id": None if staff_id == UNASSIGNED else staff_id,
               "name": "（待认领）" if staff_id == UNASSIGNED else (staff[staff_id].display_name if staff_id in staff else ""),
               "role": staff[staff_id].role if staff_id in staff else None,
               "figures": present(by_staff.get(staff_id), open_by_staff.get(staff_id))}
              for staff_id in ids]
    return {
        "service_point": {"id": point.id, "name": point.name, "level": point.level, "region_code": point.region_code},
        "from": date_from.isoformat() if date_from else None, "to": date_to.isoformat() if date_to else None,
        "matter_code": matter_code, **fresh,
        "figures": present(totals, {**open_total, "by_state": dict(open_total["by_state"])}),
        "clerks": clerks,
    }


# ============================================================================ live (no rollups)

CHILD_PREFIX = {"province": 4, "city": 6, "county": 9, "town": 12, "village": 12}


def live_region_figures(session: Session, *, region_code: str, date_from: date | None = None,
                        date_to: date | None = None, matter_code: str | None = None) -> dict[str, Any]:
    """The region's figures and its children's, computed from the cases at request time (one
    GROUP BY over the subtree). The benchmark's baseline; not served by the API."""
    today = today_in_china()
    soon = get_calendar(session).add_working_days(today, get_sla_settings().due_soon_days)
    level = level_of(region_code)
    groups = repository.live_region_figures(
        session, region_code=region_code, child_prefix_length=CHILD_PREFIX[level], day_from=date_from,
        day_to=date_to, matter_code=matter_code, today=today, soon=soon, prefix=subtree_prefix(region_code))
    names = COUNTER_NAMES + ("overdue", "due_soon", "paused")
    totals = {name: sum(group[name] for group in groups.values()) for name in names}
    children = {prefix.ljust(12, "0"): group for prefix, group in groups.items()} if level != "village" else {}
    return {"figures": totals, "children": children}
