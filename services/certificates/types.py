"""Certificate types as data: one folder per type under e-certificates/.

    e-certificates/<code>/type.yaml     code, name, type_code, issuer, validity, fields, layout
    e-certificates/<code>/template.html the page (string.Template placeholders, see rendering.py)
    e-certificates/<code>/style.css     its style sheet
    e-certificates/<code>/seal.svg      the seal drawn as the visible signature
    e-certificates/_shared/             style sheets the types share (no type.yaml: not a type)

Field `source`s are dotted paths into the case context the issuing job passes in, e.g.
`applicant.name`, `form.address`, `handling_point.name`. The pipeline adds `certificate.*`
(identifier, serial, number, issued_at, valid_from, valid_until, holder_masked, holder_code_type)
and `issuer.*` (name, credit_code) so a template can show them as fields too.

The metadata a type declares follows the national e-certificate standards as used in practice
(GB/T 36903 / 36904): certificate name, type name and code, issuing authority and its credit
code, the holder's kind (and so the holder code type: 111 citizen ID number, 001 unified social
credit code), the jurisdiction (administrative division) code, validity and the printed number.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.config import CERTIFICATE_TYPES_DIR
from services.errors import InvalidInput

# GB 32100-2015 unified social credit code: 18 characters from this alphabet, weighted check.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


class CertificateTypeError(Exception):
    """A type definition is broken; the message names the file and the field."""


class MissingFieldSource(InvalidInput):
    code = "certificate_field_missing"
    message = "生成电子证照所需的信息不全"


def uscc_check_character(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a credit code."""
    total = sum(_USCC_ALPHABET.index(char) * weight for char, weight in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_is_valid(code: str) -> bool:
    """GB 32100 check of an 18-character unified social credit code."""
    if len(code) != 18 or any(char not in _USCC_ALPHABET for char in code):
        return False
    return uscc_check_character(code[:17]) == code[17]


# ---------------------------------------------------------------------------------------------
# The file format


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IssuerSpec(_Strict):
    name: str = Field(min_length=2)
    credit_code: str

    @field_validator("credit_code")
    @classmethod
    def _valid_uscc(cls, value: str) -> str:
        if not uscc_is_valid(value):
            raise ValueError("not a valid unified social credit code (GB 32100 check failed)")
        return value


class ValiditySpec(_Strict):
    days: int | None = Field(default=None, ge=1)
    months: int | None = Field(default=None, ge=1)
    years: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> "ValiditySpec":
        given = [name for name in ("days", "months", "years") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of days, months, years (or `validity: none`)")
        return self


class FieldSpec(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)
    source: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
    format: Literal["text", "date", "datetime", "year_month"] = "text"
    # optional: a missing or empty value prints `default` instead of failing the issue
    optional: bool = False
    default: str = "无"
    # printed around the value, e.g. suffix " 万元"
    prefix: str = ""
    suffix: str = ""
    # raw value -> printed value (a value that is already one of the printed ones is kept)
    choices: dict[str, str] | None = None


PAGE_SIZES = {"portrait": (595.28, 841.89), "landscape": (841.89, 595.28)}


class LayoutSpec(_Strict):
    page: Literal["portrait", "landscape"] = "portrait"  # A4
    seal_box: tuple[float, float, float, float]

    @model_validator(mode="after")
    def _ordered(self) -> "LayoutSpec":
        x1, y1, x2, y2 = self.seal_box
        width, height = PAGE_SIZES[self.page]
        if not (0 <= x1 < x2 <= width + 0.1 and 0 <= y1 < y2 <= height + 0.1):
            raise ValueError(f"seal_box must be [x1, y1, x2, y2] inside an A4 {self.page} page, in points")
        return self


NUMBER_SCHEMES = ("serial", "pattern", "food-business-license", "disability-certificate",
                  "individual-business-uscc")
_PATTERN_FIELD = re.compile(r"\{([a-z_]+)(?::[0-9<>^=+-]*d)?\}")
PATTERN_FIELDS = {"serial", "seq", "year", "date", "jurisdiction"}


class NumberSpec(_Strict):
    """How the printed certificate number (证照编号) is made from the registry serial; see
    services/certificates/numbers.py."""

    scheme: Literal["serial", "pattern", "food-business-license", "disability-certificate",
                    "individual-business-uscc"] = "serial"
    pattern: str | None = None  # scheme "pattern": e.g. "婺农宅〔{year}〕{seq:04d}号"
    business_type: int | None = Field(default=None, ge=1, le=9)  # food licence: 主体业态 digit
    business_type_source: str | None = None  # ... or looked up from the case by this path
    business_type_choices: dict[str, int] | None = None  # printed 主体业态 -> digit
    category_source: str | None = None  # disability: where the category and grade are
    grade_source: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> "NumberSpec":
        if self.scheme == "pattern":
            if not self.pattern:
                raise ValueError("scheme pattern needs `pattern`")
            stripped = _PATTERN_FIELD.sub("", self.pattern)
            if "{" in stripped or "}" in stripped:
                raise ValueError(f"pattern may only use {sorted(PATTERN_FIELDS)} (e.g. {{seq:04d}})")
            unknown = {name for name in _PATTERN_FIELD.findall(self.pattern)} - PATTERN_FIELDS
            if unknown:
                raise ValueError(f"unknown pattern fields {sorted(unknown)}; known: {sorted(PATTERN_FIELDS)}")
        if self.scheme == "food-business-license" and self.business_type is None:
            raise ValueError("scheme food-business-license needs `business_type`")
        if self.scheme == "disability-certificate" and not (self.category_source and self.grade_source):
            raise ValueError("scheme disability-certificate needs `category_source` and `grade_source`")
        return self


class TypeFile(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str = Field(min_length=2)
    certificate_name: str | None = None  # 证照名称 where it differs from the type name
    type_code: str = Field(pattern=r"^[0-9A-Z]{21}$")
    issuer: IssuerSpec
    holder_kind: Literal["person", "organization"] = "person"
    jurisdiction_code: str = Field(pattern=r"^\d{6}(\d{6})?$")
    validity: ValiditySpec | None
    number: NumberSpec = NumberSpec()
    fields: list[FieldSpec] = Field(min_length=1)
    layout: LayoutSpec
    assumptions: list[str] = []  # demo values chosen where no public source was found
    # a made-up case context (applicant, form, handling_point, operator) for previews and tests
    sample: dict[str, Any] | None = None

    @field_validator("validity", mode="before")
    @classmethod
    def _none_word(cls, value: Any) -> Any:
        return None if value in ("none", "None") else value

    @field_validator("fields")
    @classmethod
    def _unique_keys(cls, fields: list[FieldSpec]) -> list[FieldSpec]:
        keys = [item.key for item in fields]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"duplicate field keys: {', '.join(duplicates)}")
        return fields


# ---------------------------------------------------------------------------------------------
# What the rest of the code uses


HOLDER_CODE_TYPES = {"person": "111", "organization": "001"}
HOLDER_CODE_TYPE_NAMES = {"111": "公民身份号码", "001": "统一社会信用代码"}


@dataclass(frozen=True, eq=False)
class CertificateType:
    code: str
    name: str
    type_code: str
    issuer_name: str
    issuer_code: str
    validity: ValiditySpec | None
    fields: tuple[FieldSpec, ...]
    seal_box: tuple[float, float, float, float]
    directory: Path
    certificate_name: str = ""
    holder_kind: str = "person"
    jurisdiction_code: str = "361130"
    number: NumberSpec = NumberSpec()
    page: str = "portrait"
    assumptions: tuple[str, ...] = ()
    sample: dict[str, Any] | None = None

    @property
    def holder_code_type(self) -> str:
        """GB/T 36903 holder code type: 111 citizen ID number, 001 unified social credit code."""
        return HOLDER_CODE_TYPES[self.holder_kind]

    @property
    def page_size(self) -> tuple[float, float]:
        return PAGE_SIZES[self.page]

    @property
    def issuer(self) -> IssuerSpec:
        """The issuing authority as in type.yaml (`issuer.name`, `issuer.credit_code`)."""
        return IssuerSpec(name=self.issuer_name, credit_code=self.issuer_code)

    @property
    def template_path(self) -> Path:
        return self.directory / "template.html"

    @property
    def style_path(self) -> Path:
        return self.directory / "style.css"

    @property
    def seal_path(self) -> Path:
        return self.directory / "seal.svg"

    def valid_until(self, issued_at: dt.date) -> dt.date | None:
        """Last day of validity, counted as the Civil Code counts periods (民法典 §201-§202: the
        day of issue is not counted; a period in months or years ends on the corresponding
        day, or on the month's last day when there is none). 6 months from 2026-01-15 ends on
        2026-07-15, from 2026-08-31 on 2027-02-28. None when the type doesn't expire."""
        if self.validity is None:
            return None
        if self.validity.days:
            return issued_at + dt.timedelta(days=self.validity.days)
        months = self.validity.months or (self.validity.years or 0) * 12
        return _add_months(issued_at, months)


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for last_day in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last_day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def load_certificate_type(directory: Path) -> CertificateType:
    """Read and validate one type folder; errors name the file and the field."""
    file = directory / "type.yaml"
    label = f"{directory.name}/type.yaml"
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CertificateTypeError(f"{label}: cannot read: {error}") from error
    if not isinstance(data, dict):
        raise CertificateTypeError(f"{label}: expected a mapping at the top level")
    try:
        spec = TypeFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}" for item in error.errors()
        )
        raise CertificateTypeError(f"{label}: {problems}") from error
    if spec.code != directory.name:
        raise CertificateTypeError(f"{label}: code: {spec.code!r} must equal the folder name {directory.name!r}")
    for asset in ("template.html", "style.css", "seal.svg"):
        if not (directory / asset).is_file():
            raise CertificateTypeError(f"{directory.name}/{asset}: missing")
    return CertificateType(
        code=spec.code,
        name=spec.name,
        type_code=spec.type_code,
        issuer_name=spec.issuer.name,
        issuer_code=spec.issuer.credit_code,
        validity=spec.validity,
        fields=tuple(spec.fields),
        seal_box=spec.layout.seal_box,
        directory=directory,
        certificate_name=spec.certificate_name or spec.name,
        holder_kind=spec.holder_kind,
        jurisdiction_code=spec.jurisdiction_code,
        number=spec.number,
        page=spec.layout.page,
        assumptions=tuple(spec.assumptions),
        sample=spec.sample,
    )


