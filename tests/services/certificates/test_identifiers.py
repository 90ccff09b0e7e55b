from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.certificates.identifiers import (
    ALPHABET,
    PREFIX,
    CertificateIdentifier,
    InvalidCertificateIdentifier,
    build_identifier,
    mod37_36_check_character,
    parse_identifier,
)

TYPE_CODE = "11360000MB1D500287001"
ISSUER_CODE = "11361130MB1C20012R"

codes = st.text(alphabet=ALPHABET, min_size=1, max_size=40)
type_codes = st.text(alphabet=ALPHABET, min_size=21, max_size=21)
issuer_codes = st.text(alphabet=ALPHABET, min_size=18, max_size=18)
versions = st.integers(min_value=0, max_value=999)


def _iso7064_mod37_36_verifies(data_with_check: str) -> bool:
    """ISO/IEC 7064 verification, written out independently: run the hybrid system over the
    data, then adding the check character must leave a remainder of 1 modulo 36."""
    *data, check = data_with_check
    product = 36
    for char in data:
        total = (product + ALPHABET.index(char)) % 36 or 36
        product = (total * 2) % 37
    return (product + ALPHABET.index(check)) % 36 == 1


@pytest.mark.parametrize(
    ("data", "check"),
    [
        ("A12425GABC1234002", "M"),  # the example in python-stdnum's iso7064.mod_37_36 docs
        ("0", "2"),  # by hand: P=36; S=(36+0) mod 36 -> 36; P=72 mod 37=35; check=(37-35) mod 36
    ],
)
def test_known_vectors(data, check):
    assert mod37_36_check_character(data) == check


@given(st.text(alphabet=ALPHABET, min_size=1, max_size=80))
def test_agrees_with_python_stdnum(data):
    mod_37_36 = pytest.importorskip("stdnum.iso7064.mod_37_36")
    assert mod37_36_check_character(data) == mod_37_36.calc_check_digit(data)
    assert mod_37_36.is_valid(data + mod37_36_check_character(data))


def test_rejects_characters_outside_the_alphabet():
    with pytest.raises(ValueError):
        mod37_36_check_character("abc")


def test_build_gives_the_documented_shape():
    text = build_identifier(type_code=TYPE_CODE, issuer_code=ISSUER_CODE, serial="2026000123")
    assert text.startswith(PREFIX + ".")
    body = text[len(PREFIX) + 1 :].split(".")
    assert body[:4] == [TYPE_CODE, ISSUER_CODE, "2026000123", "001"]
    assert body[4] == mod37_36_check_character(TYPE_CODE + ISSUER_CODE + "2026000123" + "001")


@given(type_codes, issuer_codes, codes, versions)
def test_round_trip(type_code, issuer_code, serial, version):
    text = build_identifier(type_code=type_code, issuer_code=issuer_code, serial=serial, version=version)
    parsed = parse_identifier(text)
    assert parsed == CertificateIdentifier(type_code, issuer_code, serial, version, text[-1])
    assert str(parsed) == text
    assert _iso7064_mod37_36_verifies(f"{type_code}{issuer_code}{serial}{version:03d}{parsed.check}")


@given(type_codes, issuer_codes, codes, versions, st.data())
def test_every_single_character_change_is_detected(type_code, issuer_code, serial, version, data):
    text = build_identifier(type_code=type_code, issuer_code=issuer_code, serial=serial, version=version)
    # positions of the middle parts (not the prefix, the dots, or the check character itself)
    start = len(PREFIX) + 1
    middle = [i for i in range(start, len(text) - 2) if text[i] != "."]
    position = data.draw(st.sampled_from(middle))
    # the version part is digits only; elsewhere any other character of the alphabet
    version_start = len(text) - 5
    alphabet = "0123456789" if position >= version_start else ALPHABET
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != text[position]]))
    changed = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(InvalidCertificateIdentifier) as error:
        parse_identifier(changed)
    assert error.value.detail == {"reason": "check_character"}


@given(type_codes, issuer_codes, codes, versions)
def test_every_wrong_check_character_is_rejected(type_code, issuer_code, serial, version):
    text = build_identifier(type_code=type_code, issuer_code=issuer_code, serial=serial, version=version)
    for other in ALPHABET:
        if other != text[-1]:
            with pytest.raises(InvalidCertificateIdentifier):
                parse_identifier(text[:-1] + other)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.2.156.3005.3.X", "prefix"),
        ("", "prefix"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}.1.001", "parts"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}.1.001.A.B", "parts"),
        (f"{PREFIX}.{TYPE_CODE[:-1]}.{ISSUER_CODE}.1.001.A", "type_code"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE.lower()}.1.001.A", "issuer_code"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}..001.A", "serial"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}.{'1' * 41}.001.A", "serial"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}.ab1.001.A", "serial"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}.1.01.A", "version"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}.1.001.", "check_character"),
        (f"{PREFIX}.{TYPE_CODE}.{ISSUER_CODE}.1.001.a", "check_character"),
    ],
)
def test_parse_names_the_broken_part(text, reason):
    with pytest.raises(InvalidCertificateIdentifier) as error:
        parse_identifier(text)
    assert error.value.detail == {"reason": reason}
    assert error.value.code == "invalid_certificate_identifier"
    assert error.value.status_code == 422


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type_code": "SHORT", "issuer_code": ISSUER_CODE, "serial": "1"},
        {"type_code": TYPE_CODE, "issuer_code": ISSUER_CODE, "serial": "1", "version": 1000},
        {"type_code": TYPE_CODE, "issuer_code": ISSUER_CODE, "serial": "1", "version": True},
        {"type_code": TYPE_CODE, "issuer_code": ISSUER_CODE, "serial": "1-2"},
    ],
)
def test_build_rejects_bad_parts(kwargs):
    with pytest.raises(InvalidCertificateIdentifier):
        build_identifier(**kwargs)
