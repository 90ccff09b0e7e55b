"""Case queries. A page of cases is read in a fixed number of queries, however long it is."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Date, String, bindparam, delete, func, literal_column, or_, select, true, union_all, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from services.accounts.principal import Principal
from services.cases.models import Case, CaseEvent, CaseMaterial, IdempotencyRecord
from services.certificates.models import Certificate
from services.db import UTCDateTime, Write, json_rows, json_value, plain_rows, records, write_at_once
from services.points.models import ServicePoint, Staff
from services.regions.codes import subtree_range
from services.regions.repository import subtree_prefix
from services.subjects.models import Subject
from workflows.catalogue import finished_states

_handling = aliased(ServicePoint)
_receiving = aliased(ServicePoint)

# What a case view needs besides the case row: one query with joins instead of four lookups.
_VIEW_COLUMNS = (Subject.kind.label("subject_kind"), Subject.name.label("subject_name"),
                 Subject.number_masked.label("subject_number_masked"),
                 Staff.display_name.label("assignee_name"),
                 _handling.name.label("handling_point_name"), _handling.level.label("handling_point_level"),
                 _receiving.name.label("receiving_point_name"), _receiving.level.label("receiving_point_level"))


def case_rows_for_view():
    """SELECT of every case column (plain rows: reads need no ORM identity map) with the extras."""
    return _with_view_columns(select(*Case.__table__.columns))


def _with_view_columns(query):
    return (query.add_columns(*_VIEW_COLUMNS)
            .join(Subject, Subject.id == Case.subject_id)
            .outerjoin(Staff, Staff.id == Case.assignee_id)
            .outerjoin(_handling, _handling.id == Case.handling_point_id)
            .outerjoin(_receiving, _receiving.id == Case.receiving_point_id))


# What a view needs from the one-to-many tables, as columns of the case's own statement
# (correlated aggregates over their case_id indexes) rather than a second query: a list page
# carries its cases' materials and certificate ids; one case read for its detail or an action
# carries its history too. The second round trip cost about as much server time as the first.
_ATTACHED_MATERIALS = (select(json_rows(CaseMaterial.id, CaseMaterial.code, CaseMaterial.file_id,
                                        CaseMaterial.certificate_id))
                       .where(CaseMaterial.case_id == Case.id).correlate(Case).scalar_subquery()
                       .label("attached_materials"))
_ATTACHED_CERTIFICATES = (select(json_rows(Certificate.id)).where(Certificate.case_id == Case.id).correlate(Case)
                          .scalar_subquery().label("attached_certificate_ids"))
_EVENT_FIELDS = ("seq", "action", "from_state", "to_state", "actor", "actor_name", "comment", "hash", "created_at",
                 "payload")
_ATTACHED_HISTORY = (select(json_rows(*[json_value(CaseEvent.payload) if name == "payload" else getattr(CaseEvent, name)
                                        for name in _EVENT_FIELDS]))
                     .where(CaseEvent.case_id == Case.id).correlate(Case).scalar_subquery().label("attached_history"))


def details_of(rows, *, with_history: bool = False) -> CaseDetails:
    """The details of rows read with the attached columns (with_details_columns): materials in the
    order they were attached, certificate ids sorted, events by seq."""
    details = CaseDetails()
    for row in rows:
        details.materials[row.id] = [{"code": code, "file_id": file_id, "certificate_id": certificate_id}
                                     for _, code, file_id, certificate_id in sorted(row.attached_materials)]
        details.certificates[row.id] = sorted(certificate_id for (certificate_id,) in row.attached_certificate_ids)
        if with_history:
            details.events[row.id] = [_event_of(values) for values in sorted(row.attached_history)]
    return details


def _event_of(values: list) -> SimpleNamespace:
    event = SimpleNamespace(**dict(zip(_EVENT_FIELDS, values)))
    # JSON has no timestamps: PostgreSQL writes an ISO 8601 string with an offset, SQLite the
    # stored UTC text without one
    moment = datetime.fromisoformat(event.created_at)
    event.created_at = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return event


def with_details_columns(query, *, with_history: bool):
    """`query` (of cases) with the columns details_of reads."""
    return query.add_columns(_ATTACHED_MATERIALS, _ATTACHED_CERTIFICATES,
                             *([_ATTACHED_HISTORY] if with_history else []))


_IDEMPOTENCY_RECORD = select(IdempotencyRecord.request_sha256, IdempotencyRecord.case_id).where(
    IdempotencyRecord.principal == bindparam("principal"), IdempotencyRecord.key == bindparam("key"))


def find_idempotency_record(session: Session, *, principal: str, key: str):
    """(request_sha256, case_id) of an earlier request with this key, or None."""
    return plain_rows(session, _IDEMPOTENCY_RECORD, {"principal": principal, "key": key}).first()


def visibility_filter(principal: Principal):
    """The SQL condition for the cases this principal may see (DESIGN.md §1 and §8)."""
    if principal.kind == "citizen":
        own = Case.created_by_principal == principal.key
        if principal.subject_id is not None:
            return or_(Case.subject_id == principal.subject_id, own)
        return own
    role = principal.roles[0] if principal.roles else ""
    if role in ("supervisor", "admin") and principal.jurisdiction_code:
        return Case.region_code.startswith(subtree_prefix(principal.jurisdiction_code))
    if role == "helper":
        return Case.created_by_principal == principal.key
    return or_(Case.handling_point_id == principal.service_point_id,
               Case.receiving_point_id == principal.service_point_id)


# The hot reads are built once per shape of the caller's visibility and executed with
# parameters: building a statement and computing its cache key costs more than the round trip.
_SHAPES = {
    "citizen_subject": lambda: or_(Case.subject_id == bindparam("v_subject_id"),
                                   Case.created_by_principal == bindparam("v_principal")),
    "citizen": lambda: Case.created_by_principal == bindparam("v_principal"),
    "region": lambda: (Case.region_code >= bindparam("v_low", type_=String)) & (
        Case.region_code < bindparam("v_high", type_=String)),
    "helper": lambda: Case.created_by_principal == bindparam("v_principal"),
    "point": lambda: or_(Case.handling_point_id == bindparam("v_point"), Case.receiving_point_id == bindparam("v_point")),
    "any": true,  # the caller's entitlement was checked before (get_case_for_view)
}


def _visibility(principal: Principal) -> tuple[str, dict[str, Any]]:
    """(shape, parameters) of visibility_filter(principal)."""
    if principal.kind == "citizen":
        if principal.subject_id is not None:
            return "citizen_subject", {"v_subject_id": principal.subject_id, "v_principal": principal.key}
        return "citizen", {"v_principal": principal.key}
    role = principal.roles[0] if principal.roles else ""
    if role in ("supervisor", "admin") and principal.jurisdiction_code:
        low, high = subtree_range(principal.jurisdiction_code)
        return "region", {"v_low": low, "v_high": high}
    if role == "helper":
        return "helper", {"v_principal": principal.key}
    return "point", {"v_point": principal.service_point_id}


@lru_cache(maxsize=None)
def _one_case(shape: str, *, for_view: bool, lock: bool):
    query = with_details_columns(case_rows_for_view(), with_history=True) if for_view else select(Case)
    query = query.where(Case.id == bindparam("case_id"), _SHAPES[shape]())
    return query.with_for_update() if lock else query


def get_visible_case(session: Session, *, case_id: str, principal: Principal, lock: bool = False) -> Case | None:
    shape, parameters = _visibility(principal)
    return session.execute(_one_case(shape, for_view=False, lock=lock),
                           {"case_id": case_id, **parameters}).scalars().first()


def get_visible_case_for_view(session: Session, *, case_id: str,
                              principal: Principal) -> tuple[Any, CaseDetails] | None:
    """The case (a plain row, with what its view needs from the points, staff and subjects tables)
    and its details (materials, certificates, history), in one statement."""
    shape, parameters = _visibility(principal)
    return _case_for_view(session, shape, {"case_id": case_id, **parameters})


def get_case_for_view(session: Session, *, case_id: str) -> tuple[Any, CaseDetails] | None:
    """get_visible_case_for_view for a caller already entitled to the case (its own write's answer)."""
    return _case_for_view(session, "any", {"case_id": case_id})


def _case_for_view(session: Session, shape: str, parameters: dict[str, Any]) -> tuple[Any, CaseDetails] | None:
    found = records(plain_rows(session, _one_case(shape, for_view=True, lock=False), parameters))
    return (found[0], details_of(found, with_history=True)) if found else None


@dataclass(frozen=True)
class CaseFilters:
    """What a list may be narrowed to (query parameters of GET /cases)."""

    state: str | None = None
    matter_code: str | None = None
    sla_flag: str | None = None  # due_soon | overdue, as the SLA sweep last marked them
    unfinished: bool = False  # leave out cases in a final state (the work queue)


# Cases without a deadline yet (waiting for acceptance, which the window owes at once) come
# before every dated one, the oldest first. Written inline (not bound) so that the sort key is
# the expression of the index ix_cases_work_queue (migration 20261126_0010).
NO_DEADLINE = date(1900, 1, 1)
_DEADLINE = func.coalesce(Case.due_date, literal_column(f"'{NO_DEADLINE.isoformat()}'"))


def list_visible_cases(session: Session, *, principal: Principal, filters: CaseFilters, sort: str,
                       after: tuple | None, limit: int) -> list[tuple[Any, Any]]:
    """One page of the caller's cases with their view extras, in one query, keyset-paginated:
    `sort="newest"` by (submitted_at, id) descending; `sort="deadline"` by (deadline, submitted_at,
    id) ascending, cases without a deadline (not accepted yet) first. `after` is the last row's
    key on the previous page."""
    clerk = principal.kind == "staff" and bool(principal.roles) and principal.roles[0] == "clerk"
    shape, parameters = ("clerk", {"v_point": principal.service_point_id, "v_account": principal.account_id}) \
        if clerk else _visibility(principal)
    if filters.state:
        parameters["state"] = filters.state
    if filters.matter_code:
        parameters["matter_code"] = filters.matter_code
    if filters.sla_flag:
        parameters["sla_flag"] = filters.sla_flag
    if after:
        parameters.update(zip(("after_due", "after_at", "after_id") if sort == "deadline" else ("after_at", "after_id"),
                              after))
    query = _page(shape, by_state=bool(filters.state), by_matter=bool(filters.matter_code),
                  by_flag=bool(filters.sla_flag), unfinished=filters.unfinished and not filters.state,
                  sort=sort, after_cursor=bool(after), limit=limit)
    return [(row, row) for row in records(plain_rows(session, query, parameters))]


def _sort_key(sort: str):
    if sort == "deadline":
        return (_DEADLINE, Case.submitted_at, Case.id)
    return (Case.submitted_at, Case.id)


def _after(sort: str):
    """Rows after the cursor's key in the sort order (a row-value comparison, spelled out)."""
    at = bindparam("after_at", type_=UTCDateTime())
    after_id = bindparam("after_id")
    if sort == "deadline":
        due = _DEADLINE
        after_due = bindparam("after_due", type_=Date())
        return or_(due > after_due, (due == after_due) & or_(Case.submitted_at > at,
                                                              (Case.submitted_at == at) & (Case.id > after_id)))
    return or_(Case.submitted_at < at, (Case.submitted_at == at) & (Case.id < after_id))


def _ordered(query, sort: str):
    key = _sort_key(sort)
    return query.order_by(*(key if sort == "deadline" else [column.desc() for column in key]))


@lru_cache(maxsize=None)
def _page(shape: str, *, by_state: bool, by_matter: bool, by_flag: bool, unfinished: bool, sort: str,
          after_cursor: bool, limit: int):
    """A clerk's queue (their assignments, the point's unassigned pool, what came in at their
    window) is three ordered, limited index scans merged, not one OR that would sort the whole
    point's history on every page."""

    def narrowed(condition):
        query = select(Case.id).where(condition)
        if by_state:
            query = query.where(Case.state == bindparam("state"))
        if by_matter:
            query = query.where(Case.matter_code == bindparam("matter_code"))
        if by_flag:
            query = query.where(Case.sla_flag == bindparam("sla_flag"))
        if unfinished:
            query = query.where(_unfinished())
        if after_cursor:
            query = query.where(_after(sort))
        return _ordered(query, sort).limit(_literal_limit(limit))

    if shape == "clerk":
        point = bindparam("v_point")
        mine = (Case.handling_point_id == point) & (Case.assignee_id == bindparam("v_account"))
        pool = (Case.handling_point_id == point) & Case.assignee_id.is_(None)
        received = (Case.receiving_point_id == point) & ~(mine | pool)
        branches = [narrowed(condition).subquery() for condition in (mine, pool, received)]
        ids = union_all(*[select(branch.c.id) for branch in branches])
    else:
        ids = narrowed(_SHAPES[shape]())
    page = with_details_columns(case_rows_for_view(), with_history=False)
    return _ordered(page.where(Case.id.in_(select(ids.subquery().c.id))), sort).limit(_literal_limit(limit))


# The queue's states and page size are written into the SQL, not bound. PostgreSQL keeps a
# prepared statement's generic plan, which sees no parameter values: with the states bound it
# cannot prove that the partial index ix_cases_work_queue (WHERE state NOT IN …) applies, and with
# the limit bound it cannot tell that a page is a few rows; either way it sorts the point's whole
# pool. With both written out the generic plan is the three ordered index scans, planned once.
@lru_cache(maxsize=1)
def _unfinished():
    return Case.state.not_in([literal_column(f"'{state}'") for state in finished_states()])


def _literal_limit(limit: int):
    return literal_column(str(int(limit)))


def history(session: Session, *, case_id: str) -> list[CaseEvent]:
    return list(session.execute(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)).scalars())


