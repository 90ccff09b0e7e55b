"""Certificate types as data: one folder per type under e-certificates/.

    e-certificates/<code>/type.yaml     code, name, type_code, issuer, validity, fields, layout
    e-certificates/<code>/template.html the page (string.Template placeholders, see rendering.py)
    e-certificates/<code>/style.css     its style sheet
    e-certificates/<code>/seal.svg      the seal drawn as the visible signature

Field `source`s are dotted paths into the case context the issuing job passes in, e.g.
`applicant.name`, `form.address`, `handling_point.name`. The pipeline adds `certificate.*`
(identifier, serial, issued_at, valid_until, holder_masked) and `issuer.*` (name, credit_code)
so a template can show them as fields too.
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


def uscc_is_valid(code: str) -> bool:
    """GB 32100 check of an 18-character unified social credit code."""
    if len(code) != 18 or any(char not in _USCC_ALPHABET for char in code):
        return False
    total = sum(_USCC_ALPHABET.index(char) * weight for char, weight in zip(code, _USCC_WEIGHTS, strict=False))
    return _USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


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
    format: Literal["text", "date", "year_month"] = "text"


class LayoutSpec(_Strict):
    seal_box: tuple[float, float, float, float]

    @field_validator("seal_box")
    @classmethod
    def _ordered(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= 595.3 and 0 <= y1 < y2 <= 841.9):
            raise ValueError("seal_box must be [x1, y1, x2, y2] inside an A4 page, in points")
        return box


class TypeFile(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str = Field(min_length=2)
    type_code: str = Field(pattern=r"^[0-9A-Z]{21}$")
    issuer: IssuerSpec
    validity: ValiditySpec | None
    fields: list[FieldSpec] = Field(min_length=1)
    layout: LayoutSpec

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


@dataclass(frozen=True)
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
    )


@lru_cache
def _load_all(root: Path) -> dict[str, CertificateType]:
    types: dict[str, CertificateType] = {}
    for directory in sorted(path for path in root.iterdir() if (path / "type.yaml").is_file()):
        cert_type = load_certificate_type(directory)
        types[cert_type.code] = cert_type
    return types


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
    """How a value reads on the certificate: dates in Chinese, year-months as 2019年3月."""
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
            missing.append({"key": spec.key, "label": spec.label, "source": spec.source})
            continue
        resolved.append((spec.label, format_value(value, spec.format).strip()))
    if missing:
        raise MissingFieldSource(
            f"缺少证照字段：{'、'.join(item['label'] for item in missing)}",
            detail={"certificate_type": cert_type.code, "missing": missing},
        )
    return resolved
