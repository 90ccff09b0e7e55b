"""Protection of personal data at rest: field encryption and keyed lookup hashes.

Subject numbers are stored twice, neither time in clear (个人信息保护法 §51, GB/T 35273):

* `encrypt()` - AES-256-GCM, so the value can be shown back (masked) or sent to an
  authority. The column name (`context`) is bound as associated data, so a ciphertext
  copied into another column, or into another row type, fails to decrypt.
* `keyed_hash()` - HMAC-SHA256 under a separate key, deterministic, used as the
  equality-lookup key ("find the subject with this ID number") without decrypting rows.
  A plain SHA-256 would not do: ID numbers have little entropy (region x date x sequence)
  and an unkeyed hash is brute-forced in minutes.

Blob layout: 1-byte key version || 12-byte random nonce || ciphertext || 16-byte tag.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.config import get_settings
from services.keys import load_or_create_secret
from services.subjects.identity_numbers import normalize_raw

__all__ = ["DecryptionFailed", "PersonalDataError", "PersonalDataProtector", "get_protector"]

KEY_VERSION = 1
_NONCE_SIZE = 12  # the GCM standard nonce size (NIST SP 800-38D); random per message
_TAG_SIZE = 16
# Domain separation: the same HMAC key must never produce the same output for a subject
# number and for some other future use of the key.
_HASH_DOMAIN = b"onestop/subject-number/v1\x00"
_AAD_PREFIX = b"onestop/pii/v%d\x00"


class PersonalDataError(Exception):
    """Personal data could not be protected or recovered (bad key, tampered blob).

    Deliberately not an OnestopError: this is a server-side integrity failure, never
    something to render to a client as a 4xx.
    """


class DecryptionFailed(PersonalDataError):
    """A ciphertext failed authentication: tampered, wrong key, or wrong context."""


class PersonalDataProtector:
    """Encrypts personal data and computes keyed lookup hashes."""

    def __init__(self, *, encryption_key: bytes, hash_key: bytes):
        if len(encryption_key) != 32:
            raise ValueError("encryption_key must be 32 bytes (AES-256)")
        if len(hash_key) < 32:
            raise ValueError("hash_key must be at least 32 bytes")
        self._aead = AESGCM(encryption_key)
        self._hash_key = bytes(hash_key)

    def __repr__(self) -> str:
        return "PersonalDataProtector(<keys hidden>)"

    @staticmethod
    def _aad(version: int, context: str) -> bytes:
        # The version byte is authenticated too, so it cannot be swapped to steer a future
        # multi-key decrypt toward the wrong key.
        return (_AAD_PREFIX % version) + context.encode("utf-8")

    def encrypt(self, value: str, *, context: str = "subject-number") -> bytes:
        """Encrypt `value`; returns version || nonce || ciphertext+tag.

        `context` (e.g. the column name) must be given again to decrypt.
        """
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), self._aad(KEY_VERSION, context))
        return bytes([KEY_VERSION]) + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str = "subject-number") -> str:
        """Decrypt a blob made by `encrypt` with the same context.

        Raises DecryptionFailed (a PersonalDataError) on any tampering, wrong key or
        wrong context, and on blobs of an unknown key version.
        """
        blob = bytes(blob)
        if len(blob) < 1 + _NONCE_SIZE + _TAG_SIZE:
            raise DecryptionFailed("ciphertext too short")
        version = blob[0]
        if version != KEY_VERSION:
            raise DecryptionFailed(f"unknown key version {version}")
        nonce, sealed = blob[1 : 1 + _NONCE_SIZE], blob[1 + _NONCE_SIZE :]
        try:
            plain = self._aead.decrypt(nonce, sealed, self._aad(version, context))
        except InvalidTag:
            # No detail on purpose: the reason (key, context, tamper) is indistinguishable.
            raise DecryptionFailed("ciphertext failed authentication") from None
        return plain.decode("utf-8")

    def keyed_hash(self, value: str) -> str:
        """Hex HMAC-SHA256 of the normalised value (full-width to ASCII, stripped,
        upper-case), with a domain-separation prefix. Deterministic for a given key.

        Pass a parsed `SubjectNumber.value`, so a 15-digit legacy number and its 18-digit
        upgrade hash the same.
        """
        message = _HASH_DOMAIN + normalize_raw(value).encode("utf-8")
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()


@lru_cache
def get_protector() -> PersonalDataProtector:
    """The process-wide protector, keyed from settings (or demo keys under var/keys/)."""
    settings = get_settings()
    encryption_key = load_or_create_secret(
        settings, configured=settings.pii_encryption_key, filename="pii-encryption.key", size=32
    )
    hash_key = load_or_create_secret(settings, configured=settings.pii_hash_key, filename="pii-hash.key", size=32)
    return PersonalDataProtector(encryption_key=encryption_key, hash_key=hash_key)
