"""Uploaded materials: streamed to storage under a size limit, type detected from the bytes,
SHA-256; readable only by the uploader and by those who may see the case (or the consent)
that uses the file; deleted when nothing uses it a day after the upload."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, literal_column, select, update
from sqlmodel import Session

from services.accounts.principal import Principal
from services.config import get_settings
from services.db import Write, records, utcnow, write_guarded
from services.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from services.files.models import StoredFile
from services.files.storage import get_storage
from services.outbox.models import OutboxJob
from services.sla.calendar import CHINA

log = logging.getLogger("onestop.files")

# How long an upload may wait to be attached to a case (or kept by a consent) before it is deleted.
UNATTACHED_LIFETIME = timedelta(days=1)
_HEAD = 16


class FileTooLarge(PayloadTooLarge):
    code = "file_too_large"
    message = "文件超过大小限制"


class FileTypeNotAllowed(UnsupportedMediaType):
    code = "file_type_not_allowed"
    message = "只接受 PDF、JPEG、PNG 文件"


class FileNotFound(NotFound):
    code = "file_not_found"
    message = "文件不存在"


def detect_content_type(head: bytes) -> str | None:
    """The type the bytes are, from their signature (never from the name or the declared type):
    `%PDF-<digit>.`, JPEG's SOI followed by a marker, PNG's 8-byte signature."""
    if head.startswith(b"%PDF-") and len(head) >= 8 and head[5:6].isdigit() and head[6:7] == b".":
        return "application/pdf"
    if head.startswith(b"\xff\xd8\xff") and len(head) >= 4 and head[3] >= 0xC0:
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def store_upload(session: Session, *, principal: Principal, chunks: Iterable[bytes]) -> StoredFile:
    """Stream an upload into storage, refusing it as soon as it passes the size limit or its
    first bytes are not a PDF, JPEG or PNG (nothing is left behind either way)."""
    limit = get_settings().upload_max_bytes
    digest = hashlib.sha256()
    seen = {"size": 0, "type": None}

    def checked() -> Iterator[bytes]:
        head = b""
        source = iter(chunks)
        for chunk in source:
            head += chunk
            if len(head) >= _HEAD:
                break
        if not head:
            raise InvalidInput("文件为空", detail=[{"field": "file", "reason": "empty"}])
        seen["type"] = detect_content_type(head[:64])
        if seen["type"] is None:
            raise FileTypeNotAllowed()
        for chunk in _chain(head, source):
            seen["size"] += len(chunk)
            if seen["size"] > limit:
                raise FileTooLarge(detail={"limit_bytes": limit})
            digest.update(chunk)
            yield chunk

    file_id = str(uuid.uuid4())
    key = f"files/{file_id[:2]}/{file_id}"
    get_storage().put_stream(key, checked())
    now = utcnow()
    record = StoredFile(id=file_id, sha256=digest.hexdigest(), size=seen["size"], content_type=seen["type"],
                        storage_key=key, uploader=principal.key, created_at=now)
    session.add(record)
    # The clean-up is decided now: a job that runs once the file has had its day.
    session.add(OutboxJob(kind="files_expire", payload={"file_id": file_id}, dedupe_key=f"files_expire:{file_id}",
                          run_after=now + UNATTACHED_LIFETIME))
    session.flush()
    return record


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def own_unattached_files(session: Session, *, principal: Principal, file_ids: list[str]) -> dict[str, Any]:
    """Of these ids, the files the caller uploaded and that no case or consent uses yet (to
    attach them), by id: records (id, uploader, case_id, kept_by) read in one statement. An id
    missing from the answer is unknown or not the caller's to attach."""
    if not file_ids:
        return {}
    rows = records(session.execute(_OWN_FILES, {"ids": file_ids}))
    return {row.id: row for row in rows if _attachable_by(row, principal)}


def get_own_unattached_file(session: Session, *, principal: Principal, file_id: str) -> StoredFile:
    """A file the caller uploaded and that no case or consent uses yet (to attach it)."""
    record = session.get(StoredFile, file_id)
    if record is None or not _attachable_by(record, principal):
        raise FileNotFound(detail={"file_id": file_id})
    return record


def _attachable_by(file, principal: Principal) -> bool:
    return file.uploader == principal.key and file.case_id is None and not file.kept_by


def can_read(session: Session, *, principal: Principal, record: StoredFile) -> bool:
    """The uploader; whoever may see the case that uses the file (its staff, its applicant, the
    helper who filed it); whoever may see the consent that keeps it."""
    if record.uploader == principal.key:
        return True
    if record.case_id is not None:
        from services.cases.repository import get_visible_case

        if get_visible_case(session, case_id=record.case_id, principal=principal) is not None:
            return True
    if record.kept_by and record.kept_by.startswith("consent:"):
        from services.consents.service import consent_visible

        return consent_visible(session, principal=principal, consent_id=record.kept_by.split(":", 1)[1])
    return False


