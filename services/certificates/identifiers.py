"""E-certificate identifiers in the GB/T 36904 style.

    1.2.156.3005.2.<type code: 21>.<issuer credit code: 18>.<serial>.<version: 3 digits>.<check>

The check character is ISO/IEC 7064 MOD 37,36 (the hybrid system with M = 36 over 0-9A-Z)
computed over the four middle parts joined without dots: type code + issuer code + serial +
version. A hybrid system catches every single-character substitution and every adjacent
transposition, which is what a person typing an identifier from paper gets wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.errors import InvalidInput

PREFIX = "1.2.156.3005.2"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MODULUS = 36  # M; the hybrid system works modulo M and M + 1

TYPE_CODE_LENGTH = 21
ISSUER_CODE_LENGTH = 18
SERIAL_MAX_LENGTH = 40

_TYPE_CODE_RE = re.compile(r"[0-9A-Z]{21}")
_ISSUER_CODE_RE = re.compile(r"[0-9A-Z]{18}")
_SERIAL_RE = re.compile(r"[0-9A-Z]{1,40}")
_VERSION_RE = re.compile(r"[0-9]{3}")


class InvalidCertificateIdentifier(InvalidInput):
    code = "invalid_certificate_identifier"
    message = "电子证照标识不合法"

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(message, detail={"reason": reason})
        self.reason = reason


def mod37_36_check_character(data: str) -> str:
    """The ISO/IEC 7064 MOD 37,36 check character for `data` (characters 0-9A-Z)."""
    product = _MODULUS
    for char in data:
        value = ALPHABET.find(char)
        if value < 0:
            raise ValueError(f"character {char!r} is not in 0-9A-Z")
        total = (product + value) % _MODULUS or _MODULUS
        product = (total * 2) % (_MODULUS + 1)
    return ALPHABET[(_MODULUS + 1 - product) % _MODULUS]


@dataclass(frozen=True)
class CertificateIdentifier:
    type_code: str
    issuer_code: str
    serial: str
    version: int
    check: str

    def __str__(self) -> str:
        return f"{PREFIX}.{self.type_code}.{self.issuer_code}.{self.serial}.{self.version:03d}.{self.check}"


def _check_parts(*, type_code: str, issuer_code: str, serial: str, version: int) -> None:
    if not _TYPE_CODE_RE.fullmatch(type_code):
        raise InvalidCertificateIdentifier("type_code", "证照类型代码应为 21 位数字或大写字母")
    if not _ISSUER_CODE_RE.fullmatch(issuer_code):
        raise InvalidCertificateIdentifier("issuer_code", "颁证单位代码应为 18 位统一社会信用代码")
    if not _SERIAL_RE.fullmatch(serial):
        raise InvalidCertificateIdentifier("serial", "证照序号应为 1 至 40 位数字或大写字母")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= 999:
        raise InvalidCertificateIdentifier("version", "版本号应为 0 至 999")


def build_identifier(*, type_code: str, issuer_code: str, serial: str, version: int = 1) -> str:
    """Assemble an identifier and append its check character."""
    _check_parts(type_code=type_code, issuer_code=issuer_code, serial=serial, version=version)
    check = mod37_36_check_character(f"{type_code}{issuer_code}{serial}{version:03d}")
    return str(CertificateIdentifier(type_code, issuer_code, serial, version, check))


def parse_identifier(text: str) -> CertificateIdentifier:
    """Split and check an identifier; raises InvalidCertificateIdentifier with the failing part."""
    if not isinstance(text, str) or not text.startswith(PREFIX + "."):
        raise InvalidCertificateIdentifier("prefix", "电子证照标识应以 1.2.156.3005.2. 开头")
    parts = text[len(PREFIX) + 1 :].split(".")
    if len(parts) != 5:
        raise InvalidCertificateIdentifier("parts", "电子证照标识的组成部分数量不对")
    type_code, issuer_code, serial, version_text, check = parts
    if not _VERSION_RE.fullmatch(version_text):
        raise InvalidCertificateIdentifier("version", "版本号应为 3 位数字")
    version = int(version_text)
    _check_parts(type_code=type_code, issuer_code=issuer_code, serial=serial, version=version)
    if len(check) != 1 or check not in ALPHABET:
        raise InvalidCertificateIdentifier("check_character", "校验位应为一个数字或大写字母")
    if mod37_36_check_character(f"{type_code}{issuer_code}{serial}{version_text}") != check:
        raise InvalidCertificateIdentifier("check_character", "电子证照标识校验位不符")
    return CertificateIdentifier(type_code, issuer_code, serial, version, check)
