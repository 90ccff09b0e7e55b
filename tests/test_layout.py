"""The architecture's import direction: api → services → workflows, never back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), alias.name.split(".")[0]) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


def test_workflows_import_neither_services_nor_api_nor_io_frameworks():
    forbidden = {"services", "api", "fastapi", "sqlmodel", "sqlalchemy", "httpx", "redis"}
    assert [pair for pair in _imports("workflows") if pair[1] in forbidden] == []


def test_services_never_import_api_or_fastapi():
    assert [pair for pair in _imports("services") if pair[1] in {"api", "fastapi", "starlette"}
            and not pair[0].startswith("services/wechat/fake_server")] == []


def test_top_level_layout_is_the_one_the_brief_fixes():
    expected = {"api", "services", "workflows", "e-certificates", "migrations", "tests", "pyproject.toml", "README.md"}
    present = {path.name for path in ROOT.iterdir()
               if not path.name.startswith(".") and not path.name.endswith(".egg-info")}
    assert expected <= present
    assert present - expected <= {"var", "build"}  # git-ignored: the demo's runtime data, build output