def get_readable_file(session: Session, *, principal: Principal, file_id: str) -> StoredFile:
    """The file if the caller may read it; 404 otherwise (whether or not it exists)."""
    record = session.get(StoredFile, file_id)
    if record is None or not can_read(session, principal=principal, record=record):
        raise FileNotFound()
    return record


def file_view(record: StoredFile) -> dict:
    return {"id": record.id, "sha256": record.sha256, "size": record.size, "content_type": record.content_type,
            "created_at": record.created_at.astimezone(CHINA).isoformat(), "case_id": record.case_id,
            "attached": record.case_id is not None or bool(record.kept_by)}


def open_content(record: StoredFile) -> Iterator[bytes]:
    return get_storage().open_stream(record.storage_key)


def expire_if_unattached(session: Session, *, file_id: str) -> bool:
    """Delete an upload that nothing uses (row, then bytes). Returns whether it was deleted."""
    record = session.get(StoredFile, file_id)
    if record is None or record.case_id is not None or record.kept_by:
        return False
    from sqlalchemy import exists, select

    from services.cases.models import CaseMaterial

    if session.execute(select(exists().where(CaseMaterial.file_id == file_id))).scalar():
        return False  # referenced although not marked: keep it, it is evidence
    session.delete(record)
    session.flush()
    get_storage().delete(record.storage_key)
    log.info("unattached upload deleted", extra={"file_id": file_id})
    return True


_FILES = StoredFile.__table__
_ATTACH = update(_FILES).where(_FILES.c.id == bindparam("a_file_id")).values(case_id=bindparam("a_case_id"))
# built once (every submission reads its files): a Session.get per file cost ~0.4 ms of CPU
_OWN_FILES = (select(_FILES.c.id, _FILES.c.uploader, _FILES.c.case_id, _FILES.c.kept_by)
              .where(_FILES.c.id.in_(bindparam("ids", expanding=True))))


class Upload(NamedTuple):
    """An upload a request names, before anything has read it (attaching's check decides)."""

    id: str


def attaching(files: list, *, case_id: str) -> Write:
    """The UPDATE that marks uploaded files (records with an `id`) as a case's materials, kept
    from now on; for write_at_once or insert_now's `then`, under `unused_own_files`' guard."""
    return Write(_ATTACH, [{"a_file_id": file.id, "a_case_id": case_id} for file in files])


def unused_own_files(files: list, *, principal: Principal) -> Write:
    """The guard (services.db.write_guarded) under which `files` are attached: that every one of
    them is the caller's upload and that no case or consent uses it yet. It locks them until the
    attach commits, so of two requests citing one upload at the same moment only the first takes
    it; the other finds it used after waiting, and writes nothing."""
    ids = sorted({file.id for file in files})
    return Write(_unused_own_files_check(len(ids)),
                 [{"g_uploader": principal.key, **{f"g_file_{index}": id_ for index, id_ in enumerate(ids)}}])


@lru_cache(maxsize=16)
def _unused_own_files_check(count: int):
    # One statement per number of files (a submission cites a few): built and compiled once each.
    # The files are found by their keys alone, in a MATERIALIZED CTE the other conditions can't
    # be pushed into: with them inside, a generic plan on stale statistics ("no file is
    # unattached") scanned the index on case_id — every unattached upload — per submission.
    named = (select(_FILES.c.id, _FILES.c.uploader, _FILES.c.case_id, _FILES.c.kept_by)
             .where(_FILES.c.id.in_([bindparam(f"g_file_{index}", type_=_FILES.c.id.type) for index in range(count)]))
             .with_for_update().cte("named_files").prefix_with("MATERIALIZED"))
    usable = (select(func.count()).select_from(named)
              .where(named.c.uploader == bindparam("g_uploader", type_=_FILES.c.uploader.type),
                     named.c.case_id.is_(None), named.c.kept_by.is_(None)))
    return select(literal_column("1")).where(usable.scalar_subquery() == count)


def unattachable(session: Session, *, principal: Principal, files: list) -> FileNotFound:
    """The error for the first of `files` the caller cannot attach (unknown, someone else's, or
    used already), for when `unused_own_files` did not hold."""
    attachable = own_unattached_files(session, principal=principal, file_ids=[file.id for file in files])
    first = next((file.id for file in files if file.id not in attachable), files[0].id)
    return FileNotFound(detail={"file_id": first})


def attach_to_case(session: Session, files: list, *, case_id: str, principal: Principal) -> None:
    """Mark the caller's uploaded files as a case's materials, at once; FileNotFound (and the
    caller's transaction must be rolled back) if one of them is no longer theirs to attach."""
    if files and not write_guarded(session, unused_own_files(files, principal=principal),
                                   attaching(files, case_id=case_id)):
        raise unattachable(session, principal=principal, files=files)
