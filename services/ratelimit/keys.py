"""Keys for shared state (Redis, the in-process table, audit rows) that never carry an
address, a username, an ID number or a token in clear: a keyed hash (HMAC-SHA256 under the
PII hash key, with its own domain prefix) stands in for the identity."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from services.config import get_settings
from services.keys import load_or_create_secret

_DOMAIN = b"onestop/shared-state-key/v1\x00"


@lru_cache
def _key() -> bytes:
    settings = get_settings()
    secret = load_or_create_secret(settings, configured=settings.pii_hash_key, filename="pii-hash.key", size=32)
    # derived, so a leaked shared-state key says nothing about the subject-number hashes
    return hmac.new(secret, _DOMAIN, hashlib.sha256).digest()


def identity_hash(value: str) -> str:
    """A stable, non-reversible stand-in for an identity (32 hex characters)."""
    return hmac.new(_key(), value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def address_identity(address: str | None) -> str:
    """The identity a client address is counted as under a per-address limit."""
    return "address:" + (address or "unknown")


def limit_key(name: str, identity: str) -> str:
    """The Redis key of one identity's counter under a named limit."""
    return f"onestop:rl:{name}:{identity_hash(identity)}"
