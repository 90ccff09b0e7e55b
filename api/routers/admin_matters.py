"""Administrators edit the matter catalogue: each edit is a new version with a date of effect."""

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Response
from sqlmodel import Session

from api.deps import get_session, require_admin
from api.errors import errors
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.matters import service as matters

router = APIRouter(prefix="/admin/matters", tags=["admin"], route_class=SessionRoute)

MatterCode = Path(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$", examples=["residence-certificate"])

EXAMPLE = {
    "code": "residence-certificate", "name": "居住证明开具", "type": "公共服务", "department": "村（居）民委员会",
    "category": "civil-affairs", "subject_kind": "person", "promise_kind": "promised", "legal_days": 5,
    "promised_days": 1, "receive_levels": ["village", "town", "county"], "handle_level": "village",
    "effective_from": "2027-01-01", "certificate_type": "residence-certificate",
    "materials": [{"code": "id-card", "name": "居民身份证"}],
    "form_schema": {"type": "object", "required": ["address"], "properties": {"address": {"type": "string"}}},
}



@router.put("/{code}", summary="Store a new version of a matter (validated like a catalogue file)",
            description="The body is a full matter definition, as in a file under workflows/catalogue/ "
                        "(JSON Schema: workflows/schema/matter.schema.json), with `effective_from` today or "
                        "later. 201 when a version was created, 200 when the same definition and date are "
                        "already the latest version. 422 lists every problem with its path in `detail`.",
            responses=errors(401, 403, 422))
def put_matter(response: Response, code: str = MatterCode,
               body: dict[str, Any] = Body(..., examples=[EXAMPLE]),
               principal: Principal = Depends(require_admin),
               session: Session = Depends(get_session)) -> dict[str, Any]:
    matter, created = matters.save_matter_version(session, code=code, data=body, created_by=principal.key)
    response.status_code = 201 if created else 200
    return matters.matter_view(matter)


@router.get("/{code}/versions", summary="Every version of a matter, oldest first, marking the one in force",
            responses=errors(401, 403, 404))
def matter_versions(code: str = MatterCode, _principal: Principal = Depends(require_admin),
                    session: Session = Depends(get_session)) -> dict[str, Any]:
    return matters.list_versions(session, code=code)
