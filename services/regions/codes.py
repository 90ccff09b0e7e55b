"""The 12-digit statistical division code (统计用区划代码), read by its digits alone.

    PP CC DD TTT VVV
    province PP0000000000, city PPCC00000000, county PPCCDD000000,
    town PPCCDDTTT000, village/community PPCCDDTTTVVV

The digits only *propose* a chain: some levels are missing in the real tree (东莞市 441900000000,
中山市 442000000000 and 儋州市 460400000000 have towns directly under the city), so the parent
chain stored in the database is the truth and these helpers give candidates. Pure functions, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["LEVELS", "is_region_code", "level_of", "structural_ancestors", "subtree_prefix"]

LEVELS: tuple[str, ...] = ("province", "city", "county", "town", "village")

# How many leading digits identify a code of each level; the rest are zeros.
_PREFIX_LENGTHS: dict[str, int] = {"province": 2, "city": 4, "county": 6, "town": 9, "village": 12}

_CODE_RE = re.compile(r"[0-9]{12}")  # ASCII digits only: str.isdigit() would accept "١٢٣"


def is_region_code(s: object) -> bool:
    """True for a string of exactly 12 ASCII digits."""
    return isinstance(s, str) and _CODE_RE.fullmatch(s) is not None


def _require_code(code: object) -> str:
    if not is_region_code(code):
        raise ValueError(f"not a 12-digit region code: {code!r}")
    return code  # type: ignore[return-value]


def level_of(code: str) -> str:
    """The level the digits say: the deepest non-zero segment. Raises ValueError for non-codes."""
    code = _require_code(code)
    for level in ("province", "city", "county", "town"):
        if code[_PREFIX_LENGTHS[level]:].strip("0") == "":
            return level
    return "village"


def subtree_prefix(code: str) -> str:
    """The prefix every descendant of `code` shares: county 361130000000 -> "361130".

    Cut by level, not by stripping zeros (county 361110000000 -> "361110", not "36111"). A city
    whose towns sit directly below it (441900000000 -> "4419") still works: its towns carry the
    city's four digits.
    """
    return code[: _PREFIX_LENGTHS[level_of(code)]]


def subtree_range(code: str) -> tuple[str, str]:
    """(low, high): the codes of `code`'s subtree are exactly those with low <= c < high, a
    comparison an index serves with bound values (a LIKE 'prefix%' pattern it serves only when
    the planner sees the value). County 361130000000 -> ("361130", "361131")."""
    prefix = subtree_prefix(code)
    following = str(int(prefix) + 1).zfill(len(prefix))
    # all nines: nothing follows at this length, and every 12-digit code sorts before 13 nines
    return prefix, following if len(following) == len(prefix) else "9" * 13


def structural_ancestors(code: str) -> list[str]:
    """Candidate ancestor codes from the digits, root first, excluding `code` itself.

    441900003000 (a town of 东莞市) -> ["440000000000", "441900000000"]: the empty county segment
    collapses onto the city. Raises ValueError for non-codes.
    """
    level = level_of(code)
    out: list[str] = []
    for above in LEVELS[: LEVELS.index(level)]:
        n = _PREFIX_LENGTHS[above]
        candidate = code[:n] + "0" * (12 - n)
        if candidate != code and candidate not in out:
            out.append(candidate)
    return out
