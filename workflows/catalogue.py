"""Loads the matter catalogue: lifecycles/*.yaml and catalogue/*.yaml under workflows/.

Every file is validated (the schema, then the cross-field rules, then the resolved lifecycle);
every problem is collected with its file and path, and a catalogue with any problem is not
loaded at all: the server refuses to start rather than serve half of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from workflows.definitions import Lifecycle, MatterDefinition
from workflows.resolve import Problem, lifecycle_problems, matter_problems, pydantic_problems, resolve_lifecycle

WORKFLOWS_DIR = Path(__file__).resolve().parent
SCHEMA_FILE = WORKFLOWS_DIR / "schema" / "matter.schema.json"

FileProblem = tuple[str, str, str]  # (file, path, message)


class CatalogueError(Exception):
    """A definition is broken; `problems` lists (file, path, message)."""

    def __init__(self, problems: list[FileProblem]):
        self.problems = problems
        super().__init__("; ".join(f"{file}: {path}: {message}" for file, path, message in problems))


@dataclass(frozen=True)
class Matter:
    """A matter with its lifecycle resolved (inherited, with its review steps, roles and drops)."""

    definition: MatterDefinition
    lifecycle: Lifecycle

    @property
    def code(self) -> str:
        return self.definition.code

    @property
    def version(self) -> int:
        return self.definition.version

    @property
    def effective_from(self) -> date:
        return self.definition.effective_from


@dataclass(frozen=True)
class Catalogue:
    matters: dict[str, Matter]
    lifecycles: dict[str, Lifecycle]
    files: dict[str, Path] = field(default_factory=dict)  # matter code -> its file

    def get(self, code: str) -> Matter | None:
        return self.matters.get(code)


# ----------------------------------------------------------------------------- canonical form

def canonical_definition(definition: MatterDefinition) -> dict[str, Any]:
    """The definition as stored: JSON types, defaults left out, without the store's numbering."""
    return definition.model_dump(mode="json", by_alias=True, exclude_defaults=True,
                                 exclude={"version", "effective_from"})


def canonical_lifecycle(lifecycle: Lifecycle) -> dict[str, Any]:
    return lifecycle.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def matter_sha256(matter: Matter) -> str:
    """Hash of what a case running on this matter depends on: its definition and resolved lifecycle."""
    body = {"definition": canonical_definition(matter.definition), "lifecycle": canonical_lifecycle(matter.lifecycle)}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


# ----------------------------------------------------------------------------- YAML

