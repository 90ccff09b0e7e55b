"""Loads the matter catalogue: lifecycles/*.yaml and catalogue/*.yaml under workflows/."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from workflows.definitions import Lifecycle, MatterDefinition

WORKFLOWS_DIR = Path(__file__).resolve().parent


class CatalogueError(Exception):
    """A definition file is broken; `problems` lists (file, path, message)."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{file}: {path}: {message}" for file, path, message in problems))


@dataclass(frozen=True)
class Matter:
    """A matter with its lifecycle resolved (inherited, minus dropped actions)."""

    definition: MatterDefinition
    lifecycle: Lifecycle

    @property
    def code(self) -> str:
        return self.definition.code


@dataclass(frozen=True)
class Catalogue:
    matters: dict[str, Matter]
    lifecycles: dict[str, Lifecycle]

    def get(self, code: str) -> Matter | None:
        return self.matters.get(code)


def _problems(file: Path, error: ValidationError) -> list[tuple[str, str, str]]:
    return [(file.name, ".".join(str(part) for part in item["loc"]) or "(root)", item["msg"])
            for item in error.errors()]


def _read_yaml(file: Path, problems: list) -> dict | None:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        problems.append((file.name, "(file)", f"not valid YAML: {error}"))
        return None
    if not isinstance(data, dict):
        problems.append((file.name, "(root)", "expected a mapping"))
        return None
    return data


def load_catalogue(root: Path = WORKFLOWS_DIR) -> Catalogue:
    """Load and validate every lifecycle and matter; raise CatalogueError listing all problems."""
    problems: list[tuple[str, str, str]] = []
    lifecycles: dict[str, Lifecycle] = {}
    for file in sorted((root / "lifecycles").glob("*.yaml")):
        data = _read_yaml(file, problems)
        if data is None:
            continue
        try:
            lifecycle = Lifecycle.model_validate(data)
        except ValidationError as error:
            problems.extend(_problems(file, error))
            continue
        lifecycles[lifecycle.code] = lifecycle

    matters: dict[str, Matter] = {}
    for file in sorted((root / "catalogue").glob("*.yaml")):
        data = _read_yaml(file, problems)
        if data is None:
            continue
        try:
            definition = MatterDefinition.model_validate(data)
        except ValidationError as error:
            problems.extend(_problems(file, error))
            continue
        base = lifecycles.get(definition.lifecycle)
        if base is None:
            problems.append((file.name, "lifecycle", f"unknown lifecycle {definition.lifecycle!r}"))
            continue
        try:
            lifecycle = base.without_actions(definition.drop_actions)
        except (ValueError, ValidationError) as error:
            problems.append((file.name, "drop_actions", str(error)))
            continue
        if definition.code in matters:
            problems.append((file.name, "code", f"duplicate matter code {definition.code!r}"))
            continue
        matters[definition.code] = Matter(definition=definition, lifecycle=lifecycle)
    if problems:
        raise CatalogueError(problems)
    return Catalogue(matters=matters, lifecycles=lifecycles)


@lru_cache
def default_catalogue() -> Catalogue:
    return load_catalogue()
