"""The matter catalogue as the API shows it."""

from __future__ import annotations

from typing import Any

from services.errors import InvalidInput, NotFound
from services.pagination import decode_cursor, encode_cursor
from workflows.catalogue import Matter, default_catalogue


class MatterNotFound(NotFound):
    code = "matter_not_found"
    message = "事项不存在"


class UnknownMatter(InvalidInput):
    code = "unknown_matter"
    message = "事项编码不存在"


def get_matter(code: str) -> Matter:
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


def list_matters(*, subject_kind: str | None = None, q: str | None = None, cursor: str | None = None,
                 limit: int = 20) -> dict[str, Any]:
    """Matters in code order, filtered by who may apply and by a name search."""
    after = str(decode_cursor(cursor)) if cursor else ""
    items = []
    for code in sorted(default_catalogue().matters):
        matter = default_catalogue().matters[code]
        definition = matter.definition
        if code <= after:
            continue
        if subject_kind and definition.subject_kind not in (subject_kind, "either") and subject_kind != "either":
            continue
        if q and q not in definition.name and q not in code:
            continue
        items.append(matter)
    page = items[:limit]
    next_cursor = encode_cursor(page[-1].code) if len(items) > limit else None
    return {"items": [matter_view(matter) for matter in page], "next_cursor": next_cursor}


def matter_view(matter: Matter) -> dict[str, Any]:
    d = matter.definition
    return {
        "code": d.code, "name": d.name, "type": d.type, "department": d.department,
        "subject_kind": d.subject_kind, "promise_kind": d.promise_kind, "legal_days": d.legal_days,
        "promised_days": d.promised_days, "receive_levels": list(d.receive_levels), "handle_level": d.handle_level,
        "materials": [{"code": m.code, "name": m.name, "required": m.required, "certificate_type": m.certificate_type}
                      for m in d.materials],
        "form_schema": d.form_schema, "certificate_type": d.certificate_type, "version": d.version,
        "effective_from": d.effective_from.isoformat(), "assumptions": list(d.assumptions),
    }
