"""Identity-number and credit-code validation.

The valid numbers used here are generated and get their check characters from the small
oracles below, written straight from the standards (independently of the implementation),
or are the standard's own published example. No real person's number appears here.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

from services.errors import InvalidInput
from services.subjects.identity_numbers import (
    InvalidSubjectNumber,
    NumberType,
    SubjectNumber,
    mask_number,
    parse_credit_code,
    parse_person_number,
    parse_subject_number,
    redact_numbers,
)

TODAY = date(2025, 6, 30)
# GB 11643-1999 Appendix example (birth 1880-01-01).
STANDARD_EXAMPLE = "440524188001010014"

PROVINCES = [
    *range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66)
]
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# GB 32100-2015 Appendix A, plus A and N; 9 under 工商 accepted as "其他" (see implementation).
AUTHORITY_TYPES = {
    "1": "1239", "2": "19", "3": "123459", "4": "19", "5": "1239", "6": "129",
    "7": "129", "8": "19", "9": "1239", "A": "19", "N": "1239", "Y": "1",
}

FAST = settings(max_examples=150, deadline=None)


# ------------------------------------------------------------------ independent oracles


def gb11643_check(body17: str) -> str:
    """GB 11643-1999 §8.2: ISO 7064 MOD 11-2."""
    total = sum(int(c) * (2 ** (17 - i) % 11) for i, c in enumerate(body17))
    return "0123456789X"[(12 - total % 11) % 11]


def gb11714_check(body8: str) -> str:
    """GB 11714-1997: weights 3 7 9 10 5 8 4 2, C9 = 11 - sum mod 11 (10 -> X, 11 -> 0)."""
    values = [int(c) if c.isdigit() else ord(c) - ord("A") + 10 for c in body8]
    c9 = 11 - sum(v * w for v, w in zip(values, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
    return "X" if c9 == 10 else "0" if c9 == 11 else str(c9)


def gb32100_check(body17: str) -> str:
    """GB 32100-2015: weights 3^i mod 31, C18 = 31 - sum mod 31 (31 -> 0)."""
    total = sum(ALPHABET.index(c) * (3**i % 31) for i, c in enumerate(body17))
    return ALPHABET[(31 - total % 31) % 31]


def make_id(region: str, born: date, sequence: int) -> str:
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + gb11643_check(body)


def make_credit_code(authority: str, org_type: str, region: str, org_body: str) -> str:
    body = authority + org_type + region + org_body + gb11714_check(org_body)
    return body + gb32100_check(body)


def reason_of(parse, raw: str, **kwargs) -> tuple[str, int | None]:
    with pytest.raises(InvalidSubjectNumber) as info:
        parse(raw, **kwargs)
    error = info.value
    # Personal data: the number itself must never be part of the message.
    if raw.strip():
        assert raw.strip() not in error.message, "message leaks the number: " + mask_number(raw.strip())
    assert error.detail == {"reason": error.reason, "position": error.position}
    return error.reason, error.position


# ------------------------------------------------------------------ strategies

regions = st.builds(
    lambda p, rest: f"{p}{rest:04d}", st.sampled_from(PROVINCES), st.integers(0, 9999)
)
birth_dates = st.dates(min_value=date(1800, 1, 1), max_value=TODAY)
sequences = st.integers(0, 999)
citizen_ids = st.builds(make_id, regions, birth_dates, sequences)
legacy_ids = st.builds(
    lambda region, born, seq: f"{region}{born:%y%m%d}{seq:03d}",
    regions,
    st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)),
    sequences,
)


@st.composite
def credit_codes(draw) -> str:
    authority = draw(st.sampled_from(sorted(AUTHORITY_TYPES)))
    org_type = draw(st.sampled_from(AUTHORITY_TYPES[authority]))
    region = draw(st.sampled_from(PROVINCES + [10])) * 10000 + draw(st.integers(0, 9999))
    org_body = draw(st.text(alphabet=ALPHABET, min_size=8, max_size=8))
    return make_credit_code(authority, org_type, f"{region:06d}", org_body)


# ------------------------------------------------------------------ citizen IDs: properties


@FAST
@given(region=regions, born=birth_dates, sequence=sequences)
def test_generated_citizen_ids_are_accepted_and_round_trip(region, born, sequence):
    number = make_id(region, born, sequence)
    parsed = parse_person_number(number, today=TODAY)
    assert parsed.type is NumberType.CITIZEN_ID
    assert parsed.value == number
    assert parsed.birth_date == born
    assert parsed.subject_kind == "person"
    assert parsed.holder_code_type == "111"
    assert parse_person_number(parsed.value, today=TODAY) == parsed
    # The oracle agrees with python-stdnum's MOD 11-2 implementation.
    assert ric.calc_check_digit(number) == number[-1]


@FAST
@given(number=citizen_ids)
def test_lower_case_x_and_full_width_and_whitespace_are_normalised(number):
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in number)
    for raw in (f"  {number.lower()}\t", full_width, f"\u3000{number}\n"):
        assert parse_person_number(raw, today=TODAY).value == number


@FAST
@given(
    number=citizen_ids,
    position=st.integers(0, 17),
    replacement=st.sampled_from("0123456789XABMZx* -"),
)
def test_any_single_change_of_a_citizen_id_is_rejected(number, position, replacement):
    assume(replacement.upper() != number[position])
    changed = number[:position] + replacement + number[position + 1 :]
    reason, where = reason_of(parse_person_number, changed, today=TODAY)
    is_digit = replacement.isdigit()
    if replacement == " " and position in (0, 17):
        # Surrounding blanks are stripped, so a blank at either end shortens the number.
        assert (reason, where) == ("length", None)
    elif position == 17:
        if is_digit or replacement in "Xx":
            assert (reason, where) == ("check_character", 17)
        else:
            assert (reason, where) == ("character", 17)
    elif not is_digit:
        assert (reason, where) == ("character", position)
    elif position < 6:
        assert reason in {"region", "check_character"}
        assert where == 17 if reason == "check_character" else where < 6
    elif position < 14:
        assert reason in {"birth_date", "check_character"}
        assert where == 17 if reason == "check_character" else 6 <= where < 14
    else:
        assert (reason, where) == ("check_character", 17)


@FAST
@given(number=legacy_ids)
def test_legacy_15_digit_numbers_upgrade_to_18(number):
    parsed = parse_person_number(number, today=TODAY)
    body = number[:6] + "19" + number[6:]
    assert parsed.value == body + gb11643_check(body)
    assert ric.calc_check_digit(parsed.value) == parsed.value[-1]
    assert parsed.birth_date == date(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12]))
    # The upgraded form is itself a valid 18-character number.
    assert parse_person_number(parsed.value, today=TODAY) == parsed


@FAST
@given(number=st.one_of(citizen_ids, credit_codes(), legacy_ids))
def test_masks_reveal_at_most_eight_characters(number):
    masked = mask_number(number)
    assert len(masked) == len(number)
    revealed = sum(1 for a, b in zip(masked, number) if a == b)
    assert revealed <= 8
    assert masked[:4] == number[:4] and masked[-4:] == number[-4:]


@FAST
@given(value=st.text(alphabet="0123456789ABX", max_size=40))
def test_masks_of_any_length_reveal_little(value):
    masked = mask_number(value)
    revealed = sum(1 for a, b in zip(masked, value) if a == b)
    assert len(masked) == len(value)
    assert revealed <= 8
    if len(value) < 15:  # shorter than any ID number: at most half of it shows
        assert revealed <= len(value) // 2


words = st.text(alphabet="用户身份证号码是的已提交申请abc XYZ 12，。：;", max_size=20)
separators = st.sampled_from([" ", "：", ":", "，", "(", "（", "=", "号"])


@FAST
@given(
    number=st.one_of(citizen_ids, credit_codes(), legacy_ids, citizen_ids.map(str.lower)),
    before=words,
    after=words,
    left=separators,
    right=separators,
)
def test_redact_numbers_removes_every_number_from_a_sentence(number, before, after, left, right):
    text = f"{before}{left}{number}{right}{after}"
    redacted = redact_numbers(text)
    assert number not in redacted, "clear number left: " + mask_number(number)
    assert mask_number(number) in redacted


def test_redact_numbers_handles_several_numbers_and_full_width():
    person = make_id("360102", date(1990, 1, 1), 123)
    company = make_credit_code("9", "1", "360100", "MA35XXXX")
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in person)
    text = f"申请人{person}代表{company}办理；另见{full_width}。"
    redacted = redact_numbers(text)
    for clear in (person, company, full_width):
        assert clear not in redacted, "clear number left: " + mask_number(clear)
    assert redacted.count("*") == 3 * 10


def test_redact_numbers_leaves_ordinary_text_and_hex_digests_alone():
    text = "事项 2025-06-30 已受理，编号 A1234，摘要 0123456789abcdef0123456789abcdef01234567"
    assert redact_numbers(text) == text


# ------------------------------------------------------------------ citizen IDs: known cases


def test_the_standard_example_from_1880_is_valid_and_stdnum_disagrees():
    parsed = parse_person_number(STANDARD_EXAMPLE)
    assert parsed.birth_date == date(1880, 1, 1)
    assert parsed.type is NumberType.CITIZEN_ID
    assert parsed.masked == "4405**********0014"
    # python-stdnum rejects GB 11643's own example: its region database has no county
    # 440524 for a birth year of 1880 (InvalidComponent), though the check digit is right.
    assert ric.calc_check_digit(STANDARD_EXAMPLE) == "4"
    assert not ric.is_valid(STANDARD_EXAMPLE)


@pytest.mark.parametrize("raw", ["", "   ", "\u3000"])
def test_empty(raw):
    assert reason_of(parse_person_number, raw) == ("empty", None)
    assert reason_of(parse_credit_code, raw) == ("empty", None)


@pytest.mark.parametrize("length", [1, 14, 16, 17, 19, 30])
def test_wrong_length(length):
    raw = (STANDARD_EXAMPLE * 2)[:length]
    reason, position = reason_of(parse_person_number, raw)
    assert (reason, position) == ("length", None)


def test_letter_in_the_middle_names_its_position():
    raw = STANDARD_EXAMPLE[:8] + "A" + STANDARD_EXAMPLE[9:]
    with pytest.raises(InvalidSubjectNumber) as info:
        parse_person_number(raw)
    assert info.value.reason == "character"
    assert info.value.position == 8
    assert "第 9 位" in info.value.message


def test_letter_in_a_legacy_number():
    raw = make_id("360102", date(1970, 1, 1), 1)[:6] + "7001B1001"
    assert reason_of(parse_person_number, raw) == ("character", 10)


def test_february_30th_is_not_a_date():
    body = "360102" + "19900230" + "123"
    raw = body + gb11643_check(body)  # the check character is right: only the date is wrong
    reason, position = reason_of(parse_person_number, raw)
    assert (reason, position) == ("birth_date", 12)


def test_month_13_is_not_a_date():
    body = "360102" + "19901301" + "123"
    assert reason_of(parse_person_number, body + gb11643_check(body)) == ("birth_date", 10)


def test_future_birth_date():
    tomorrow = TODAY + timedelta(days=1)
    assert reason_of(parse_person_number, make_id("360102", tomorrow, 1), today=TODAY) == ("birth_date", 6)
    # The same number is fine once that day has come.
    assert parse_person_number(make_id("360102", tomorrow, 1), today=tomorrow).birth_date == tomorrow


def test_before_1800():
    body = "360102" + "17991231" + "001"
    assert reason_of(parse_person_number, body + gb11643_check(body)) == ("birth_date", 6)


def test_legacy_number_with_invalid_date():
    assert reason_of(parse_person_number, "360102900230123") == ("birth_date", 10)


def test_legacy_number_with_invalid_region():
    assert reason_of(parse_person_number, "990102900101123") == ("region", 0)


def test_wrong_check_character_says_what_it_should_be():
    raw = STANDARD_EXAMPLE[:17] + "3"
    with pytest.raises(InvalidSubjectNumber) as info:
        parse_person_number(raw)
    error = info.value
    assert (error.reason, error.position) == ("check_character", 17)
    assert error.message == "身份证号码校验位错误：应为 4，实为 3"
    assert error.code == "invalid_id_number"
    assert isinstance(error, InvalidInput) and error.status_code == 422


def test_check_character_x_is_normalised():
    # Find a generated number whose check character is X.
    number = next(
        n for seq in range(1000) if (n := make_id("110101", date(1990, 3, 7), seq)).endswith("X")
    )
    assert parse_person_number(number.lower()).value == number


def test_unknown_province():
    assert reason_of(parse_person_number, make_id("190101", date(1990, 1, 1), 1)) == ("region", 0)
    assert reason_of(parse_person_number, make_id("000101", date(1990, 1, 1), 1)) == ("region", 0)
    assert reason_of(parse_person_number, make_id("710101", date(1990, 1, 1), 1)) == ("region", 0)


@pytest.mark.parametrize(
    ("region", "number_type"),
    [
        ("810000", NumberType.HKMO_RESIDENCE_PERMIT),
        ("820000", NumberType.HKMO_RESIDENCE_PERMIT),
        ("830000", NumberType.TW_RESIDENCE_PERMIT),
    ],
)
def test_residence_permits(region, number_type):
    parsed = parse_person_number(make_id(region, date(1985, 5, 20), 7))
    assert parsed.type is number_type
    assert parsed.subject_kind == "person"
    assert parsed.holder_code_type == "111"
    assert parsed.birth_date == date(1985, 5, 20)


def test_residence_permit_region_must_be_exact():
    assert reason_of(parse_person_number, make_id("810100", date(1985, 5, 20), 7)) == ("region", 3)


def test_foreigner_permanent_residence_2023():
    # 9 + issuing province 11 + nationality 840 + birth date + sequence 001 + MOD 11-2 check.
    body = "9" + "11" + "840" + "19800101" + "001"
    number = body + gb11643_check(body)
    parsed = parse_person_number(number)
    assert parsed.type is NumberType.FOREIGNER_PERMANENT_RESIDENCE
    assert parsed.birth_date == date(1980, 1, 1)
    assert parsed.subject_kind == "person"
    bad_province = "9" + "99" + "840" + "19800101" + "001"
    assert reason_of(parse_person_number, bad_province + gb11643_check(bad_province)) == ("region", 1)
    bad_date = "9" + "11" + "840" + "19800231" + "001"
    assert reason_of(parse_person_number, bad_date + gb11643_check(bad_date)) == ("birth_date", 12)
    assert reason_of(parse_person_number, body + ("0" if number[-1] != "0" else "1")) == ("check_character", 17)


def test_subject_number_repr_does_not_leak():
    parsed = parse_person_number(STANDARD_EXAMPLE)
    assert STANDARD_EXAMPLE not in repr(parsed)


# ------------------------------------------------------------------ credit codes


@FAST
@given(code=credit_codes())
def test_generated_credit_codes_are_accepted(code):
    parsed = parse_credit_code(code)
    assert parsed.value == code
    assert parsed.type is NumberType.CREDIT_CODE
    assert parsed.subject_kind == "organization"
    assert parsed.holder_code_type == "001"
    assert parsed.birth_date is None
    assert parse_credit_code(f" {code.lower()} ").value == code
    # stdnum's check character agrees with ours (it only looks at the MOD 31 check).
    assert uscc.calc_check_digit(code) == code[-1]


@FAST
@given(
    code=credit_codes(),
    position=st.integers(0, 17),
    replacement=st.sampled_from(ALPHABET + "IOZSV"),
)
def test_any_single_change_of_a_credit_code_is_rejected(code, position, replacement):
    assume(replacement != code[position])
    changed = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(InvalidSubjectNumber) as info:
        parse_credit_code(changed)
    error = info.value
    assert error.code == "invalid_credit_code"
    reason = error.reason
    if replacement in "IOZSV":
        assert (reason, error.position) == ("character", position)
    elif position == 17:
        assert reason == "check_character"
    elif position == 16:
        assert reason == "organization_code_check"
    elif position >= 8:
        # A body change by a multiple of 11 (e.g. 0 -> B) slips past GB 11714's check;
        # the GB 32100 check character still catches it.
        assert reason in {"organization_code_check", "check_character"}
    elif position >= 2:
        assert reason in {"region", "check_character"}
    elif position == 1:
        assert reason in {"organization_type", "check_character"}
    else:
        assert reason in {"registration_authority", "organization_type", "check_character"}


def test_well_known_credit_code():
    parsed = parse_credit_code("91350100M000100Y43")
    assert parsed.value == "91350100M000100Y43"
    assert uscc.is_valid("91350100M000100Y43")


def test_village_collective_n2_code_is_valid_and_stdnum_rejects_it():
    code = make_credit_code("N", "2", "360102", "MA000001")
    assert parse_credit_code(code).value == code
    # python-stdnum requires the first 8 characters to be digits, so it refuses every code
    # from authorities N (农业农村), A and Y although the check character is right.
    assert uscc.calc_check_digit(code) == code[-1]
    assert not uscc.is_valid(code)
    other = make_credit_code("Y", "1", "110000", "12345678")
    assert parse_credit_code(other).value == other
    assert not uscc.is_valid(other)


@pytest.mark.parametrize("letter", list("IOZSV"))
def test_credit_code_with_excluded_letters(letter):
    code = make_credit_code("9", "1", "360100", "MA35XXXX")
    raw = code[:10] + letter + code[11:]
    with pytest.raises(InvalidSubjectNumber) as info:
        parse_credit_code(raw)
    assert (info.value.reason, info.value.position) == ("character", 10)
    assert "I、O、Z、S、V" in info.value.message


def test_bad_organization_code_check():
    code = make_credit_code("9", "1", "360100", "MA35XXXX")
    wrong = "1" if code[16] != "1" else "2"
    body = code[:16] + wrong
    raw = body + gb32100_check(body)  # final check made right, so only the org check is wrong
    with pytest.raises(InvalidSubjectNumber) as info:
        parse_credit_code(raw)
    assert (info.value.reason, info.value.position) == ("organization_code_check", 16)
    assert f"应为 {code[16]}，实为 {wrong}" in info.value.message
    # stdnum does not look at the embedded organisation code and accepts it.
    assert uscc.is_valid(raw)


def test_bad_credit_check_character():
    code = make_credit_code("9", "1", "360100", "MA35XXXX")
    raw = code[:17] + ("0" if code[17] != "0" else "1")
    assert reason_of(parse_credit_code, raw) == ("check_character", 17)


def test_unknown_registration_authority_and_type():
    body = "B1360100" + "MA35XXXX"
    raw = body + gb11714_check("MA35XXXX")
    raw += gb32100_check(raw)
    assert reason_of(parse_credit_code, raw) == ("registration_authority", 0)
    assert reason_of(parse_credit_code, make_credit_code("9", "5", "360100", "MA35XXXX")) == (
        "organization_type",
        1,
    )
    assert reason_of(parse_credit_code, make_credit_code("Y", "2", "360100", "MA35XXXX")) == (
        "organization_type",
        1,
    )


def test_credit_code_region_must_be_digits():
    assert reason_of(parse_credit_code, make_credit_code("9", "1", "36A100", "MA35XXXX")) == ("region", 4)
    assert reason_of(parse_credit_code, make_credit_code("9", "1", "990100", "MA35XXXX")) == ("region", 2)


def test_credit_code_length():
    assert reason_of(parse_credit_code, "91350100M000100Y4") == ("length", None)
    assert reason_of(parse_credit_code, "91350100M000100Y433") == ("length", None)


# ------------------------------------------------------------------ dispatch


def test_parse_subject_number_dispatches_on_kind():
    assert parse_subject_number(STANDARD_EXAMPLE, subject_kind="person").type is NumberType.CITIZEN_ID
    org = parse_subject_number("91350100M000100Y43", subject_kind="organization")
    assert isinstance(org, SubjectNumber) and org.type is NumberType.CREDIT_CODE
    with pytest.raises(InvalidSubjectNumber) as info:
        parse_subject_number("91350100M000100Y43", subject_kind="person")
    assert info.value.code == "invalid_id_number"
    with pytest.raises(ValueError):
        parse_subject_number(STANDARD_EXAMPLE, subject_kind="robot")
