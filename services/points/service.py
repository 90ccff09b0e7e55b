"""Service points as the public catalogue shows them."""

from typing import Any

from sqlmodel import Session

from services.points.repository import active_points_in
from services.regions.repository import ancestors, get_region
from services.routing.service import InactiveRegion, UnknownRegion

_LEVEL_RANK = {"village": 0, "town": 1, "county": 2}


def points_serving(session: Session, *, region_code: str) -> list[dict[str, Any]]:
    """The points whose region contains this region, nearest level first."""
    region = get_region(session, code=region_code)
    if region is None:
        raise UnknownRegion(detail=[{"field": "region_code", "reason": "unknown"}])
    if not region.active:
        raise InactiveRegion(detail=[{"field": "region_code", "reason": "inactive"}])
    codes = [item.code for item in ancestors(session, code=region_code)] + [region_code]
    points = sorted(active_points_in(session, region_codes=codes), key=lambda p: (_LEVEL_RANK.get(p.level, 9), p.id))
    return [{"id": p.id, "name": p.name, "level": p.level, "region_code": p.region_code, "address": p.address,
             "hours": p.hours} for p in points]
