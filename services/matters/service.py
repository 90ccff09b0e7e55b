"""The matter catalogue: stored versions, the version in force, administrators' edits, and the
catalogue as the API shows it.

The shipped YAML files (workflows/catalogue/) are the shipped versions: `sync_catalogue` stores a
new version whenever a file's content (definition and resolved lifecycle) changed since it was
last stored. An administrator's edit is validated exactly like a file and stored as a new
version with its date of effect. A case keeps the version it started with (`matter_version`);
new cases and the catalogue API use the version in force (`current_matter`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from services.db import utcnow
from services.errors import Forbidden, InvalidInput, NotFound
from services.matters import repository
from services.matters.models import MatterVersion
from services.pagination import decode_cursor, encode_cursor
from services.sla.calendar import CHINA
from workflows.catalogue import (Catalogue, CatalogueError, Matter, build_matter, canonical_definition,
                                 canonical_lifecycle, default_catalogue, default_lifecycles, load_catalogue,
                                 matter_sha256)
from workflows.definitions import Lifecycle, MatterDefinition

__all__ = ["CatalogueError", "MatterNotFound", "UnknownMatter", "MatterVersionNotFound", "InvalidMatterDefinition",
           "AdminOnly",
           "current_matter", "matter_version", "list_matters", "matter_view", "get_matter", "require_matter",
           "sync_catalogue", "ensure_catalogue_loads", "save_matter_version", "list_versions", "today_in_china"]



class MatterNotFound(NotFound):
    code = "matter_not_found"
    message = "事项不存在"


class UnknownMatter(InvalidInput):
    code = "unknown_matter"
    message = "事项编码不存在"


class MatterVersionNotFound(NotFound):
    code = "matter_version_not_found"
    message = "事项版本不存在"


class InvalidMatterDefinition(InvalidInput):
    code = "invalid_matter_definition"
    message = "事项定义不合法"


class AdminOnly(Forbidden):
    code = "admin_only"
    message = "仅限管理员"


def today_in_china() -> date:
    return datetime.now(CHINA).date()


def ensure_catalogue_loads(root: Path | None = None) -> Catalogue:
    """Load the shipped catalogue (or the one under `root`), or raise CatalogueError listing every
    problem (file, path, message). Call at start-up: a broken catalogue stops the server instead
    of serving half of it."""
    return load_catalogue(root) if root is not None else default_catalogue()


# ----------------------------------------------------------------------------- the shipped files

def get_matter(code: str) -> Matter:
    """The shipped file's matter (404 if none). Transitional: cases should use current_matter /
    matter_version, which know about stored versions."""
    matter = default_catalogue().get(code)
    if matter is None:
        raise MatterNotFound(detail={"matter_code": code})
    return matter


def require_matter(code: str) -> Matter:
    """Like get_matter, for a code inside a request body (422, not 404)."""
    matter = default_catalogue().get(code)
    if matter is None:
        raise UnknownMatter(detail=[{"field": "matter_code", "reason": "unknown"}])
    return matter


# ----------------------------------------------------------------------------- stored versions

_CACHE_SIZE = 2048
_cache: OrderedDict[tuple[str, int, date], Matter] = OrderedDict()
_cache_lock = threading.Lock()


def _from_row(row: MatterVersion) -> Matter:
    """The Matter of a stored version. Versions are immutable, so the parsed object is kept,
    keyed by content hash (and the numbering), which stays right even for rolled-back rows."""
    key = (row.sha256, row.version, row.effective_from)
    with _cache_lock:
        matter = _cache.get(key)
        if matter is not None:
            _cache.move_to_end(key)
            return matter
    definition = MatterDefinition.model_validate({**row.definition, "version": row.version,
                                                  "effective_from": row.effective_from})
    matter = Matter(definition=definition, lifecycle=Lifecycle.model_validate(row.lifecycle))
    with _cache_lock:
        _cache[key] = matter
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return matter


# The version in force per (code, day), re-read at most every IN_FORCE_SECONDS: every submission
# needs it, and the stored row (definition and lifecycle as JSON) is the largest read of a
# submission. An administrator's new version reaches every process within that time (the
# routing index works the same way).
IN_FORCE_SECONDS = 2.0
_in_force: dict[tuple[str, date], tuple[float, Matter]] = {}
WROTE_VERSIONS = "wrote_matter_versions"


def _after_versions_commit(session: Session) -> None:
    session.info.pop(WROTE_VERSIONS, None)
    _in_force.clear()


def _missing(code: str, *, from_body: bool) -> Exception:
    if from_body:
        return UnknownMatter(detail=[{"field": "matter_code", "reason": "unknown"}])
    return MatterNotFound(detail={"matter_code": code})


def current_matter(session: Session, code: str, *, from_body: bool = False, on: date | None = None) -> Matter:
    """The version in force today (Asia/Shanghai): the highest version whose effective_from has
    come. 404 MatterNotFound, or 422 UnknownMatter with `from_body=True` (a code in a request body).

    A matter never stored yet (before the first sync) is served from its shipped file as version 1.
    """
    today = on or today_in_china()
    key = (code, today)
    cacheable = not session.info.get(WROTE_VERSIONS)
    remembered = _in_force.get(key) if cacheable else None
    if remembered is not None and time.monotonic() - remembered[0] < IN_FORCE_SECONDS:
        return remembered[1]
    row = repository.current_version(session, code=code, today=today)
    if row is not None:
        matter = _from_row(row)
        if cacheable:
            if len(_in_force) > _CACHE_SIZE:
                _in_force.clear()
            _in_force[key] = (time.monotonic(), matter)
        return matter
    if repository.latest_version(session, code=code) is None:
        shipped = default_catalogue().get(code)
        if shipped is not None:
            return shipped
    raise _missing(code, from_body=from_body)


def matter_version(session: Session, code: str, version: int) -> Matter:
    """Exactly this version (what a running case keeps). 404 MatterVersionNotFound if unknown."""
    row = repository.exact_version(session, code=code, version=version)
    if row is not None:
        return _from_row(row)
    if version == 1 and repository.latest_version(session, code=code) is None:
        shipped = default_catalogue().get(code)
        if shipped is not None:
            return shipped
    raise MatterVersionNotFound(detail={"matter_code": code, "version": version})


def _insert(session: Session, *, matter: Matter, version: int, sha256: str, created_by: str | None) -> MatterVersion:
    row = MatterVersion(code=matter.code, version=version, effective_from=matter.effective_from,
                        definition=canonical_definition(matter.definition),
                        lifecycle=canonical_lifecycle(matter.lifecycle), sha256=sha256, created_at=utcnow(),
                        created_by=created_by)
    session.add(row)
    session.flush()
    # This transaction reads around the cache (it holds versions others can't see yet, and may
    # roll back); once it commits, this process forgets what it remembered.
    if not session.info.get(WROTE_VERSIONS):
        session.info[WROTE_VERSIONS] = True
        event.listen(session, "after_commit", _after_versions_commit, once=True)
    return row


def _sync_one(session: Session, matter: Matter) -> tuple[str, MatterVersion]:
    sha256 = matter_sha256(matter)
    latest = repository.latest_version(session, code=matter.code)
    if latest is None:
        return "created", _insert(session, matter=matter, version=1, sha256=sha256, created_by=None)
    if latest.sha256 == sha256:
        return "unchanged", latest
    shipped = repository.latest_shipped_version(session, code=matter.code)
    if shipped is not None and shipped.sha256 == sha256:
        return "unchanged", latest  # the file hasn't changed since; an administrator's edit stays in force
    status = "superseded_edit" if latest.created_by is not None else "created"
    return status, _insert(session, matter=matter, version=latest.version + 1, sha256=sha256, created_by=None)


def sync_catalogue(session: Session, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Store the shipped files as versions: a new version for every matter whose file changed
    since it was last stored (idempotent; the caller commits). A changed file supersedes an
    administrator's later edit of that matter; those codes are listed under `superseded_edits`.
    Raises CatalogueError when a file is broken (nothing is stored then)."""
    catalogue = catalogue or ensure_catalogue_loads()
    repository.lock_catalogue(session)
    report: dict[str, Any] = {"created": [], "unchanged": 0, "superseded_edits": []}
    for code in sorted(catalogue.matters):
        status, row = _sync_one(session, catalogue.matters[code])
        if status == "unchanged":
            report["unchanged"] += 1
        else:
            report["created"].append(f"{code}@{row.version}")
            if status == "superseded_edit":
                report["superseded_edits"].append(code)
    return report