@lru_cache
def _load_all(root: Path) -> dict[str, CertificateType]:
    types: dict[str, CertificateType] = {}
    for directory in sorted(path for path in root.iterdir() if (path / "type.yaml").is_file()):
        cert_type = load_certificate_type(directory)
        types[cert_type.code] = cert_type
    _check_across_types(types)
    return types


def _check_across_types(types: dict[str, CertificateType]) -> None:
    """What no single file can check: type codes are unique, and one credit code is one issuer."""
    by_type_code: dict[str, str] = {}
    issuer_names: dict[str, tuple[str, str]] = {}
    for cert_type in types.values():
        other = by_type_code.setdefault(cert_type.type_code, cert_type.code)
        if other != cert_type.code:
            raise CertificateTypeError(f"{cert_type.code}/type.yaml: type_code: also used by {other}")
        name, where = issuer_names.setdefault(cert_type.issuer_code, (cert_type.issuer_name, cert_type.code))
        if name != cert_type.issuer_name:
            raise CertificateTypeError(f"{cert_type.code}/type.yaml: issuer.name: credit code "
                                       f"{cert_type.issuer_code} is {name!r} in {where}")


def find_certificate_type(code_or_type_code: str) -> CertificateType | None:
    """A type by its slug (residence-certificate) or its 21-character type code."""
    types = load_certificate_types()
    if code_or_type_code in types:
        return types[code_or_type_code]
    return next((t for t in types.values() if t.type_code == code_or_type_code), None)


