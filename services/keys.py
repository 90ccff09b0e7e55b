"""Secret key material: from settings in production, generated into var/keys/ for the demo."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from services.config import Settings


def load_or_create_secret(settings: Settings, *, configured: str, filename: str, size: int = 32) -> bytes:
    """Return the configured base64 secret, or a random one kept in var/keys/<filename>."""
    if configured:
        return base64.b64decode(configured)
    path = settings.keys_dir / filename
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, base64.b64encode(os.urandom(size)))
    return base64.b64decode(path.read_bytes().strip())


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start so the secret is never world-readable, even briefly;
    # O_EXCL makes two processes starting at once agree on one key (the loser re-reads it).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def load_or_create_ec_private_key(settings: Settings, *, configured: Path | None, filename: str):
    """An EC P-256 private key from the configured PEM path, or generated into var/keys/."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = configured or settings.keys_dir / filename
    if configured is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        _write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return serialization.load_pem_private_key(path.read_bytes(), password=None)
