"""The engine's decision and the definitions it interprets are pure: no I/O, no services or api.
(tests/test_layout.py enforces the import direction for all of workflows/.)"""

from __future__ import annotations

import ast
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
PURE = ["engine.py", "definitions.py", "resolve.py"]
ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "re", "typing", "pydantic", "jsonschema",
           "workflows"}


def test_engine_definitions_and_resolution_import_nothing_that_does_io():
    for name in PURE:
        tree = ast.parse((WORKFLOWS / name).read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"open", "print", "input"}, f"{name} calls {node.func.id}()"
        assert imported <= ALLOWED, f"{name} imports {sorted(imported - ALLOWED)}"
        assert "workflows.catalogue" not in (WORKFLOWS / name).read_text(encoding="utf-8"), name