def load_certificate_types(root: Path = CERTIFICATE_TYPES_DIR) -> dict[str, CertificateType]:
    """Every type under e-certificates/, keyed by code (cached)."""
    return _load_all(Path(root))


# ---------------------------------------------------------------------------------------------
# Fields


def _lookup(context: dict, source: str) -> Any:
    value: Any = context
    for part in source.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif not isinstance(value, dict) and hasattr(value, part):
            value = getattr(value, part)
        else:
            raise KeyError(source)
    return value


_YEAR_MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})(?:-\d{1,2})?$")


def format_date(value: dt.date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def format_value(value: Any, style: str = "text") -> str:
    """How a value reads on the certificate: dates in Chinese, year-months as 2019年3月,
    date-times as 2026年3月1日8时30分."""
    if style == "datetime":
        moment = value
        if not isinstance(moment, dt.datetime):
            try:
                moment = dt.datetime.fromisoformat(str(value))
            except ValueError:
                moment = None
        if isinstance(moment, dt.datetime):
            if isinstance(value, str) and "T" not in value and " " not in value.strip():
                return format_date(moment.date())  # a bare date: no time of day to print
            return f"{format_date(moment.date())}{moment.hour}时{moment.minute:02d}分"
        style = "date"
    if isinstance(value, (list, tuple)):
        return "、".join(format_value(item, style) for item in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime):
        value = value.date()
    if style == "year_month":
        if isinstance(value, dt.date):
            return f"{value.year}年{value.month}月"
        match = _YEAR_MONTH_RE.match(str(value))
        if match:
            return f"{int(match.group(1))}年{int(match.group(2))}月"
    if style in ("date", "text") and isinstance(value, dt.date):
        return format_date(value)
    if style == "date":
        try:
            return format_date(dt.date.fromisoformat(str(value)))
        except ValueError:
            pass
    return str(value)


def choice_value(choices: dict[str, str] | None, value: Any) -> str:
    """The printed form of an enumerated value: its mapping, or itself if already printed."""
    text = str(value).strip()
    if not choices:
        return text
    if text in choices:
        return choices[text]
    lowered = {key.lower(): shown for key, shown in choices.items()}
    return lowered.get(text.lower(), text)


def render_field(spec: FieldSpec, value: Any) -> str:
    """One field's value as printed: choices, then formatting, then prefix and suffix."""
    if spec.choices and isinstance(value, (list, tuple)):
        text = "、".join(choice_value(spec.choices, item) for item in value)
    elif spec.choices:
        text = choice_value(spec.choices, value)
    else:
        text = format_value(value, spec.format).strip()
    return f"{spec.prefix}{text}{spec.suffix}"


def lookup(context: dict, source: str) -> Any:
    """The value at a dotted `source` path in a context, or None."""
    try:
        return _lookup(context, source)
    except KeyError:
        return None


def resolve_fields(cert_type: CertificateType, context: dict) -> list[tuple[str, str]]:
    """(label, value) for every field of the type, in order; MissingFieldSource names what is
    missing or empty."""
    resolved: list[tuple[str, str]] = []
    missing: list[dict[str, str]] = []
    for spec in cert_type.fields:
        try:
            value = _lookup(context, spec.source)
        except KeyError:
            value = None
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.optional:
                resolved.append((spec.label, spec.default))
                continue
            missing.append({"key": spec.key, "label": spec.label, "source": spec.source})
            continue
        resolved.append((spec.label, render_field(spec, value)))
    if missing:
        raise MissingFieldSource(
            f"缺少证照字段：{'、'.join(item['label'] for item in missing)}",
            detail={"certificate_type": cert_type.code, "missing": missing},
        )
    return resolved
