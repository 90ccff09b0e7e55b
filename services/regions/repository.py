"""Region queries. Read-only; nothing here writes, flushes or commits."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.regions.codes import is_region_code, structural_ancestors, subtree_prefix
from services.regions.models import Region

__all__ = ["get_region", "ancestors", "is_within", "children", "subtree_prefix", "count_active"]

_MAX_DEPTH = 16  # the tree has 5 levels; anything deeper is a cycle in bad data


def get_region(session: Session, *, code: str) -> Region | None:
    if not is_region_code(code):
        return None
    return session.get(Region, code)


def ancestors(session: Session, *, code: str) -> list[Region]:
    """The chain above `code`, root first, excluding `code` itself (inactive ones included).

    One query fetches the code and its structural candidates (the digits propose them); the
    result is then ordered and verified by walking `parent_code` up from the code, so a candidate
    that exists but is not on the chain is ignored and a missing level (东莞市's towns sit directly
    under the city) just shortens the chain. Only if the stored chain leaves the structural
    candidates (never in the statistical data) is each off-structure parent fetched on its own.
    [] for an unknown code.
    """
    if not is_region_code(code):
        return []
    wanted = [*structural_ancestors(code), code]
    rows = session.execute(select(Region).where(Region.code.in_(wanted))).scalars().all()
    by_code = {row.code: row for row in rows}
    node = by_code.get(code)
    if node is None:
        return []
    chain: list[Region] = []
    seen = {code}
    while node.parent_code and len(chain) < _MAX_DEPTH:
        parent_code = node.parent_code
        if parent_code in seen:  # a cycle in bad data: stop rather than loop
            break
        seen.add(parent_code)
        parent = by_code.get(parent_code)
        if parent is None:
            parent = session.get(Region, parent_code)
            if parent is None:  # dangling parent: the chain ends here
                break
        chain.append(parent)
        node = parent
    chain.reverse()
    return chain


def is_within(session: Session, *, code: str, ancestor_code: str) -> bool:
    """True if `ancestor_code` is on the stored parent chain of `code`, or is `code` itself."""
    if not (is_region_code(code) and is_region_code(ancestor_code)):
        return False
    if code == ancestor_code:
        return True
    return any(region.code == ancestor_code for region in ancestors(session, code=code))


def children(session: Session, *, parent_code: str, include_inactive: bool = False) -> list[Region]:
    """The regions whose parent is `parent_code`, by code."""
    if not is_region_code(parent_code):
        return []
    query = select(Region).where(Region.parent_code == parent_code)
    if not include_inactive:
        query = query.where(Region.active.is_(True))
    return list(session.execute(query.order_by(Region.code)).scalars().all())


def count_active(session: Session) -> int:
    return session.execute(
        select(func.count()).select_from(Region).where(Region.active.is_(True))
    ).scalar_one()
