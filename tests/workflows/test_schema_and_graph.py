"""The published JSON Schema of matter files, and the Mermaid drawing of a matter."""

from __future__ import annotations

import json
import re

import pytest

from workflows.catalogue import SCHEMA_FILE, default_catalogue
from workflows.definitions import SCHEMA_COMMAND, matter_json_schema
from workflows.graph import mermaid


def test_the_committed_schema_is_the_one_the_models_generate():
    expected = json.dumps(matter_json_schema(), ensure_ascii=False, indent=2) + "\n"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected, (
        f"workflows/schema/matter.schema.json is out of date with the models; regenerate it with: {SCHEMA_COMMAND}")


def test_the_schema_describes_the_file_format():
    schema = matter_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"code", "name", "subject_kind", "promise_kind", "form_schema", "effective_from"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert "review_steps" in schema["properties"] and "drop_actions" in schema["properties"]


@pytest.mark.parametrize("code", sorted(default_catalogue().matters))
def test_the_graph_is_a_state_diagram_with_every_state(code):
    matter = default_catalogue().get(code)
    text = mermaid(matter)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert f"    [*] --> {matter.lifecycle.initial}" in lines
    declared = dict(re.findall(r'^    state "([^"]+)" as (\w+)$', text, re.M)[i][::-1]
                    for i in range(len(matter.lifecycle.states)))
    assert set(declared) == set(matter.lifecycle.states)
    for name, state in matter.lifecycle.states.items():
        assert declared[name].startswith(state.label)
        assert re.search(rf"^    (\w+ --> {name}|{name} --> \w+|\[\*\] --> {name}) ?", text, re.M), name
        assert (f"    {name} --> [*]" in lines) == state.terminal
    edges = re.findall(r"^    (\w+) --> (\w+) : (.+)$", text, re.M)
    assert edges and all(a in matter.lifecycle.states and b in matter.lifecycle.states for a, b, _ in edges)
    assert all(":" not in label for _, _, label in edges)


def test_the_graph_labels_actions_and_roles_in_chinese():
    text = mermaid(default_catalogue().get("minimum-living-allowance"))
    assert "first_review --> second_review : 审查通过〔审批人员〕" in text
    assert "in_review --> approved : 准予〔中心负责人〕" in text
    assert "suspended --> first_review : 恢复办理（回到挂起前状态）" in text
    assert "accepted --> accepted" in text
    assert "accepted --> accepted" not in mermaid(default_catalogue().get("minimum-living-allowance"), loops=False)
