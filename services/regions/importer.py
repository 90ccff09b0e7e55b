"""Import a division-code file (`code,name,level,parent_code`, plain or .csv.gz) into `regions`.

The import is an upsert of the whole tree: new codes are inserted, changed names/levels/parents
updated, codes missing from the file marked inactive (never deleted: old cases still point at
them), and codes that come back reactivated. The whole file is validated before anything is
written. Nothing here commits: the work joins the caller's transaction (the CLI commits).

Speed (the national file has 665,271 rows): no ORM objects per row. The rows are bulk-loaded
into a temporary staging table (PostgreSQL: COPY; SQLite: executemany) and merged with three
set-based statements: count, upsert of the new/changed rows only, deactivate the absent ones.
A repeat import of an unchanged file therefore writes nothing to `regions`.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.db import UTCDateTime, utcnow
from services.errors import InvalidInput
from services.regions.codes import LEVELS, is_region_code
from services.regions.models import Region

__all__ = ["ImportReport", "InvalidRegionFile", "import_regions", "default_regions_file", "HEADER"]

HEADER = ("code", "name", "level", "parent_code")
NAME_MAX_LENGTH = 100
BATCH_SIZE = 20_000  # rows per COPY/executemany batch, and per progress report
_LOOKUP_CHUNK = 500  # codes per IN (...) when checking parents against the database
_STAGING = "_regions_import"

Row = tuple[str, str, str, "str | None"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportReport:
    rows: int  # data rows in the file
    inserted: int  # new codes
    updated: int  # active codes whose name, level or parent changed
    unchanged: int  # active codes with nothing to change
    deactivated: int  # active codes absent from the file, now active=false
    reactivated: int  # inactive codes present in the file again (their fields updated too)


class InvalidRegionFile(InvalidInput):
    code = "invalid_region_file"
    message = "区划代码文件不合法"


def default_regions_file() -> Path:
    """The region file shipped with the project: 江西省, 2023 edition."""
    return Path(__file__).resolve().parent / "data" / "jiangxi-2023.csv"


def import_regions(session: Session, path: Path, *, progress: Progress | None = None) -> ImportReport:
    """Validate `path`, then upsert it into `regions` inside the session's transaction.

    Raises InvalidRegionFile (detail {"line": n, "reason": ...}) before writing anything.
    `progress(done, total)` is called once per staged batch of rows (the last call has
    done == total; the set-based merge that follows is a few statements).
    """
    path = Path(path)
    rows, lines = _read_file(path)
    _check_parents(session, rows, lines)
    del lines

    session.flush()  # the caller's pending changes go first, into the same transaction
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # A savepoint: if the merge fails, the caller's transaction is still usable.
        with session.begin_nested():
            report = _merge(session.connection(), rows, progress, _load_postgresql)
    elif dialect == "sqlite":
        # No savepoint: on an engine left with pysqlite's default transaction handling (not
        # services.db.make_engine, which emits BEGIN itself) an outermost SAVEPOINT's RELEASE
        # would commit. Plain statements stay in the caller's transaction either way.
        report = _merge(connection, rows, progress, _load_sqlite)
    else:  # pragma: no cover - the project runs on SQLite and PostgreSQL only
        raise NotImplementedError(f"region import is not implemented for {dialect}")

    # Bulk SQL bypassed the identity map: make loaded Region objects re-read their rows.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Region):
            session.expire(obj)
    return report


# --------------------------------------------------------------------------- reading / validation


def _fail(line: int, reason: str, message: str, **extra: object) -> NoReturn:
    raise InvalidRegionFile(f"区划代码文件第 {line} 行：{message}",
                            detail={"line": line, "reason": reason, **extra})


def _open(path: Path) -> TextIO:
    # utf-8-sig: a byte-order mark (files saved by Excel) is not part of the header.
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")  # type: ignore[return-value]
    return open(path, encoding="utf-8-sig", newline="")


def _read_file(path: Path) -> tuple[list[Row], dict[str, int]]:
    """All data rows, plus each code's line number. Raises InvalidRegionFile on the first bad row."""
    with _open(path) as stream:
        reader = csv.reader(stream)
        try:
            rows, lines = _parse(reader)
        except UnicodeDecodeError:
            _fail(reader.line_num + 1, "not_utf8", "不是 UTF-8 编码的文本")
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            _fail(reader.line_num + 1, "unreadable", f"文件无法读取（{error}）")
        except csv.Error as error:
            _fail(reader.line_num, "bad_csv", f"CSV 格式错误（{error}）")
    return rows, lines


