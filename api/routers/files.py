"""Material uploads and downloads."""

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, File, Path, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import current_principal, get_session
from api.errors import errors
from api.limits import rate_limited_principal
from api.routing import SessionRoute
from services.accounts.principal import Principal
from services.config import get_settings
from services.files import service

router = APIRouter(tags=["files"], route_class=SessionRoute)
CHUNK = 256 * 1024
# the file limit plus room for the multipart envelope; the service enforces the exact limit
UPLOAD_BODY_LIMIT = get_settings().upload_max_bytes + 64 * 1024
FileId = Path(min_length=1, max_length=36, description="the id POST /files answered",
              examples=["5b0f2c1e-4a8d-4c6e-9f3b-2d7a1e0c9b44"])


class UploadedFile(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "5b0f2c1e-4a8d-4c6e-9f3b-2d7a1e0c9b44", "size": 48213, "content_type": "application/pdf",
         "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]})

    id: str
    sha256: str = Field(description="SHA-256 of the bytes, lower-case hex")
    size: int = Field(description="bytes")
    content_type: str = Field(description="detected from the content: application/pdf, image/jpeg or image/png")


class FileInfo(UploadedFile):
    created_at: str
    case_id: str | None = Field(description="the case the file is a material of, if any")
    attached: bool = Field(description="used by a case or a consent (else deleted a day after the upload)")


def _chunks(upload: UploadFile) -> Iterator[bytes]:
    while chunk := upload.file.read(CHUNK):
        yield chunk


@router.post("/files", status_code=status.HTTP_201_CREATED, summary="Upload a material (PDF, JPEG or PNG)",
             response_model=UploadedFile,
             description="Multipart with the field `file`. The type is detected from the bytes, not the name or "
                         "the declared type: 415 `file_type_not_allowed` for anything but PDF, JPEG, PNG; 413 "
                         "`file_too_large` over the limit (20 MiB by default). A file no case uses a day after "
                         "its upload is deleted.",
             responses=errors(401, 413, 415, 422, 429), max_body_size=UPLOAD_BODY_LIMIT)
def upload_file(file: UploadFile = File(description="the material: a PDF, JPEG or PNG, at most 20 MiB by default"),
                principal: Principal = Depends(rate_limited_principal("upload")),
                session: Session = Depends(get_session)) -> dict[str, Any]:
    record = service.store_upload(session, principal=principal, chunks=_chunks(file))
    return {"id": record.id, "sha256": record.sha256, "size": record.size, "content_type": record.content_type}


@router.get("/files/{file_id}", summary="A material's metadata", response_model=FileInfo,
            description="For the uploader, and for whoever may see the case (or consent) that uses the file; "
                        "404 for anyone else.",
            responses=errors(401, 404))
def get_file(file_id: str = FileId, principal: Principal = Depends(current_principal),
             session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.file_view(service.get_readable_file(session, principal=principal, file_id=file_id))


@router.get("/files/{file_id}/content", summary="A material's bytes", response_class=StreamingResponse,
            responses={200: {"description": "the file, as uploaded",
                             "content": {"application/pdf": {}, "image/jpeg": {}, "image/png": {}}},
                       **errors(401, 404)})
def file_content(file_id: str = FileId, principal: Principal = Depends(current_principal),
                 session: Session = Depends(get_session)) -> StreamingResponse:
    record = service.get_readable_file(session, principal=principal, file_id=file_id)
    extension = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}.get(record.content_type, "bin")
    return StreamingResponse(service.open_content(record), media_type=record.content_type,
                             headers={"Content-Disposition": f'attachment; filename="{record.id}.{extension}"',
                                      "Content-Length": str(record.size), "Cache-Control": "private, no-store",
                                      "X-Content-Type-Options": "nosniff"})
