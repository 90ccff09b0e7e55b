"""Personal-data protection: AES-256-GCM field encryption and keyed lookup hashes."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.config import Settings
from services.subjects import protection
from services.subjects.protection import (
    DecryptionFailed,
    PersonalDataError,
    PersonalDataProtector,
    get_protector,
)

# The GB 11643-1999 standard's own example number, not a real person's.
NUMBER = "440524188001010014"


@pytest.fixture
def protector() -> PersonalDataProtector:
    return PersonalDataProtector(encryption_key=os.urandom(32), hash_key=os.urandom(32))


def test_round_trip(protector):
    blob = protector.encrypt(NUMBER)
    assert protector.decrypt(blob) == NUMBER
    assert blob[0] == 1  # key version
    assert len(blob) == 1 + 12 + len(NUMBER) + 16


@settings(max_examples=100, deadline=None)
@given(value=st.text(max_size=200), context=st.text(min_size=1, max_size=30))
def test_round_trip_any_text(value, context):
    protector = PersonalDataProtector(encryption_key=b"k" * 32, hash_key=b"h" * 32)
    assert protector.decrypt(protector.encrypt(value, context=context), context=context) == value


def test_same_value_encrypts_differently(protector):
    first, second = protector.encrypt(NUMBER), protector.encrypt(NUMBER)
    assert first != second
    assert first[1:13] != second[1:13]  # fresh random nonce


def test_clear_value_never_appears_in_ciphertext(protector):
    for _ in range(20):
        blob = protector.encrypt(NUMBER)
        assert NUMBER.encode() not in blob
        assert NUMBER[:8].encode() not in blob and NUMBER[-8:].encode() not in blob


@pytest.mark.parametrize("index", [0, 1, 5, 13, 20, -1])
def test_tampered_byte_is_detected(protector, index):
    blob = bytearray(protector.encrypt(NUMBER))
    blob[index] ^= 0x01
    with pytest.raises(PersonalDataError):
        protector.decrypt(bytes(blob))


def test_truncated_blob_is_detected(protector):
    blob = protector.encrypt(NUMBER)
    for cut in (0, 1, 13, 28, len(blob) - 1):
        with pytest.raises(DecryptionFailed):
            protector.decrypt(blob[:cut])


def test_wrong_context_fails(protector):
    blob = protector.encrypt(NUMBER, context="subjects.id_number")
    with pytest.raises(DecryptionFailed):
        protector.decrypt(blob, context="applications.contact_phone")
    with pytest.raises(DecryptionFailed):
        protector.decrypt(blob)  # the default context is a different one too


def test_wrong_key_fails(protector):
    other = PersonalDataProtector(encryption_key=os.urandom(32), hash_key=os.urandom(32))
    with pytest.raises(DecryptionFailed):
        other.decrypt(protector.encrypt(NUMBER))


def test_error_is_not_an_api_error():
    from services.errors import OnestopError

    assert issubclass(DecryptionFailed, PersonalDataError)
    assert not issubclass(PersonalDataError, OnestopError)


def test_keyed_hash_is_deterministic_and_keyed():
    key = os.urandom(32)
    one = PersonalDataProtector(encryption_key=os.urandom(32), hash_key=key)
    two = PersonalDataProtector(encryption_key=os.urandom(32), hash_key=key)
    other = PersonalDataProtector(encryption_key=os.urandom(32), hash_key=os.urandom(32))
    digest = one.keyed_hash(NUMBER)
    assert digest == two.keyed_hash(NUMBER)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest != other.keyed_hash(NUMBER)
    assert digest != one.keyed_hash(NUMBER[:17] + "5")
    assert NUMBER not in digest


def test_keyed_hash_normalises_input(protector):
    base = NUMBER[:17] + "X"  # any string with an X; validity does not matter to the hash
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in base)
    assert protector.keyed_hash(f" {base.lower()} ") == protector.keyed_hash(base)
    assert protector.keyed_hash(full_width) == protector.keyed_hash(base)


def test_keyed_hash_is_domain_separated(protector):
    import hashlib
    import hmac

    plain = hmac.new(protector._hash_key, NUMBER.encode(), hashlib.sha256).hexdigest()
    assert protector.keyed_hash(NUMBER) != plain


def test_key_sizes_are_enforced():
    with pytest.raises(ValueError):
        PersonalDataProtector(encryption_key=os.urandom(16), hash_key=os.urandom(32))
    with pytest.raises(ValueError):
        PersonalDataProtector(encryption_key=os.urandom(32), hash_key=os.urandom(16))
    assert repr(PersonalDataProtector(encryption_key=b"k" * 32, hash_key=b"h" * 32)) == (
        "PersonalDataProtector(<keys hidden>)"
    )


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch):
    """get_protector() reading settings that point at a temporary var/ directory."""
    holder: dict[str, Settings] = {"settings": Settings(var_dir=tmp_path, pii_encryption_key="", pii_hash_key="")}
    monkeypatch.setattr(protection, "get_settings", lambda: holder["settings"])
    get_protector.cache_clear()
    yield holder
    get_protector.cache_clear()


def test_get_protector_generates_and_reuses_demo_keys(isolated_settings, tmp_path):
    first = get_protector()
    assert get_protector() is first  # cached
    assert (tmp_path / "keys" / "pii-encryption.key").exists()
    assert (tmp_path / "keys" / "pii-hash.key").exists()
    blob = first.encrypt(NUMBER)
    digest = first.keyed_hash(NUMBER)
    get_protector.cache_clear()
    again = get_protector()
    assert again is not first
    assert again.decrypt(blob) == NUMBER  # same keys read back from var/keys/
    assert again.keyed_hash(NUMBER) == digest


def test_get_protector_uses_configured_keys(isolated_settings):
    enc, mac = os.urandom(32), os.urandom(48)
    isolated_settings["settings"] = Settings(
        var_dir=isolated_settings["settings"].var_dir,
        pii_encryption_key=base64.b64encode(enc).decode(),
        pii_hash_key=base64.b64encode(mac).decode(),
    )
    expected = PersonalDataProtector(encryption_key=enc, hash_key=mac)
    configured = get_protector()
    assert configured.decrypt(expected.encrypt(NUMBER)) == NUMBER
    assert configured.keyed_hash(NUMBER) == expected.keyed_hash(NUMBER)