def last_event(session: Session, *, case_id: str) -> tuple[int, str] | None:
    """(seq, hash) of the newest event."""
    row = session.execute(select(CaseEvent.seq, CaseEvent.hash).where(CaseEvent.case_id == case_id)
                          .order_by(CaseEvent.seq.desc()).limit(1)).first()
    return (row[0], row[1]) if row else None


@dataclass
class CaseDetails:
    """What a case view needs besides the case row, for several cases at once."""

    extras: dict[str, SimpleNamespace] = field(default_factory=dict)  # for rows that don't carry them
    materials: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    certificates: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[SimpleNamespace]] = field(default_factory=lambda: defaultdict(list))


_MATERIAL_CODES = select(CaseMaterial.code).where(CaseMaterial.case_id == bindparam("case_id"))


def material_codes(session: Session, *, case_id: str) -> set[str]:
    return set(plain_rows(session, _MATERIAL_CODES, {"case_id": case_id}).scalars())


def remove_materials(session: Session, *, case_id: str, codes: list[str]) -> None:
    session.execute(delete(CaseMaterial).where(CaseMaterial.case_id == case_id, CaseMaterial.code.in_(codes))
                    .execution_options(synchronize_session=False))


def update_if_version(session: Session, *, case_id: str, expected_version: int, values: dict) -> bool:
    """Optimistic lock: apply `values` and bump the version only if nobody changed the case."""
    return write_at_once(session, version_checked_update(case_id=case_id, expected_version=expected_version,
                                                         values=values)) == [1]


def version_checked_update(*, case_id: str, expected_version: int, values: dict) -> Write:
    """update_if_version as a write to run with others (it changed the case iff its count is 1)."""
    return Write(_update_if_version(tuple(sorted(values))),
                 [{"w_case_id": case_id, "w_version": expected_version,
                   **{f"v_{name}": value for name, value in values.items()}}])


@lru_cache(maxsize=256)
def _update_if_version(names: tuple[str, ...]):
    """The UPDATE for one set of changed columns, built once (every transition runs one)."""
    columns = Case.__table__.c
    return (update(Case.__table__).where(columns.id == bindparam("w_case_id"),
                                         columns.version == bindparam("w_version"))
            .values(version=columns.version + 1,
                    **{name: bindparam(f"v_{name}", type_=columns[name].type) for name in names}))
