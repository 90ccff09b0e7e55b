"""Regions: code helpers, the importer and the tree queries, against the migrated test database.

Runs on SQLite by default and on PostgreSQL with ONESTOP_TEST_DATABASE_URL. Every test's writes
are rolled back by the `session` fixture (the importer never commits).
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.regions import repository as repo
from services.regions.codes import (LEVELS, is_region_code, level_of, structural_ancestors,
                                    subtree_prefix, subtree_range)
from services.regions.importer import (HEADER, ImportReport, InvalidRegionFile,
                                       default_regions_file, import_regions)
from services.regions.models import Region

JIANGXI_ROWS = 23_959
WUYUAN = "361130000000"  # 婺源县
SHANGRAO = "361100000000"  # 上饶市
JIANGXI = "360000000000"  # 江西省
NANCHANG = "360100000000"  # 南昌市
ZIYANG = "361130100000"  # 紫阳镇, a town of 婺源县
XIUXI = "361130100001"  # 绣溪居委会, a community of 紫阳镇


# --------------------------------------------------------------------------- helpers


def write_csv(path: Path, rows, *, header=HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def jiangxi_rows() -> list[list[str]]:
    with open(default_regions_file(), encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))[1:]


def snapshot(session) -> list[tuple]:
    return [tuple(row) for row in session.execute(sa.text(
        "SELECT code, name, level, parent_code, active FROM regions ORDER BY code"))]


def stored(session, code: str) -> tuple | None:
    row = session.execute(sa.text(
        "SELECT name, level, parent_code, active FROM regions WHERE code = :code"), {"code": code}).first()
    return None if row is None else (row[0], row[1], row[2], bool(row[3]))


SMALL = [  # a tiny tree used by the change and error tests
    ["360000000000", "江西省", "province", ""],
    ["361100000000", "上饶市", "city", "360000000000"],
    ["361130000000", "婺源县", "county", "361100000000"],
    ["361130100000", "紫阳镇", "town", "361130000000"],
    ["361130101000", "清华镇", "town", "361130000000"],
    ["361130100001", "绣溪居委会", "village", "361130100000"],
]


# --------------------------------------------------------------------------- codes (pure)


def test_region_code_shape():
    assert is_region_code("361130000000")
    assert not is_region_code("36113000000")  # 11 digits
    assert not is_region_code("3611300000000")
    assert not is_region_code("36113000000a")
    assert not is_region_code("３６１１３００００００００")  # full-width digits
    assert not is_region_code(361130000000)
    assert not is_region_code(None)


@pytest.mark.parametrize(("code", "level", "ancestors", "prefix"), [
    ("360000000000", "province", [], "36"),
    ("361100000000", "city", ["360000000000"], "3611"),
    ("361130000000", "county", ["360000000000", "361100000000"], "361130"),
    ("361110000000", "county", ["360000000000", "361100000000"], "361110"),  # not "36111"
    ("361130100000", "town", ["360000000000", "361100000000", "361130000000"], "361130100"),
    ("361130100001", "village",
     ["360000000000", "361100000000", "361130000000", "361130100000"], "361130100001"),
    # 东莞市: the empty county segment collapses onto the city
    ("441900003000", "town", ["440000000000", "441900000000"], "441900003"),
    ("441900003001", "village", ["440000000000", "441900000000", "441900003000"], "441900003001"),
    ("441900000000", "city", ["440000000000"], "4419"),
])
def test_structure(code, level, ancestors, prefix):
    assert level_of(code) == level
    assert structural_ancestors(code) == ancestors
    assert subtree_prefix(code) == prefix
    assert repo.subtree_prefix(code) == prefix
    assert code.startswith(prefix)


@pytest.mark.parametrize("code", [JIANGXI, NANCHANG, SHANGRAO, WUYUAN, ZIYANG, XIUXI, "999999000000"])
def test_a_subtree_is_a_range_of_codes(code):
    low, high = subtree_range(code)
    assert low == subtree_prefix(code)
    codes = [row[0] for row in jiangxi_rows()] + [code, "999999999999", "000000000000"]
    # the range holds exactly the codes that share the prefix, in byte order and in number order
    assert {c for c in codes if low <= c < high} == {c for c in codes if c.startswith(low)}
    assert all(len(c) == 12 and c.isdigit() for c in codes)


def test_structure_rejects_non_codes():
    for bad in ("", "36113000000", "abc"):
        with pytest.raises(ValueError):
            level_of(bad)
        with pytest.raises(ValueError):
            structural_ancestors(bad)
    assert LEVELS == ("province", "city", "county", "town", "village")


# --------------------------------------------------------------------------- the shipped file


def test_default_file_is_shipped_inside_the_project():
    path = default_regions_file()
    assert path.is_file()
    assert path.parent.parent == Path(repo.__file__).resolve().parent
    assert len(jiangxi_rows()) == JIANGXI_ROWS


def test_import_jiangxi(session, monkeypatch):
    commits: list[object] = []
    monkeypatch.setattr(session, "commit", lambda: commits.append("commit"))
    calls: list[tuple[int, int]] = []
    report = import_regions(session, default_regions_file(), progress=lambda done, total: calls.append((done, total)))

    assert report == ImportReport(rows=JIANGXI_ROWS, inserted=JIANGXI_ROWS, updated=0, unchanged=0,
                                  deactivated=0, reactivated=0)
    assert repo.count_active(session) == JIANGXI_ROWS
    levels = Counter(level for (level,) in session.execute(sa.text("SELECT level FROM regions")))
    assert levels == {"province": 1, "city": 11, "county": 100, "town": 1767, "village": 22080}

    # progress: batches, increasing, ending at (total, total)
    assert calls and calls[-1] == (JIANGXI_ROWS, JIANGXI_ROWS)
    assert all(total == JIANGXI_ROWS for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    wuyuan = repo.get_region(session, code=WUYUAN)
    assert wuyuan is not None and wuyuan.name == "婺源县" and wuyuan.level == "county"
    assert wuyuan.parent_code == SHANGRAO and wuyuan.active is True
    assert wuyuan.updated_at is not None
    assert repo.get_region(session, code="369999999999") is None
    assert repo.get_region(session, code="not-a-code") is None

    # services never commit: the caller (the CLI, a request) does
    assert commits == []


def test_ancestors_and_within(session):
    import_regions(session, default_regions_file())

    assert [r.name for r in repo.ancestors(session, code=WUYUAN)] == ["江西省", "上饶市"]
    village = repo.ancestors(session, code=XIUXI)
    assert [r.level for r in village] == ["province", "city", "county", "town"]
    assert [r.code for r in village] == [JIANGXI, SHANGRAO, WUYUAN, ZIYANG]
    assert [r.name for r in village] == ["江西省", "上饶市", "婺源县", "紫阳镇"]
    assert repo.ancestors(session, code=JIANGXI) == []
    assert repo.ancestors(session, code="369999999999") == []  # unknown
    assert repo.ancestors(session, code="junk") == []

    assert repo.is_within(session, code=XIUXI, ancestor_code=JIANGXI)
    assert repo.is_within(session, code=XIUXI, ancestor_code=SHANGRAO)
    assert repo.is_within(session, code=XIUXI, ancestor_code=WUYUAN)
    assert repo.is_within(session, code=XIUXI, ancestor_code=ZIYANG)
    assert repo.is_within(session, code=WUYUAN, ancestor_code=WUYUAN)  # itself
    assert not repo.is_within(session, code=XIUXI, ancestor_code=NANCHANG)  # another city
    assert not repo.is_within(session, code=WUYUAN, ancestor_code=XIUXI)  # the wrong way round
    assert not repo.is_within(session, code=WUYUAN, ancestor_code="361130101000")  # a town below it
    assert not repo.is_within(session, code="369999999999", ancestor_code=JIANGXI)  # unknown
    assert not repo.is_within(session, code=WUYUAN, ancestor_code="junk")


def test_children(session):
    import_regions(session, default_regions_file())
    expected = sorted(row[0] for row in jiangxi_rows() if row[3] == WUYUAN)
    towns = repo.children(session, parent_code=WUYUAN)
    assert len(towns) == len(expected) == 17
    assert [t.code for t in towns] == expected
    assert {t.level for t in towns} == {"town"}
    assert towns[0].name == "蚺城街道" and "紫阳镇" in {t.name for t in towns}
    assert [r.code for r in repo.children(session, parent_code="")] == []
    assert len(repo.children(session, parent_code=JIANGXI)) == 11
    # every descendant shares the subtree prefix
    prefix = repo.subtree_prefix(WUYUAN)
    under = session.execute(sa.select(sa.func.count()).select_from(Region)
                            .where(Region.code.like(prefix + "%"))).scalar_one()
    assert under == sum(1 for row in jiangxi_rows() if row[0].startswith("361130"))


# --------------------------------------------------------------------------- repeat and changes


def test_reimport_unchanged_writes_nothing(session):
    import_regions(session, default_regions_file())
    before = session.execute(sa.text("SELECT updated_at FROM regions WHERE code = :c"), {"c": XIUXI}).scalar_one()
    report = import_regions(session, default_regions_file())
    assert report == ImportReport(rows=JIANGXI_ROWS, inserted=0, updated=0, unchanged=JIANGXI_ROWS,
                                  deactivated=0, reactivated=0)
    after = session.execute(sa.text("SELECT updated_at FROM regions WHERE code = :c"), {"c": XIUXI}).scalar_one()
    assert after == before
    assert repo.count_active(session) == JIANGXI_ROWS


def test_modified_file_updates_deactivates_inserts_and_reactivates(session, tmp_path):
    import_regions(session, default_regions_file())
    wuyuan = repo.get_region(session, code=WUYUAN)  # loaded before the bulk changes
    rows = jiangxi_rows()
    removed = "361130100002"  # 弦高居委会
    added = ["361130100999", "新设社区", "village", ZIYANG]
    modified = []
    for row in rows:
        if row[0] == removed:
            continue
        if row[0] == WUYUAN:
            row = [WUYUAN, "婺源县（改）", "county", SHANGRAO]
        modified.append(row)
    modified.append(added)
    path = write_csv(tmp_path / "modified.csv", modified)

    report = import_regions(session, path)
    assert report == ImportReport(rows=JIANGXI_ROWS, inserted=1, updated=1, unchanged=JIANGXI_ROWS - 2,
                                  deactivated=1, reactivated=0)
    assert wuyuan.name == "婺源县（改）"  # loaded objects are expired, not stale
    assert stored(session, removed) == ("弦高居委会", "village", ZIYANG, False)  # kept, inactive
    assert stored(session, added[0]) == ("新设社区", "village", ZIYANG, True)
    assert repo.count_active(session) == JIANGXI_ROWS
    villages = {r.code for r in repo.children(session, parent_code=ZIYANG)}
    assert removed not in villages and added[0] in villages
    assert removed in {r.code for r in repo.children(session, parent_code=ZIYANG, include_inactive=True)}
    assert repo.ancestors(session, code=removed)[-1].code == ZIYANG  # retired codes keep their chain

    # the original file again: the removed code comes back, the added one goes, the name reverts
    report = import_regions(session, default_regions_file())
    assert report == ImportReport(rows=JIANGXI_ROWS, inserted=0, updated=1, unchanged=JIANGXI_ROWS - 2,
                                  deactivated=1, reactivated=1)
    assert stored(session, removed) == ("弦高居委会", "village", ZIYANG, True)
    assert stored(session, added[0]) == ("新设社区", "village", ZIYANG, False)
    assert stored(session, WUYUAN) == ("婺源县", "county", SHANGRAO, True)


def test_small_file_changes_of_level_and_parent(session, tmp_path):
    report = import_regions(session, write_csv(tmp_path / "a.csv", SMALL))
    assert report == ImportReport(rows=6, inserted=6, updated=0, unchanged=0, deactivated=0, reactivated=0)
    moved = [row[:] for row in SMALL]
    moved[5][3] = "361130101000"  # 绣溪居委会 moves to 清华镇
    report = import_regions(session, write_csv(tmp_path / "b.csv", moved))
    assert report == ImportReport(rows=6, inserted=0, updated=1, unchanged=5, deactivated=0, reactivated=0)
    assert [r.code for r in repo.ancestors(session, code=XIUXI)][-1] == "361130101000"


def test_gzip_file(session, tmp_path):
    path = tmp_path / "small.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADER)
        writer.writerows(SMALL)
    report = import_regions(session, path)
    assert report.rows == report.inserted == 6
    assert [r.name for r in repo.ancestors(session, code=XIUXI)] == ["江西省", "上饶市", "婺源县", "紫阳镇"]


def test_byte_order_mark_and_blank_lines_are_accepted(session, tmp_path):
    path = tmp_path / "bom.csv"
    lines = ["code,name,level,parent_code"] + [",".join(row) for row in SMALL[:3]] + ["", ""]
    path.write_bytes(("\ufeff" + "\r\n".join(lines)).encode("utf-8"))
    assert import_regions(session, path).inserted == 3


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(("name", "content", "line", "reason"), [
    ("missing header", [SMALL[0], SMALL[1]], 1, "missing_header"),
    ("wrong header", [["code", "name", "level"], *SMALL], 1, "missing_header"),
    ("eleven digits", [SMALL[0], SMALL[1], ["36113000000", "婺源县", "county", SHANGRAO]], 4, "invalid_code"),
    ("unknown level", [SMALL[0], SMALL[1], [WUYUAN, "婺源县", "district", SHANGRAO]], 4, "unknown_level"),
    ("empty name", [SMALL[0], SMALL[1], [WUYUAN, "  ", "county", SHANGRAO]], 4, "empty_name"),
    ("duplicate code", [*SMALL, [WUYUAN, "婺源县", "county", SHANGRAO]], 8, "duplicate_code"),
    ("dangling parent", [SMALL[0], SMALL[1], [WUYUAN, "婺源县", "county", "361200000000"]], 4, "unknown_parent"),
    ("parent not above", [*SMALL[:4], ["361130101000", "清华镇", "town", ZIYANG]], 6, "parent_level"),
    ("parent cycle", [SMALL[0], ["361100000000", "上饶市", "city", "361200000000"],
                      ["361200000000", "鹰潭市", "city", "361100000000"]], 3, "parent_level"),
    ("bad parent code", [SMALL[0], [SHANGRAO, "上饶市", "city", "36"]], 3, "invalid_parent_code"),
    ("missing parent", [SMALL[0], [SHANGRAO, "上饶市", "city", ""]], 3, "missing_parent"),
    ("column count", [SMALL[0], [SHANGRAO, "上饶市", "city"]], 3, "wrong_column_count"),
    ("header only", [], 2, "no_rows"),
])
def test_bad_files_are_rejected_and_change_nothing(session, tmp_path, name, content, line, reason):
    import_regions(session, write_csv(tmp_path / "base.csv", SMALL))
    before = snapshot(session)
    header = None if reason == "missing_header" else HEADER
    path = write_csv(tmp_path / "bad.csv", content, header=header)

    with pytest.raises(InvalidRegionFile) as caught:
        import_regions(session, path)

    error = caught.value
    assert error.code == "invalid_region_file" and error.status_code == 422
    assert error.detail["line"] == line, error.detail
    assert error.detail["reason"] == reason, error.detail
    assert f"第 {line} 行" in error.message
    assert snapshot(session) == before  # nothing written, and the session is still usable


def test_duplicate_reports_the_first_line(session, tmp_path):
    path = write_csv(tmp_path / "dup.csv", [*SMALL, SMALL[2]])
    with pytest.raises(InvalidRegionFile) as caught:
        import_regions(session, path)
    assert caught.value.detail == {"line": 8, "reason": "duplicate_code", "code": WUYUAN, "first_line": 4}


def test_dangling_parent_reports_the_first_offending_row(session, tmp_path):
    rows = [*SMALL, ["361130102000", "秋口镇", "town", "361199000000"],
            ["361130103000", "江湾镇", "town", "361198000000"]]
    with pytest.raises(InvalidRegionFile) as caught:
        import_regions(session, write_csv(tmp_path / "dangling.csv", rows))
    assert caught.value.detail["line"] == 8
    assert caught.value.detail["parent_code"] == "361199000000"
    assert repo.count_active(session) == 0


def test_parent_already_in_the_database_is_accepted(session, tmp_path):
    import_regions(session, write_csv(tmp_path / "base.csv", SMALL))
    # a file of just one county's subtree: its parent (the city) is only in the database.
    # (Everything outside the file is deactivated, as for any import.)
    report = import_regions(session, write_csv(tmp_path / "part.csv", SMALL[2:]))
    assert report.unchanged == 4 and report.deactivated == 2
    assert [r.code for r in repo.ancestors(session, code=XIUXI)] == [JIANGXI, SHANGRAO, WUYUAN, ZIYANG]


def test_not_utf8_is_rejected(session, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("code,name,level,parent_code\n360000000000,江西省,province,\n".encode("gbk"))
    with pytest.raises(InvalidRegionFile) as caught:
        import_regions(session, path)
    assert caught.value.detail["reason"] == "not_utf8"
    assert repo.count_active(session) == 0


# --------------------------------------------------------------------------- missing levels


def test_town_directly_under_a_city(session, tmp_path):
    """东莞市 has no county level: its towns' parent is the city itself."""
    rows = [
        ["440000000000", "广东省", "province", ""],
        ["441900000000", "东莞市", "city", "440000000000"],
        ["441900003000", "东城街道", "town", "441900000000"],
        ["441900003001", "花园新村社区居委会", "village", "441900003000"],
        ["440100000000", "广州市", "city", "440000000000"],
        ["440103000000", "荔湾区", "county", "440100000000"],
        ["440103001000", "沙面街道", "town", "440103000000"],
    ]
    import_regions(session, write_csv(tmp_path / "dongguan.csv", rows))

    assert [r.code for r in repo.ancestors(session, code="441900003001")] == \
        ["440000000000", "441900000000", "441900003000"]
    assert [r.level for r in repo.ancestors(session, code="441900003001")] == ["province", "city", "town"]
    assert [r.name for r in repo.ancestors(session, code="441900003000")] == ["广东省", "东莞市"]
    assert repo.is_within(session, code="441900003001", ancestor_code="441900000000")
    assert not repo.is_within(session, code="441900003001", ancestor_code="440100000000")
    assert [r.code for r in repo.children(session, parent_code="441900000000")] == ["441900003000"]
    assert repo.subtree_prefix("441900000000") == "4419"
    assert [r.level for r in repo.ancestors(session, code="440103001000")] == ["province", "city", "county"]


def test_stored_chain_wins_over_the_digits(session, tmp_path):
    """A parent the digits would not propose (never in the statistical data) is still followed."""
    rows = [
        *SMALL,
        ["361199000000", "某新区", "county", SHANGRAO],
        ["361130102000", "秋口镇", "town", "361199000000"],  # digits say 婺源县, the file says 某新区
    ]
    import_regions(session, write_csv(tmp_path / "moved.csv", rows))
    assert [r.code for r in repo.ancestors(session, code="361130102000")] == \
        [JIANGXI, SHANGRAO, "361199000000"]
    assert repo.is_within(session, code="361130102000", ancestor_code="361199000000")
    assert not repo.is_within(session, code="361130102000", ancestor_code=WUYUAN)
