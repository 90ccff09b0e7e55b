"""Uploaded materials: size limit, type detected from content, SHA-256, storage."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

from sqlmodel import Session

from services.accounts.principal import Principal
from services.config import get_settings
from services.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from services.files.models import StoredFile
from services.files.storage import get_storage

# Magic numbers: the type is what the bytes say, never what the name or header claims.
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


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
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    return None


def store_upload(session: Session, *, principal: Principal, chunks: Iterable[bytes]) -> StoredFile:
    """Read an upload chunk by chunk, refusing it as soon as it passes the size limit."""
    limit = get_settings().upload_max_bytes
    digest = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(detail={"limit_bytes": limit})
        digest.update(chunk)
        parts.append(chunk)
    if size == 0:
        raise InvalidInput("文件为空", detail=[{"field": "file", "reason": "empty"}])
    data = b"".join(parts)
    content_type = detect_content_type(data[:16])
    if content_type is None:
        raise FileTypeNotAllowed()
    file_id = str(uuid.uuid4())
    key = f"files/{file_id[:2]}/{file_id}"
    get_storage().put(key, data)
    record = StoredFile(id=file_id, sha256=digest.hexdigest(), size=size, content_type=content_type,
                        storage_key=key, uploader=principal.key)
    session.add(record)
    session.flush()
    return record


def get_own_unattached_file(session: Session, *, principal: Principal, file_id: str) -> StoredFile:
    """A file the caller uploaded and that no case uses yet (to attach it to a new case)."""
    record = session.get(StoredFile, file_id)
    if record is None or record.uploader != principal.key or record.case_id is not None:
        raise FileNotFound(detail={"file_id": file_id})
    return record
