"""Material uploads."""

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, UploadFile, status
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from services.accounts.principal import Principal
from services.config import get_settings
from services.files import service

router = APIRouter(tags=["files"])
CHUNK = 256 * 1024
# the file limit plus room for the multipart envelope; the service enforces the exact limit
UPLOAD_BODY_LIMIT = get_settings().upload_max_bytes + 64 * 1024


def _chunks(upload: UploadFile) -> Iterator[bytes]:
    while chunk := upload.file.read(CHUNK):
        yield chunk


@router.post("/files", status_code=status.HTTP_201_CREATED, summary="Upload a material (PDF, JPEG or PNG)",
             responses=errors(401, 413, 415, 422), max_body_size=UPLOAD_BODY_LIMIT)
def upload_file(file: UploadFile, principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> dict[str, Any]:
    record = service.store_upload(session, principal=principal, chunks=_chunks(file))
    return {"id": record.id, "sha256": record.sha256, "size": record.size, "content_type": record.content_type}