class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys and keeps dates as text (JSON types only: a form
    schema's `default: 2024-01-01` must stay a string)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    """The document, or the problem with its line and column."""
    try:
        return yaml.load(text, Loader=_Loader), []  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        return None, [(where, f"not valid YAML: {error.problem or error.context}")]
    except yaml.YAMLError as error:
        return None, [("(file)", f"not valid YAML: {error}")]


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(file)


# ----------------------------------------------------------------------------- building

def build_matter(data: Any, lifecycles: dict[str, Lifecycle]) -> tuple[Matter | None, list[Problem]]:
    """Validate one matter definition (a file's content or an administrator's edit) exactly the
    same way, and resolve its lifecycle. Returns the matter, or None and every problem found."""
    if not isinstance(data, dict):
        return None, [("(root)", "expected a mapping of fields (a matter definition)")]
    try:
        definition = MatterDefinition.model_validate(data)
    except ValidationError as error:
        return None, pydantic_problems(error)
    problems = matter_problems(definition)
    base = lifecycles.get(definition.lifecycle)
    if base is None:
        problems.append(("lifecycle", f"unknown lifecycle {definition.lifecycle!r}; known: {sorted(lifecycles)}"))
        return None, problems
    lifecycle, found = resolve_lifecycle(definition, base)
    problems.extend(found)
    if problems or lifecycle is None:
        return None, problems
    return Matter(definition=definition, lifecycle=lifecycle), []


def load_lifecycles(directory: Path) -> tuple[dict[str, Lifecycle], list[FileProblem]]:
    problems: list[FileProblem] = []
    lifecycles: dict[str, Lifecycle] = {}
    files = sorted(directory.glob("*.yaml"))
    if not files:
        problems.append((_display(directory), "(directory)", "no lifecycle files (*.yaml)"))
    for file in files:
        name = _display(file)
        data, found = parse_yaml(file.read_text(encoding="utf-8"))
        if found:
            problems.extend((name, path, message) for path, message in found)
            continue
        if not isinstance(data, dict):
            problems.append((name, "(root)", "expected a mapping"))
            continue
        try:
            lifecycle = Lifecycle.model_validate(data)
        except ValidationError as error:
            problems.extend((name, path, message) for path, message in pydantic_problems(error))
            continue
        structural = lifecycle_problems(lifecycle)
        if structural:
            problems.extend((name, path, message) for path, message in structural)
            continue
        if lifecycle.code != file.stem:
            problems.append((name, "code", f"{lifecycle.code!r} must match the file name {file.stem!r}"))
            continue
        lifecycles[lifecycle.code] = lifecycle
    return lifecycles, problems


@dataclass(frozen=True)
class CatalogueReport:
    catalogue: Catalogue | None
    problems: list[FileProblem]
    files: list[Path]


def _matter_files(path: Path) -> tuple[Path, list[Path]]:
    """(lifecycles directory, matter files) for what `onestop matters check` was given."""
    if path.is_file():
        return WORKFLOWS_DIR / "lifecycles", [path]
    if (path / "catalogue").is_dir():
        lifecycles = path / "lifecycles" if (path / "lifecycles").is_dir() else WORKFLOWS_DIR / "lifecycles"
        return lifecycles, sorted((path / "catalogue").glob("*.yaml"))
    lifecycles = path / "lifecycles" if (path / "lifecycles").is_dir() else WORKFLOWS_DIR / "lifecycles"
    return lifecycles, sorted([*path.glob("*.yaml"), *path.glob("*.yml")])


def check_catalogue(path: Path | None = None) -> CatalogueReport:
    """Validate every lifecycle and matter file; never raises for a broken file.

    `path` is the workflows directory (with lifecycles/ and catalogue/), a directory of matter
    files (checked against the shipped lifecycles unless it has its own), or one matter file.
    """
    lifecycles_dir, files = _matter_files(path or WORKFLOWS_DIR)
    lifecycles, problems = load_lifecycles(lifecycles_dir)
    if not files:
        problems.append((_display(path or WORKFLOWS_DIR), "(directory)", "no matter files (*.yaml)"))
    matters: dict[str, Matter] = {}
    sources: dict[str, Path] = {}
    for file in files:
        name = _display(file)
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append((name, "(file)", "not UTF-8 text"))
            continue
        data, found = parse_yaml(text)
        if not found:
            matter, found = build_matter(data, lifecycles)
            if matter is not None:
                if matter.code != file.stem:
                    found = [("code", f"{matter.code!r} must match the file name {file.stem!r}")]
                elif matter.code in matters:
                    found = [("code", f"duplicate matter code {matter.code!r} (also in {_display(sources[matter.code])})")]
                else:
                    matters[matter.code] = matter
                    sources[matter.code] = file
        problems.extend((name, where, message) for where, message in found)
    catalogue = None if problems else Catalogue(matters=matters, lifecycles=lifecycles, files=sources)
    return CatalogueReport(catalogue=catalogue, problems=problems, files=files)


def load_catalogue(root: Path = WORKFLOWS_DIR) -> Catalogue:
    """Load and validate every lifecycle and matter; raise CatalogueError listing all problems."""
    report = check_catalogue(root)
    if report.catalogue is None:
        raise CatalogueError(report.problems)
    return report.catalogue


@lru_cache
def default_catalogue() -> Catalogue:
    """The shipped catalogue (workflows/catalogue/), loaded once per process."""
    return load_catalogue()


@lru_cache
def default_lifecycles() -> dict[str, Lifecycle]:
    """The shipped lifecycles; raises CatalogueError when one is broken."""
    lifecycles, problems = load_lifecycles(WORKFLOWS_DIR / "lifecycles")
    if problems:
        raise CatalogueError(problems)
    return lifecycles


@lru_cache(maxsize=1)
def finished_states() -> tuple[str, ...]:
    """States that end a case in the shipped lifecycles (no action leaves them): a work queue
    leaves these out. Sorted, so the tuple is a stable part of cached statements."""
    return tuple(sorted({name for lifecycle in default_lifecycles().values()
                         for name, state in lifecycle.states.items() if state.terminal}))
