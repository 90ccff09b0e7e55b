"""The matter catalogue and service points (public to signed-in users and anonymous alike)."""

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from sqlmodel import Session

from api.deps import get_session
from api.errors import errors
from api.routing import SessionRoute
from services.matters import service as matters
from services.points import service as points
from services.regions.repository import get_region
from services.routing.service import UnknownRegion

router = APIRouter(tags=["catalogue"], route_class=SessionRoute)

RegionCode = Query(pattern=r"^\d{12}$", examples=["361130102201"], description="12-digit division code")


@router.get("/matters", summary="Matters someone in a region can apply for (the versions in force)",
            responses=errors(422))
def list_matters(region_code: str | None = Query(default=None, pattern=r"^\d{12}$"),
                 subject_kind: Literal["person", "organization", "either"] | None = None,
                 q: str | None = Query(default=None, max_length=50), cursor: str | None = Query(default=None, max_length=200),
                 session: Session = Depends(get_session)) -> dict[str, Any]:
    if region_code is not None and get_region(session, code=region_code) is None:
        raise UnknownRegion(detail=[{"field": "region_code", "reason": "unknown"}])
    return matters.list_matters(session, subject_kind=subject_kind, q=q, cursor=cursor)


@router.get("/matters/{code}", summary="One matter in force: materials, form schema, time limits, version",
            responses=errors(404))
def get_matter(code: str = Path(max_length=64, examples=["residence-certificate"]),
               session: Session = Depends(get_session)) -> dict[str, Any]:
    return matters.matter_view(matters.current_matter(session, code))


@router.get("/service-points", summary="Service points serving a region, nearest level first",
            responses=errors(422))
def service_points(region_code: str = RegionCode, session: Session = Depends(get_session)) -> dict[str, Any]:
    return {"items": points.points_serving(session, region_code=region_code), "next_cursor": None}