def _parse(reader) -> tuple[list[Row], dict[str, int]]:
    header = next(reader, None)
    if header is None or tuple(field.strip() for field in header) != HEADER:
        _fail(1, "missing_header", "第一行必须是表头 " + ",".join(HEADER))

    levels = {level: level for level in LEVELS}  # share one string object per level
    rows: list[Row] = []
    lines: dict[str, int] = {}
    line_num = reader.line_num
    for record in reader:
        line = line_num + 1  # the record's first physical line (quoted fields may span lines)
        line_num = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line
        if len(record) != 4:
            _fail(line, "wrong_column_count", f"应有 4 列，实有 {len(record)} 列",
                  columns=len(record))
        code, name, level_text, parent_text = (field.strip() for field in record)
        if not is_region_code(code):
            _fail(line, "invalid_code", f"代码必须是 12 位数字：{code!r}", value=code)
        if not name:
            _fail(line, "empty_name", "名称为空", code=code)
        if len(name) > NAME_MAX_LENGTH:
            _fail(line, "name_too_long", f"名称超过 {NAME_MAX_LENGTH} 字", code=code)
        level = levels.get(level_text)
        if level is None:
            _fail(line, "unknown_level", f"未知层级 {level_text!r}（应为 {'|'.join(LEVELS)}）",
                  value=level_text)
        parent = parent_text or None
        if parent is not None and not is_region_code(parent):
            _fail(line, "invalid_parent_code", f"上级代码必须是 12 位数字：{parent!r}", value=parent)
        if parent is None and level != "province":
            _fail(line, "missing_parent", f"{level} 层级必须有上级代码", code=code)
        if parent is not None and level == "province":
            _fail(line, "unexpected_parent", "省级区划不应有上级代码", code=code)
        if parent == code:
            _fail(line, "self_parent", "上级代码不能是自身", code=code)
        first = lines.setdefault(code, line)
        if first != line:
            _fail(line, "duplicate_code", f"代码 {code} 重复（第 {first} 行已出现）",
                  code=code, first_line=first)
        rows.append((code, name, level, parent))

    if not rows:
        # An empty file would mark every region inactive: certainly a mistake.
        _fail(line_num + 1, "no_rows", "文件没有数据行")
    return rows, lines


def _check_parents(session: Session, rows: list[Row], lines: dict[str, int]) -> None:
    """Every parent_code must be a code in the file or already in the database, and of a higher
    level than its child (levels may be skipped: 东莞市's towns; cycles cannot pass)."""
    rank = {level: i for i, level in enumerate(LEVELS)}
    parent_level = {code: level for code, _, level, _ in rows}
    outside = {parent for _, _, _, parent in rows if parent is not None and parent not in parent_level}
    wanted = sorted(outside)
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start:start + _LOOKUP_CHUNK]
        query = sa.select(Region.code, Region.level).where(Region.code.in_(chunk))
        parent_level.update((code, level) for code, level in session.execute(query))
    for code, _, level, parent in rows:  # report the first offending row in file order
        if parent is None:
            continue
        above = parent_level.get(parent)
        if above is None:
            _fail(lines[code], "unknown_parent", f"上级代码 {parent} 既不在文件中也不在数据库中",
                  code=code, parent_code=parent)
        if rank.get(above, len(LEVELS)) >= rank[level]:
            _fail(lines[code], "parent_level", f"上级 {parent}（{above}）的层级不高于本级（{level}）",
                  code=code, parent_code=parent)


# --------------------------------------------------------------------------- writing


def _report_batches(rows: list[Row], progress: Progress | None):
    total = len(rows)
    for start in range(0, total, BATCH_SIZE):
        yield rows[start:start + BATCH_SIZE]
        if progress is not None:
            progress(min(start + BATCH_SIZE, total), total)