def save_matter_version(session: Session, *, code: str, data: Any, created_by: str,
                        today: date | None = None) -> tuple[Matter, bool]:
    """An administrator's edit: validate the full definition exactly like a file and store it as
    a new version. Returns (matter, created); the same definition and date again creates nothing.
    422 InvalidMatterDefinition lists every problem with its path."""
    today = today or today_in_china()
    problems: list[tuple[str, str]] = []
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key != "version"}  # the store numbers versions
        data.setdefault("code", code)
        if data["code"] != code:
            problems.append(("code", f"{data['code']!r} differs from the matter being edited ({code!r})"))
    matter, found = build_matter(data, default_lifecycles())
    problems.extend(found)
    if matter is not None and matter.effective_from < today:
        problems.append(("effective_from", f"{matter.effective_from.isoformat()} is in the past; a new version "
                                           f"takes effect today ({today.isoformat()}) or later"))
    if problems or matter is None:
        raise InvalidMatterDefinition(detail=[{"field": path, "reason": "invalid", "message": message}
                                              for path, message in problems])
    repository.lock_catalogue(session)
    latest = repository.latest_version(session, code=code)
    if latest is None:
        shipped = default_catalogue().get(code)
        if shipped is not None:  # store the shipped version first, so its number stays 1
            _, latest = _sync_one(session, shipped)
    sha256 = matter_sha256(matter)
    if latest is not None and latest.sha256 == sha256 and latest.effective_from == matter.effective_from:
        return _from_row(latest), False
    row = _insert(session, matter=matter, version=(latest.version + 1) if latest else 1, sha256=sha256,
                  created_by=created_by)
    return _from_row(row), True


