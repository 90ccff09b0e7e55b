"""Files: detection by content, streaming into storage under the limit, atomic writes."""

from __future__ import annotations

import hashlib

import pytest

from services.accounts.principal import Principal
from services.config import get_settings
from services.errors import InvalidInput
from services.files.service import FileTooLarge, FileTypeNotAllowed, detect_content_type, store_upload
from services.files.storage import FilesystemStorage

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n"


@pytest.mark.parametrize("head, expected", [
    (PDF, "application/pdf"), (b"%PDF-2.0\n", "application/pdf"), (b"%PDF-\n", None), (b"%PDF", None),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"), (b"\xff\xd8\xff\xdb\x00C", "image/jpeg"),
    (b"\xff\xd8\xff\x00", None), (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"), (b"\x89PNG\r\n", None),
    (b"GIF89a", None), (b"<svg", None), (b"", None), (b" %PDF-1.4", None),
])
def test_detection_by_signature(head, expected):
    assert detect_content_type(head) == expected


def _principal() -> Principal:
    return Principal(kind="citizen", account_id=1, roles=("citizen",))


def test_a_stream_of_tiny_chunks_is_detected_hashed_and_stored(session, monkeypatch):
    data = PDF * 100
    chunks = [data[index:index + 3] for index in range(0, len(data), 3)]  # the signature spans chunks
    record = store_upload(session, principal=_principal(), chunks=iter(chunks))
    assert record.content_type == "application/pdf" and record.size == len(data)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    from services.files.storage import get_storage

    assert get_storage().get(record.storage_key) == data


def test_refusals_leave_no_file_in_storage(session, monkeypatch, tmp_path):
    storage = FilesystemStorage(tmp_path)
    monkeypatch.setattr("services.files.service.get_storage", lambda: storage)
    monkeypatch.setattr(get_settings(), "upload_max_bytes", 100)
    with pytest.raises(FileTooLarge):
        store_upload(session, principal=_principal(), chunks=iter([PDF, b"0" * 100]))
    with pytest.raises(FileTypeNotAllowed):
        store_upload(session, principal=_principal(), chunks=iter([b"MZ" + b"0" * 30]))
    with pytest.raises(InvalidInput):
        store_upload(session, principal=_principal(), chunks=iter([b""]))
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_storage_keys_cannot_escape_the_root(tmp_path):
    storage = FilesystemStorage(tmp_path / "root")
    for key in ("../outside", "files/../../outside", "/etc/passwd"):
        with pytest.raises(ValueError):
            storage.put(key, b"x")
    storage.put("files/ab/x", b"data")
    assert b"".join(storage.open_stream("files/ab/x", chunk_size=2)) == b"data"
    storage.delete("files/ab/x")
    assert not storage.exists("files/ab/x")
