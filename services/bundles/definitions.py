"""Bundle (一件事) definitions: data files under services/bundles/definitions/, validated on load.

A bundle names several matters, one combined form (JSON Schema) and one set of materials; for
each matter it says which of the matter's form fields come from which combined field, and which
of the matter's materials come from which combined material — or, written `@<matter code>`, from
the e-certificate the bundle's case of that matter issues.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.definitions import MaterialDefinition

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BundleMatter(_Strict):
    matter_code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    form: dict[str, str] = Field(default_factory=dict)  # matter field -> combined field
    materials: dict[str, str] = Field(default_factory=dict)  # matter material -> combined material | @matter


class BundleDefinition(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    name: str
    version: int = Field(default=1, ge=1)
    subject_kind: str = Field(pattern=r"^(person|organization)$")
    description: str = ""
    form_schema: dict[str, Any]
    materials: tuple[MaterialDefinition, ...]
    matters: tuple[BundleMatter, ...] = Field(min_length=2)
    sources: tuple[str, ...] = ()

    @field_validator("form_schema")
    @classmethod
    def _schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        Draft202012Validator.check_schema(schema)
        return schema

    @model_validator(mode="after")
    def _references(self) -> "BundleDefinition":
        codes = [m.matter_code for m in self.matters]
        if len(codes) != len(set(codes)):
            raise ValueError("a matter may appear once in a bundle")
        fields = set((self.form_schema.get("properties") or {}).keys())
        materials = {m.code for m in self.materials}
        for matter in self.matters:
            for target, source in matter.form.items():
                if source not in fields:
                    raise ValueError(f"{matter.matter_code}: form field {target!r} maps from unknown {source!r}")
            for target, source in matter.materials.items():
                if source.startswith("@"):
                    if source[1:] not in codes or source[1:] == matter.matter_code:
                        raise ValueError(f"{matter.matter_code}: material {target!r} from unknown matter {source!r}")
                elif source not in materials:
                    raise ValueError(f"{matter.matter_code}: material {target!r} maps from unknown {source!r}")
        return self


def load_bundles(directory: Path = DEFINITIONS_DIR) -> dict[str, BundleDefinition]:
    bundles = {}
    for file in sorted(directory.glob("*.yaml")):
        try:
            definition = BundleDefinition.model_validate(yaml.safe_load(file.read_text(encoding="utf-8")))
        except Exception as error:  # a broken file names itself
            raise ValueError(f"{file.name}: {error}") from error
        bundles[definition.code] = definition
    return bundles


@lru_cache
def default_bundles() -> dict[str, BundleDefinition]:
    return load_bundles()