def list_versions(session: Session, *, code: str, today: date | None = None) -> dict[str, Any]:
    """Every stored version of a matter, oldest first, marking the one in force."""
    rows = repository.versions(session, code=code)
    if not rows:
        shipped = default_catalogue().get(code)
        if shipped is None:
            raise MatterNotFound(detail={"matter_code": code})
        return {"code": code, "current_version": 1, "items": [{
            "version": 1, "effective_from": shipped.effective_from.isoformat(), "sha256": matter_sha256(shipped),
            "source": "file", "stored": False, "created_at": None, "created_by": None, "in_force": True,
            "definition": canonical_definition(shipped.definition)}]}
    current = repository.current_version(session, code=code, today=today or today_in_china())
    return {"code": code, "current_version": current.version if current else None, "items": [{
        "version": row.version, "effective_from": row.effective_from.isoformat(), "sha256": row.sha256,
        "source": "file" if row.created_by is None else "admin", "stored": True,
        "created_at": row.created_at.astimezone(CHINA).isoformat(), "created_by": row.created_by,
        "in_force": current is not None and row.id == current.id, "definition": row.definition} for row in rows]}


# ----------------------------------------------------------------------------- the catalogue API

def _current_matters(session: Session | None) -> list[Matter]:
    shipped = default_catalogue().matters
    if session is None:
        return [shipped[code] for code in sorted(shipped)]
    matters = {row.code: _from_row(row) for row in repository.current_versions(session, today=today_in_china())}
    stored = repository.stored_codes(session)
    for code, matter in shipped.items():
        if code not in stored:  # not synced yet: served from its file
            matters[code] = matter
    return [matters[code] for code in sorted(matters)]


def list_matters(session: Session | None = None, *, subject_kind: str | None = None, q: str | None = None,
                 cursor: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Matters in force, in code order, filtered by who may apply and by a name search."""
    after = str(decode_cursor(cursor)) if cursor else ""
    items = []
    for matter in _current_matters(session):
        definition = matter.definition
        if matter.code <= after:
            continue
        if subject_kind and subject_kind != "either" and definition.subject_kind not in (subject_kind, "either"):
            continue
        if q and q not in definition.name and q not in matter.code:
            continue
        items.append(matter)
    page = items[:limit]
    next_cursor = encode_cursor(page[-1].code) if len(items) > limit else None
    return {"items": [matter_view(matter) for matter in page], "next_cursor": next_cursor}


def matter_view(matter: Matter) -> dict[str, Any]:
    """The API's matter shape (API.md: Catalogue)."""
    d = matter.definition
    return {
        "code": d.code, "name": d.name, "type": d.type, "department": d.department, "category": d.category,
        "national_code": d.national_code, "subject_kind": d.subject_kind, "promise_kind": d.promise_kind,
        "legal_days": d.legal_days, "extension_days": d.extension_days, "promised_days": d.promised_days,
        "receive_levels": list(d.receive_levels), "handle_level": d.handle_level,
        "anywhere_in_county": d.anywhere_in_county, "fee": d.fee,
        "materials": [{"code": m.code, "name": m.name, "required": m.required, "certificate_type": m.certificate_type,
                       "note": m.note} for m in d.materials],
        "form_schema": d.form_schema, "certificate_type": d.certificate_type,
        "review_steps": [{"code": step.code, "label": step.label} for step in d.review_steps],
        "version": d.version, "effective_from": d.effective_from.isoformat(),
        "assumptions": list(d.assumptions), "sources": list(d.sources),
    }
