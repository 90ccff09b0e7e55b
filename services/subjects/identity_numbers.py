"""Validation and normalisation of subject identity numbers.

Covers the numbers a one-stop service sees as "who is the applicant":

* 公民身份号码, GB 11643-1999: 6-digit address code (GB/T 2260) + 8-digit birth date +
  3-digit sequence + 1 check character, ISO 7064 MOD 11-2. The 15-digit legacy numbers
  (issued before 1999, no check character, 2-digit year) are upgraded to 18.
* 港澳台居民居住证 (2018): same structure and check rule as GB 11643, with the address code
  fixed to 810000 (Hong Kong), 820000 (Macao) or 830000 (Taiwan).
* 外国人永久居留身份证, 2023 edition (issued since 2023-12-01 by the National Immigration
  Administration): 18 characters built on the GB 11643 scheme, first character "9".
* 统一社会信用代码, GB 32100-2015: registration authority + organisation type + region +
  GB 11714 organisation code (with its own check) + MOD 31 check character.

Every rejection carries a precise machine-readable reason and the 0-based position of the
offending character, and a Chinese message that never repeats the number: identity numbers
are personal data (个人信息保护法), and error messages end up in logs and API responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum

from services.errors import InvalidInput

__all__ = [
    "InvalidSubjectNumber",
    "NumberType",
    "SubjectNumber",
    "mask_number",
    "normalize_raw",
    "parse_credit_code",
    "parse_person_number",
    "parse_subject_number",
    "redact_numbers",
]


# The sample number printed in GB 11643-1999 itself (Beijing, 1949-12-31), not anyone's: the one
# number the API documentation uses as an example.
SAMPLE_ID_NUMBER = "11010519491231002X"


class NumberType(StrEnum):
    CITIZEN_ID = "citizen_id"  # 18-digit 公民身份号码 (GB 11643), MOD 11-2 check
    HKMO_RESIDENCE_PERMIT = "hkmo_residence_permit"  # 港澳居民居住证: prefix 810000 / 820000
    TW_RESIDENCE_PERMIT = "tw_residence_permit"  # 台湾居民居住证: prefix 830000
    FOREIGNER_PERMANENT_RESIDENCE = "foreigner_permanent_residence"  # 2023 版永居证, starts with 9
    CREDIT_CODE = "credit_code"  # 统一社会信用代码 (GB 32100)


# Holder code types of the e-certificate metadata (GB/T 36903-2018 持证主体代码类型).
# "111" (公民身份号码) and "001" (统一社会信用代码) are the two codes the national e-certificate
# interfaces use. I could not find the standard's own codes for the residence permits or the
# 2023 foreigner number, so those use "111" too: all three are built on the GB 11643 number
# scheme and the national platform matches them as identity numbers. Change here if a code
# table with dedicated codes has to be followed.
_HOLDER_CODE_TYPES: dict[NumberType, str] = {
    NumberType.CITIZEN_ID: "111",
    NumberType.HKMO_RESIDENCE_PERMIT: "111",
    NumberType.TW_RESIDENCE_PERMIT: "111",
    NumberType.FOREIGNER_PERMANENT_RESIDENCE: "111",
    NumberType.CREDIT_CODE: "001",
}


@dataclass(frozen=True)
class SubjectNumber:
    """A validated, normalised subject number."""

    type: NumberType
    value: str  # normalised: ASCII, upper-case X, 15-digit legacy upgraded to 18
    birth_date: date | None  # for person numbers

    @property
    def subject_kind(self) -> str:
        """"organization" for a credit code, "person" for every other number."""
        return "organization" if self.type is NumberType.CREDIT_CODE else "person"

    @property
    def holder_code_type(self) -> str:
        """The GB/T 36903 持证主体代码类型 for this number ("111" persons, "001" credit codes)."""
        return _HOLDER_CODE_TYPES[self.type]

    @property
    def masked(self) -> str:
        """The number with all but the first and last four characters hidden."""
        return mask_number(self.value)

    def __repr__(self) -> str:
        # Keep clear numbers out of reprs: they end up in tracebacks and debug logs.
        return f"SubjectNumber(type={self.type.value!r}, value={self.masked!r})"


class InvalidSubjectNumber(InvalidInput):
    """A subject number failed validation.

    `reason` is one of: empty, length, character, region, birth_date, check_character,
    organization_code_check, registration_authority, organization_type.
    `position` is the 0-based index (in the stripped, normalised input) of the offending
    character, or None when the problem is not one character (empty, length).
    """

    code = "invalid_id_number"
    message = "证件号码不合法"

    def __init__(self, reason: str, message: str, *, position: int | None = None, code: str | None = None):
        super().__init__(message, detail={"reason": reason, "position": position}, code=code)
        self.reason = reason
        self.position = position


_CREDIT_CODE_ERROR = "invalid_credit_code"

# --------------------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------------------

# Full-width forms (U+FF01..U+FF5E) are what Chinese IMEs produce when the user forgets to
# switch to half-width; map the whole block to ASCII (digits, Ｘ, letters of credit codes).
# U+3000 is the ideographic space. Done by table rather than NFKC so nothing else changes.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FULL_WIDTH[0x3000] = 0x20


def normalize_raw(raw: str) -> str:
    """Full-width to ASCII, surrounding whitespace stripped, upper-cased.

    Only the light, lossless clean-up every number goes through; internal spaces or
    separators are *not* removed (they are reported as a character error instead).
    """
    return raw.translate(_FULL_WIDTH).strip().upper()


# --------------------------------------------------------------------------------------
# GB 11643 (citizen ID) and the numbers built on it
# --------------------------------------------------------------------------------------

# Province-level codes of GB/T 2260 that appear in identity numbers. 71 (台湾省) is in
# GB/T 2260 but no citizen numbers are issued with it; Taiwan residents get 830000 permits.
_PROVINCES = frozenset(
    f"{n}"
    for n in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
    )
)
# 港澳台居民居住证 (国务院办公厅 2018 《港澳台居民居住证申领发放办法》): the address code is
# exactly 810000 / 820000 / 830000, the rest follows GB 11643.
_PERMIT_REGIONS: dict[str, NumberType] = {
    "81": NumberType.HKMO_RESIDENCE_PERMIT,
    "82": NumberType.HKMO_RESIDENCE_PERMIT,
    "83": NumberType.TW_RESIDENCE_PERMIT,
}

# ISO 7064 MOD 11-2 as specified in GB 11643-1999 §8.2: weight of position i (0-based,
# 17 body digits) is 2^(17-i) mod 11, i.e. 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2.
_MOD11_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_DIGITS = frozenset("0123456789")
_EARLIEST_BIRTH = date(1800, 1, 1)
# China has one time zone and no DST; "today" is Beijing's today, not the server's (a baby
# born this morning in Beijing is still "yesterday" on a UTC server).
_CHINA_TZ = timezone(timedelta(hours=8))

_LABELS = {
    NumberType.CITIZEN_ID: "身份证号码",
    NumberType.HKMO_RESIDENCE_PERMIT: "港澳居民居住证号码",
    NumberType.TW_RESIDENCE_PERMIT: "台湾居民居住证号码",
    NumberType.FOREIGNER_PERMANENT_RESIDENCE: "外国人永久居留身份证号码",
    NumberType.CREDIT_CODE: "统一社会信用代码",
}


def mod11_2_check(body: str) -> str:
    """The GB 11643 / ISO 7064 MOD 11-2 check character for 17 body digits."""
    total = sum(int(ch) * w for ch, w in zip(body, _MOD11_WEIGHTS, strict=True))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def _describe(ch: str) -> str:
    """A safe rendering of one offending (non-digit) character for messages."""
    if ch == " ":
        return "空格"
    if ch.isprintable() and not ch.isspace():
        return f"“{ch}”"
    return f"U+{ord(ch):04X}"


def _china_today() -> date:
    return datetime.now(_CHINA_TZ).date()


def _check_digits(number: str, end: int, label: str) -> None:
    """Reject the first non-ASCII-digit character among number[:end]."""
    for i, ch in enumerate(number[:end]):
        # Not str.isdigit(): that accepts "²", "٣" and other non-ASCII digits.
        if ch not in _DIGITS:
            raise InvalidSubjectNumber("character", f"{label}第 {i + 1} 位{_describe(ch)}不是数字", position=i)


def _check_birth_date(number: str, start: int, label: str, today: date, *, year_digits: int = 4) -> date:
    """Validate the birth date code at number[start:]: YYYYMMDD, or YYMMDD (19YY) for the
    15-digit legacy format. Returns the date.

    Positions in the reason point at the offending field (year, month or day). The message
    names the field and its positions but never the digits themselves.
    """
    month_at = start + year_digits
    day_at = month_at + 2
    end = day_at + 2
    year = int(number[start:month_at]) + (1900 if year_digits == 2 else 0)
    month, day = int(number[month_at:day_at]), int(number[day_at:end])
    where = f"{label}出生日期码（第 {start + 1}-{end} 位）"
    if not 1 <= month <= 12:
        raise InvalidSubjectNumber("birth_date", f"{where}不是有效日期：月份应在 01-12 之间", position=month_at)
    try:
        born = date(year, month, day)
    except ValueError:
        raise InvalidSubjectNumber("birth_date", f"{where}不是有效日期：该月没有这一天", position=day_at) from None
    if born < _EARLIEST_BIRTH:
        raise InvalidSubjectNumber("birth_date", f"{where}早于 1800-01-01", position=start)
    if born > today:
        raise InvalidSubjectNumber("birth_date", f"{where}晚于今天", position=start)
    return born


def _check_province(code: str, position: int, label: str) -> None:
    if code not in _PROVINCES:
        raise InvalidSubjectNumber(
            "region", f"{label}第 {position + 1}-{position + 2} 位不是有效的省级行政区划代码", position=position
        )


def _check_mod11(number: str, label: str) -> None:
    expected = mod11_2_check(number[:17])
    if number[17] != expected:
        raise InvalidSubjectNumber(
            "check_character", f"{label}校验位错误：应为 {expected}，实为 {number[17]}", position=17
        )


def parse_person_number(raw: str, *, today: date | None = None) -> SubjectNumber:
    """Validate and normalise a natural person's identity number.

    Accepts an 18-character 公民身份号码, a 15-digit legacy number (upgraded to 18),
    a 港澳台居民居住证 number, or a 2023 外国人永久居留身份证 number. Full-width characters and a
    lower-case x are normalised. `today` (default: today in Beijing) bounds birth dates.
    Raises InvalidSubjectNumber with a precise reason.
    """
    today = today or _china_today()
    number = normalize_raw(raw)
    label = _LABELS[NumberType.CITIZEN_ID]
    if not number:
        raise InvalidSubjectNumber("empty", f"{label}为空")
    if len(number) == 15:
        return _parse_legacy(number, today)
    if len(number) != 18:
        raise InvalidSubjectNumber(
            "length", f"{label}长度应为 18 位（旧版为 15 位），实为 {len(number)} 位"
        )

    _check_digits(number, 17, label)
    if number[17] not in _DIGITS and number[17] != "X":
        raise InvalidSubjectNumber(
            "character", f"{label}第 18 位{_describe(number[17])}不是数字或 X", position=17
        )

    if number[0] == "9":
        # First character 9 is reserved for foreigners: GB 11643 address codes start 1-8.
        return _parse_foreigner(number, today)

    province = number[:2]
    if province in _PERMIT_REGIONS:
        number_type = _PERMIT_REGIONS[province]
        label = _LABELS[number_type]
        for i in range(2, 6):
            if number[i] != "0":
                raise InvalidSubjectNumber(
                    "region", f"{label}前 6 位应为 {province}0000", position=i
                )
    else:
        number_type = NumberType.CITIZEN_ID
        _check_province(province, 0, label)

    born = _check_birth_date(number, 6, label, today)
    _check_mod11(number, label)
    return SubjectNumber(type=number_type, value=number, birth_date=born)


def _parse_legacy(number: str, today: date) -> SubjectNumber:
    """15-digit number (GB 11643-1989): 6 address + YYMMDD (19YY) + 3 sequence, no check.

    Upgraded to 18 characters as GB 11643-1999 prescribes: insert "19" before the year and
    append the MOD 11-2 check character.
    """
    label = "身份证号码（15 位）"
    _check_digits(number, 15, label)
    # The 15-digit format predates the residence permits: 81-83 are not valid here.
    _check_province(number[:2], 0, label)
    born = _check_birth_date(number, 6, label, today, year_digits=2)
    upgraded_body = number[:6] + "19" + number[6:]
    upgraded = upgraded_body + mod11_2_check(upgraded_body)
    return SubjectNumber(type=NumberType.CITIZEN_ID, value=upgraded, birth_date=born)


def _parse_foreigner(number: str, today: date) -> SubjectNumber:
    """2023-edition 外国人永久居留身份证 number.

    Structure (National Immigration Administration, 新版外国人永久居留身份证机读信息规则, 2023):
    "9" + 2-digit province code of the accepting place + 3-digit nationality code
    (numeric, ISO 3166-1 / GB/T 2659) + 8-digit birth date + 3-digit sequence + MOD 11-2
    check character over the first 17 digits, "the same as the citizen number". The brief's
    "2-digit sequence" would only add up to 17 characters; 18 needs a 3-digit sequence.
    The nationality code is not checked against a country list (codes get added and the
    number's check character already catches typos).
    """
    label = _LABELS[NumberType.FOREIGNER_PERMANENT_RESIDENCE]
    _check_province(number[1:3], 1, label)
    born = _check_birth_date(number, 6, label, today)
    _check_mod11(number, label)
    return SubjectNumber(type=NumberType.FOREIGNER_PERMANENT_RESIDENCE, value=number, birth_date=born)


# --------------------------------------------------------------------------------------
# GB 32100-2015 unified social credit code
# --------------------------------------------------------------------------------------

# GB 32100-2015 §4.1: Arabic digits and upper-case Latin letters without I, O, Z, S, V
# (easily confused with 1, 0, 2, 5, U). The index in this string is the character's value.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUES = {ch: i for i, ch in enumerate(CREDIT_CODE_ALPHABET)}
# GB 32100-2015 §5: weight of position i (0-based) is 3^i mod 31.
_CREDIT_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# GB 11714-1997 organisation code check: weights for the 8 body characters.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# GB 32100-2015 Appendix A (登记管理部门代码 → 机构类别代码), with the later-assigned
# authorities A (中央军委改革和编制办公室) and N (农业农村, 农村集体经济组织 since 2018).
_AUTHORITIES: dict[str, tuple[str, frozenset[str]]] = {
    "1": ("机构编制", frozenset("1239")),  # 机关, 事业单位, 中央编办直接管理机构编制的群众团体, 其他
    "2": ("外交", frozenset("19")),  # 外国常驻新闻机构, 其他
    "3": ("司法行政", frozenset("123459")),  # 律师执业机构, 公证处, 基层法律服务所, 司法鉴定机构, 仲裁委员会, 其他
    "4": ("文化", frozenset("19")),  # 外国在华文化中心, 其他
    "5": ("民政", frozenset("1239")),  # 社会团体, 民办非企业单位(社会服务机构), 基金会, 其他
    "6": ("旅游", frozenset("129")),  # 外国/港澳台旅游部门常驻代表机构, 其他
    "7": ("宗教", frozenset("129")),  # 宗教活动场所, 宗教院校, 其他
    "8": ("工会", frozenset("19")),  # 基层工会, 其他
    # 工商 / 市场监管: 企业, 个体工商户, 农民专业合作社. The standard's table lists 1-3 only;
    # 9 is accepted as the generic "其他" every other authority has, so a real code is never
    # refused on a technicality (the check characters still have to be right).
    "9": ("工商/市场监管", frozenset("1239")),
    "A": ("中央军委改革和编制办公室", frozenset("19")),  # 军队事业单位, 其他
    # 农业农村: 组级, 村级 (the common N2...), 乡镇级集体经济组织, 其他
    "N": ("农业", frozenset("1239")),
    "Y": ("其他", frozenset("1")),
}
# Region code (positions 3-8): GB/T 2260 county-level code of the registering authority,
# or 100000 for registrations at national level (e.g. 国家机关 11100000...).
_CREDIT_REGION_PREFIXES = _PROVINCES | {"10"}


def org_code_check(body: str) -> str:
    """GB 11714-1997 check character for the 8 body characters of an organisation code.

    Letters count as A=10 .. Z=35 (the plain Latin-alphabet value, not the GB 32100 index).
    """
    total = sum(int(ch, 36) * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True))
    value = 11 - total % 11
    return {10: "X", 11: "0"}.get(value, str(value))


def credit_code_check(body: str) -> str:
    """GB 32100-2015 check character for the first 17 characters of a credit code."""
    total = sum(_CREDIT_VALUES[ch] * w for ch, w in zip(body, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def parse_credit_code(raw: str) -> SubjectNumber:
    """Validate and normalise a 统一社会信用代码 (GB 32100-2015).

    Checks, in order: length, alphabet, registration authority, organisation type for that
    authority, region code, the embedded GB 11714 organisation-code check, and the final
    MOD 31 check character. Raises InvalidSubjectNumber (code "invalid_credit_code").
    """
    code = _CREDIT_CODE_ERROR
    label = _LABELS[NumberType.CREDIT_CODE]
    number = normalize_raw(raw)
    if not number:
        raise InvalidSubjectNumber("empty", f"{label}为空", code=code)
    if len(number) != 18:
        raise InvalidSubjectNumber("length", f"{label}长度应为 18 位，实为 {len(number)} 位", code=code)
    for i, ch in enumerate(number):
        if ch not in _CREDIT_VALUES:
            hint = "（代码中不使用字母 I、O、Z、S、V）" if ch in "IOZSV" else ""
            raise InvalidSubjectNumber(
                "character", f"{label}第 {i + 1} 位{_describe(ch)}不是允许的字符{hint}", position=i, code=code
            )

    authority = _AUTHORITIES.get(number[0])
    if authority is None:
        raise InvalidSubjectNumber(
            "registration_authority", f"{label}第 1 位{_describe(number[0])}不是有效的登记管理部门代码",
            position=0, code=code,
        )
    authority_name, types = authority
    if number[1] not in types:
        raise InvalidSubjectNumber(
            "organization_type",
            f"{label}第 2 位机构类别代码{_describe(number[1])}对登记管理部门“{authority_name}”无效",
            position=1, code=code,
        )

    for i in range(2, 8):
        if number[i] not in _DIGITS:
            raise InvalidSubjectNumber(
                "region", f"{label}第 {i + 1} 位{_describe(number[i])}：登记管理机关行政区划码只能是数字",
                position=i, code=code,
            )
    if number[2:4] not in _CREDIT_REGION_PREFIXES:
        raise InvalidSubjectNumber(
            "region", f"{label}第 3-4 位不是有效的省级行政区划代码", position=2, code=code
        )

    expected_org = org_code_check(number[8:16])
    if number[16] != expected_org:
        raise InvalidSubjectNumber(
            "organization_code_check",
            f"{label}中的组织机构代码（第 9-17 位）校验码错误：应为 {expected_org}，实为 {number[16]}",
            position=16, code=code,
        )

    expected = credit_code_check(number[:17])
    if number[17] != expected:
        raise InvalidSubjectNumber(
            "check_character", f"{label}校验位错误：应为 {expected}，实为 {number[17]}", position=17, code=code
        )
    return SubjectNumber(type=NumberType.CREDIT_CODE, value=number, birth_date=None)


def parse_subject_number(raw: str, *, subject_kind: str) -> SubjectNumber:
    """Parse `raw` as a person number (subject_kind "person") or a credit code ("organization")."""
    if subject_kind == "person":
        return parse_person_number(raw)
    if subject_kind == "organization":
        return parse_credit_code(raw)
    # A programming error, not bad user input: the kind comes from our own code paths.
    raise ValueError(f"unknown subject kind: {subject_kind!r}")


# --------------------------------------------------------------------------------------
# Masking and redaction
# --------------------------------------------------------------------------------------


def mask_number(value: str) -> str:
    """Hide the middle of a number: first 4 and last 4 visible, same length.

    An 18-character number becomes e.g. '3601**********123X', a 15-digit one
    '3601*******1234'. Shorter values show at most a quarter on each side, so a mask never
    reveals more than 8 characters nor most of a short value.
    """
    keep = 4 if len(value) >= 15 else len(value) // 4
    if keep == 0:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


# Character classes include the full-width forms: raw user input is what gets logged.
_D = "0-9\uff10-\uff19"
_X = "Xx\uff38\uff58"
_CC = "0-9A-HJ-NP-RTUWXYa-hj-np-rtuwxy\uff10-\uff19\uff21-\uff3a\uff41-\uff5a"
_ALNUM = "0-9A-Za-z\uff10-\uff19\uff21-\uff3a\uff41-\uff5a"
# Digit runs are delimited by non-digits only, so "id110101..." is still caught; the
# credit-code shape (letters allowed) needs a non-alphanumeric boundary so that hex
# digests and other long tokens are not chopped up.
_NUMBER_PATTERN = re.compile(
    rf"(?<![{_D}])[{_D}]{{17}}[{_D}{_X}](?![{_D}])"  # 18-char ID / permit / foreigner number
    rf"|(?<![{_ALNUM}])[{_CC}]{{2}}[{_D}]{{6}}[{_CC}]{{10}}(?![{_ALNUM}])"  # credit code
    rf"|(?<![{_D}])[{_D}]{{15}}(?![{_D}])"  # 15-digit legacy ID
)


def redact_numbers(text: str) -> str:
    """Replace anything in free text that looks like an identity number or credit code
    with its masked form. Used by the log formatter so that no clear number reaches logs.

    Deliberately over-eager: a look-alike (an 18-digit order number) gets masked too,
    which costs nothing; an unmasked ID number in a log is a personal-data leak.
    """
    return _NUMBER_PATTERN.sub(lambda m: mask_number(m.group(0)), text)
