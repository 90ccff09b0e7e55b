"""The in-memory routing index: every region's parent, name and status, and the active service
points by region and level. Deciding the handling point is then a pure function, fast enough for
the national tree (665k regions), with no query on the hot path.

Processes share nothing but the database, so a change to regions or points bumps a counter
(`mark_changed`) and every process rebuilds its index when it sees the counter move (checked at
most every CHECK_SECONDS, and at once in the process that made the change).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import event, text
from sqlmodel import Session

from services.sequences.repository import next_value

LEVEL_ORDER = ("village", "town", "county")
VERSION_COUNTER = "routing-index-version"
CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class PointRef:
    id: int
    name: str
    level: str
    region_code: str
    routing_mode: str


@dataclass(frozen=True)
class RegionRef:
    parent_code: str | None
    name: str
    active: bool


@dataclass(frozen=True)
class PointDecision:
    point: PointRef | None
    region: RegionRef | None
    skipped_levels: tuple[str, ...]  # levels that had no point on the applicant's chain
    point_region_name: str


class RoutingIndex:
    def __init__(self, *, regions: dict[str, RegionRef], points: dict[str, dict[str, PointRef]], version: int):
        self.regions = regions
        self.points = points  # region code -> level -> point
        self.version = version

    def chain(self, region_code: str) -> list[str]:
        """The region and its ancestors, nearest first."""
        chain = []
        code: str | None = region_code
        while code is not None and len(chain) < 8:
            chain.append(code)
            entry = self.regions.get(code)
            code = entry.parent_code if entry else None
        return chain

    def decide(self, *, handle_level: str, region_code: str) -> PointDecision:
        """The point at `handle_level` whose region contains `region_code`, else the next level
        up. Pure: no I/O."""
        region = self.regions.get(region_code)
        if region is None or not region.active:
            return PointDecision(point=None, region=region, skipped_levels=(), point_region_name="")
        chain = self.chain(region_code)
        skipped = []
        for level in LEVEL_ORDER[LEVEL_ORDER.index(handle_level):]:
            for code in chain:
                point = self.points.get(code, {}).get(level)
                if point is not None:
                    return PointDecision(point=point, region=region, skipped_levels=tuple(skipped),
                                         point_region_name=self.regions[code].name)
            skipped.append(level)
        return PointDecision(point=None, region=region, skipped_levels=tuple(skipped), point_region_name="")

    def county_of(self, region_code: str) -> str | None:
        """The county-level region on the chain of `region_code` (by its digits: the county
        segment is the 5th and 6th digit); where the tree has no county level (东莞市's towns sit
        under the city) the nearest region above the towns. None for an unknown code."""
        if region_code not in self.regions:
            return None
        chain = self.chain(region_code)
        for code in chain:
            if code[6:] == "000000" and code[4:6] != "00":
                return code
        above_towns = [code for code in chain if code[6:] == "000000"]
        return above_towns[0] if above_towns else chain[-1]

    def nearest(self, *, region_code: str, levels: tuple[str, ...] = LEVEL_ORDER) -> PointDecision:
        """The point nearest to the applicant among `levels`, not leaving the county: the
        village's station, else the town's centre, else the county's (全域通办: any point of the
        county may handle the matter). Pure: no I/O."""
        region = self.regions.get(region_code)
        if region is None or not region.active:
            return PointDecision(point=None, region=region, skipped_levels=(), point_region_name="")
        county = self.county_of(region_code)
        for code in self.chain(region_code):
            for level in LEVEL_ORDER:
                point = self.points.get(code, {}).get(level) if level in levels else None
                if point is not None:
                    nearer = LEVEL_ORDER[:LEVEL_ORDER.index(level)]
                    return PointDecision(point=point, region=region,
                                         skipped_levels=tuple(item for item in nearer if item in levels),
                                         point_region_name=self.regions[code].name)
            if code == county:
                break
        return PointDecision(point=None, region=region,
                             skipped_levels=tuple(level for level in LEVEL_ORDER if level in levels),
                             point_region_name="")


def _current_version(session: Session) -> int:
    row = session.execute(text("SELECT value FROM counters WHERE name = :name"), {"name": VERSION_COUNTER}).first()
    return int(row[0]) if row else 0


def build_index(session: Session) -> RoutingIndex:
    version = _current_version(session)
    regions = {code: RegionRef(parent, name, bool(active))
               for code, parent, name, active in session.execute(
                   text("SELECT code, parent_code, name, active FROM regions"))}
    points: dict[str, dict[str, PointRef]] = {}
    for point_id, name, level, region_code, mode in session.execute(text(
            "SELECT id, name, level, region_code, routing_mode FROM service_points WHERE active ORDER BY id")):
        points.setdefault(region_code, {}).setdefault(level, PointRef(point_id, name, level, region_code, mode))
    return RoutingIndex(regions=regions, points=points, version=version)


class _Cache:
    def __init__(self) -> None:
        self.index: RoutingIndex | None = None
        self.checked_at = 0.0
        self.lock = threading.Lock()


_cache = _Cache()


def get_index(session: Session) -> RoutingIndex:
    """This process's index, rebuilt when another process (or this one) changed regions or points."""
    now = time.monotonic()
    index = _cache.index
    if index is not None and now - _cache.checked_at < CHECK_SECONDS:
        return index
    with _cache.lock:
        if _cache.index is None or _current_version(session) != _cache.index.version:
            _cache.index = build_index(session)
        _cache.checked_at = now
        return _cache.index


def _recheck_soon(*_args) -> None:
    _cache.checked_at = 0.0


def mark_changed(session: Session) -> None:
    """Call in the transaction that changes regions or service points."""
    next_value(session, name=VERSION_COUNTER)
    if not session.info.get("routing_index_listener"):
        # this process re-checks at its next decision once the change is visible
        event.listen(session, "after_commit", _recheck_soon)
        session.info["routing_index_listener"] = True