def _load_postgresql(connection: Connection, rows: list[Row], progress: Progress | None) -> None:
    raw = connection.connection.driver_connection  # psycopg 3, inside the session's transaction
    with raw.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING}")
        cursor.execute(
            f"CREATE TEMP TABLE {_STAGING} (code varchar(12) NOT NULL, name text NOT NULL, "
            "level text NOT NULL, parent_code varchar(12)) ON COMMIT DROP"
        )
        with cursor.copy(f"COPY {_STAGING} (code, name, level, parent_code) FROM STDIN") as copy:
            for batch in _report_batches(rows, progress):
                for row in batch:
                    copy.write_row(row)
        cursor.execute(f"ANALYZE {_STAGING}")  # row estimates for the hash joins below


def _load_sqlite(connection: Connection, rows: list[Row], progress: Progress | None) -> None:
    raw = connection.connection.driver_connection  # sqlite3, same connection as the session
    cursor = raw.cursor()
    try:
        cursor.execute(f"DROP TABLE IF EXISTS temp.{_STAGING}")
        cursor.execute(
            f"CREATE TEMP TABLE {_STAGING} (code TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, "
            "level TEXT NOT NULL, parent_code TEXT) WITHOUT ROWID"
        )
        insert = f"INSERT INTO temp.{_STAGING} (code, name, level, parent_code) VALUES (?, ?, ?, ?)"
        for batch in _report_batches(rows, progress):
            cursor.executemany(insert, batch)
    finally:
        cursor.close()


def _merge(connection: Connection, rows: list[Row], progress: Progress | None, load) -> ImportReport:
    postgres = connection.dialect.name == "postgresql"
    load(connection, rows, progress)

    # Null-safe "differs" (parent_code is NULL for provinces); SQLite < 3.39 lacks IS DISTINCT FROM.
    differs = "IS DISTINCT FROM" if postgres else "IS NOT"
    true, false = ("true", "false") if postgres else ("1", "0")

    def changed(old: str, new: str) -> str:
        return "(" + " OR ".join(f"{old}.{column} {differs} {new}.{column}"
                                 for column in ("name", "level", "parent_code")) + ")"

    row_changed = changed("r", "i")
    now = sa.bindparam("now", utcnow(), type_=UTCDateTime())

    counts = connection.execute(sa.text(
        "SELECT"
        " COALESCE(SUM(CASE WHEN r.code IS NULL THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN r.active = {false} THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN r.active = {true} AND {row_changed} THEN 1 ELSE 0 END), 0)"
        f" FROM {_STAGING} i LEFT JOIN regions r ON r.code = i.code"
    )).one()
    inserted, reactivated, updated = (int(value) for value in counts)

    changed_on_conflict = changed("regions", "excluded")
    # Only new, changed or returning rows reach the upsert: a repeat import writes nothing.
    # (The DO UPDATE ... WHERE repeats the test in case a concurrent import got there first.)
    connection.execute(sa.text(
        "INSERT INTO regions (code, name, level, parent_code, active, updated_at)"
        f" SELECT i.code, i.name, i.level, i.parent_code, {true}, :now"
        f" FROM {_STAGING} i LEFT JOIN regions r ON r.code = i.code"
        f" WHERE r.code IS NULL OR r.active = {false} OR {row_changed}"
        " ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level,"
        f" parent_code = excluded.parent_code, active = {true}, updated_at = excluded.updated_at"
        f" WHERE regions.active = {false} OR {changed_on_conflict}"
    ).bindparams(now))

    deactivated = connection.execute(sa.text(
        f"UPDATE regions SET active = {false}, updated_at = :now"
        f" WHERE active = {true}"
        f" AND NOT EXISTS (SELECT 1 FROM {_STAGING} i WHERE i.code = regions.code)"
    ).bindparams(now)).rowcount

    connection.execute(sa.text(f"DROP TABLE {_STAGING}"))
    total = len(rows)
    return ImportReport(rows=total, inserted=inserted, updated=updated,
                        unchanged=total - inserted - updated - reactivated,
                        deactivated=deactivated, reactivated=reactivated)
