"""The printed certificate number (证照编号), made from the registry serial by the scheme the
type names in its `number:` block.

Registry serials are `<year><8-digit sequence>` (e.g. 202600000042): a counter per type and
issuing authority. The schemes:

- `serial` — the serial itself (居住证明).
- `pattern` — a pattern over {serial}, {seq}, {year}, {date} (YYYYMMDD of issue) and
  {jurisdiction} (the type's division code), e.g. "婺农宅〔{year}〕{seq:04d}号".
- `food-business-license` — 食品经营许可证编号: "JY" + 14 digits = business type (1) + province
  (2) + city (2) + county (2) + sequence (6) + check digit (1) (REFERENCE.md "Result documents").
  The check digit's algorithm is not published (n/f): ASSUMED Luhn over the 13 digits before it.
- `disability-certificate` — 残疾人证号: the holder's ID number, then the category code (1 视力 …
  7 多重) and the grade code (1–4) (REFERENCE.md). The ID number is printed MASKED: a clear ID
  number never reaches a certificate (see pipeline.py).
- `individual-business-uscc` — the 个体工商户's unified social credit code (GB 32100):
  registration authority 9 (工商) + type 2 (个体工商户) + the division code (6) + a GB 11714
  organisation code ("MA" + the sequence's last 6 digits + its check character) + the GB 32100
  check character. DEMO values: real codes are assigned by the registration system.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from services.certificates.types import CertificateType, lookup, uscc_check_character
from services.errors import InvalidInput
from services.subjects.identity_numbers import org_code_check

DISABILITY_CATEGORIES = {
    "1": "视力残疾", "2": "听力残疾", "3": "言语残疾", "4": "肢体残疾",
    "5": "智力残疾", "6": "精神残疾", "7": "多重残疾",
}
DISABILITY_GRADES = {"1": "一级", "2": "二级", "3": "三级", "4": "四级"}


class CertificateNumberInvalid(InvalidInput):
    code = "certificate_field_invalid"
    message = "生成证照编号所需的信息不正确"


def serial_sequence(serial: str) -> tuple[str | None, int]:
    """(year, sequence) of a registry serial `<year><8 digits>`; other serials (tests, imports)
    give (None, their trailing digits)."""
    if re.fullmatch(r"(19|20)\d{2}\d{8}", serial):
        return serial[:4], int(serial[4:])
    digits = re.search(r"(\d{1,9})$", serial)
    return None, int(digits.group(1)) if digits else 0


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit to append to `digits`."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # the digit next to the check digit is doubled
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def gb11714_check_character(body: str) -> str:
    """The check character of an 8-character organisation code body (GB 11714)."""
    return org_code_check(body)


def _code_of(table: dict[str, str], value: Any, what: str) -> str:
    text = str(value or "").strip()
    if text in table:
        return text
    for code, name in table.items():
        if text and (text == name or text == name.removesuffix("残疾") or text.removesuffix("残疾") == name):
            return code
    raise CertificateNumberInvalid(f"无法识别的{what}：{text or '（空）'}",
                                   detail={"field": what, "value": text, "allowed": list(table.values())})


def disability_codes(context: dict, cert_type: CertificateType) -> tuple[str, str]:
    """(category code, grade code) from the case context, accepting codes or Chinese names."""
    spec = cert_type.number
    category = _code_of(DISABILITY_CATEGORIES, lookup(context, spec.category_source or ""), "残疾类别")
    grade = _code_of(DISABILITY_GRADES, lookup(context, spec.grade_source or ""), "残疾等级")
    return category, grade


def certificate_number(
    cert_type: CertificateType,
    *,
    serial: str,
    issued_at: dt.date,
    holder_masked: str,
    context: dict,
) -> str:
    """The number printed on the certificate (and kept in the registry)."""
    spec = cert_type.number
    year, sequence = serial_sequence(serial)
    year = year or f"{issued_at:%Y}"
    jurisdiction = cert_type.jurisdiction_code[:6]
    if spec.scheme == "serial":
        return serial
    if spec.scheme == "pattern":
        assert spec.pattern is not None
        return spec.pattern.format(serial=serial, seq=sequence, year=year, date=f"{issued_at:%Y%m%d}",
                                   jurisdiction=jurisdiction)
    if spec.scheme == "food-business-license":
        business_type = spec.business_type
        if spec.business_type_source and spec.business_type_choices:
            raw = str(lookup(context, spec.business_type_source) or "").strip()
            business_type = spec.business_type_choices.get(raw, business_type)
        body = f"{business_type}{jurisdiction}{sequence % 1_000_000:06d}"
        return f"JY{body}{luhn_check_digit(body)}"
    if spec.scheme == "disability-certificate":
        category, grade = disability_codes(context, cert_type)
        return f"{holder_masked}{category}{grade}"
    if spec.scheme == "individual-business-uscc":
        organisation = f"MA{sequence % 1_000_000:06d}"
        first17 = f"92{jurisdiction}{organisation}{gb11714_check_character(organisation)}"
        return first17 + uscc_check_character(first17)
    raise AssertionError(f"unknown number scheme {spec.scheme}")
