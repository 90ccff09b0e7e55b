"""Loading definitions: every kind of broken matter or lifecycle file is a load error with its
file and path, and a catalogue with any problem is not loaded at all."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from workflows.catalogue import (WORKFLOWS_DIR, CatalogueError, build_matter, check_catalogue, default_lifecycles,
                                 load_catalogue, matter_sha256, parse_yaml)

SHIPPED = WORKFLOWS_DIR / "catalogue" / "residence-certificate.yaml"
STANDARD = WORKFLOWS_DIR / "lifecycles" / "standard.yaml"


def shipped(code: str = "residence-certificate") -> dict:
    data, problems = parse_yaml((WORKFLOWS_DIR / "catalogue" / f"{code}.yaml").read_text(encoding="utf-8"))
    assert problems == []
    return data


def workflows_dir(tmp_path: Path, matters: dict[str, object], lifecycle: dict | None = None) -> Path:
    """A workflows/ directory with the standard lifecycle (or `lifecycle`) and the given matter files."""
    (tmp_path / "lifecycles").mkdir()
    (tmp_path / "catalogue").mkdir()
    if lifecycle is None:
        shutil.copy(STANDARD, tmp_path / "lifecycles" / "standard.yaml")
    else:
        (tmp_path / "lifecycles" / "standard.yaml").write_text(yaml.safe_dump(lifecycle, allow_unicode=True),
                                                               encoding="utf-8")
    for name, content in matters.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content, allow_unicode=True, sort_keys=False)
        (tmp_path / "catalogue" / name).write_text(text, encoding="utf-8")
    return tmp_path


def problems_of(tmp_path: Path, data: dict | str, name: str = "residence-certificate.yaml") -> list[tuple[str, str]]:
    report = check_catalogue(workflows_dir(tmp_path, {name: data}))
    assert report.catalogue is None
    assert all(file.endswith(name) or "lifecycles" in file for file, _, _ in report.problems)
    return [(path, message) for _, path, message in report.problems]


def changed(**changes) -> dict:
    data = copy.deepcopy(shipped())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_the_shipped_catalogue_loads_and_a_copy_of_it_too(tmp_path):
    catalogue = load_catalogue()
    assert len(catalogue.matters) >= 12
    copied = load_catalogue(workflows_dir(tmp_path, {"residence-certificate.yaml": shipped()}))
    assert matter_sha256(copied.get("residence-certificate")) == matter_sha256(catalogue.get("residence-certificate"))


BROKEN_MATTERS = [
    # (what, changes, expected path, words in the message)
    ("unknown field", {"colour": "red"}, "colour", "unknown field"),
    ("missing name", {"name": None}, "name", "required"),
    ("bad subject kind", {"subject_kind": "company"}, "subject_kind", "person"),
    ("bad level", {"receive_levels": ["village", "province"]}, "receive_levels.1", "county"),
    ("bad date", {"effective_from": "2026-13-01"}, "effective_from", "date"),
    ("not a JSON Schema", {"form_schema": {"type": 12}}, "form_schema", "JSON Schema"),
    ("form is not an object", {"form_schema": {"type": "string"}}, "form_schema", "type: object"),
    ("required field not in properties",
     {"form_schema": {"type": "object", "required": ["age"], "properties": {}}}, "form_schema", "age"),
    ("promise beyond the law", {"promised_days": 9}, "promised_days", "exceeds legal_days"),
    ("immediate with a promise", {"promise_kind": "immediate"}, "promised_days", "must be 0"),
    ("extension without a legal limit", {"legal_days": None, "extension_days": 3}, "extension_days", "legal_days"),
    ("unknown lifecycle", {"lifecycle": "express"}, "lifecycle", "unknown lifecycle"),
    ("file name and code differ", {"code": "residence-proof"}, "code", "file name"),
    ("duplicate material", {"materials": [{"code": "id-card", "name": "居民身份证"},
                                          {"code": "id-card", "name": "户口簿"}]}, "materials.1.code", "twice"),
    ("review step named like a state",
     {"review_steps": [{"code": "accepted", "label": "初审", "roles": ["reviewer"]}]},
     "review_steps.0.code", "already a state"),
    ("review step code too long for cases.state",
     {"review_steps": [{"code": "a_very_long_review_step_code", "label": "初审", "roles": ["reviewer"]}]},
     "review_steps.0.code", "pattern"),
    ("review step without a role", {"review_steps": [{"code": "first_review", "label": "初审", "roles": []}]},
     "review_steps.0.roles", "at least 1"),
    ("review steps on an immediate matter",
     {"promise_kind": "immediate", "promised_days": 0,
      "review_steps": [{"code": "first_review", "label": "初审", "roles": ["reviewer"]}]},
     "review_steps", "immediate"),
    ("unknown role", {"roles": {"approve": ["mayor"]}}, "roles.approve.0", "supervisor"),
    ("action without a role", {"roles": {"approve": []}}, "roles", "without a role"),
    ("roles for an unknown action", {"roles": {"stamp": ["clerk"]}}, "roles.stamp", "unknown action"),
    ("roles for a generated review action", {"roles": {"review_pass": ["clerk"]}}, "roles.review_pass", "review_steps"),
    ("dropping an unknown action", {"drop_actions": ["stamp"]}, "drop_actions.0", "no action 'stamp'"),
    ("dropping what leads to a state", {"drop_actions": ["suspend"]}, "drop_actions", "unreachable"),
    ("dropping the way out of a state", {"drop_actions": ["deliver"]}, "drop_actions", "dead end"),
    ("dropping the initial state", {"drop_states": ["submitted"]}, "drop_states.0", "every case starts"),
    ("dropping an unknown state", {"drop_states": ["archived"]}, "drop_states.0", "no state"),
    ("an ID number in a file", {"assumptions": ["例如 110101199003074514 的申请人"]}, "assumptions.0",
     "citizen ID number"),
]


@pytest.mark.parametrize("what,changes,path,words", BROKEN_MATTERS, ids=[case[0] for case in BROKEN_MATTERS])
def test_a_broken_matter_is_a_load_error_with_its_path(tmp_path, what, changes, path, words):
    found = problems_of(tmp_path, changed(**changes))
    assert any(where == path and words in message for where, message in found), found


def test_dropping_suspend_with_its_state_is_fine(tmp_path):
    report = check_catalogue(workflows_dir(tmp_path, {"residence-certificate.yaml": changed(
        drop_actions=["suspend"], drop_states=["suspended"])}))
    assert report.problems == []
    lc = report.catalogue.get("residence-certificate").lifecycle
    assert "suspended" not in lc.states and "resume" not in lc.actions
    assert "suspended" not in lc.actions["withdraw"].from_states


def test_role_overrides_replace_the_inherited_roles(tmp_path):
    report = check_catalogue(workflows_dir(tmp_path, {"residence-certificate.yaml": changed(
        roles={"approve": ["supervisor"], "accept": ["clerk"]})}))
    lc = report.catalogue.get("residence-certificate").lifecycle
    assert lc.actions["approve"].all_roles == ("supervisor",)
    assert lc.actions["accept"].all_roles == ("clerk",)


@pytest.mark.parametrize("text,path,words", [
    ("code: [unclosed\n", "line ", "not valid YAML"),
    ("code: a\ncode: b\n", "line 2", "duplicate key 'code'"),
    ("- just\n- a list\n", "(root)", "mapping"),
    ("", "(root)", "mapping"),
])
def test_files_that_are_not_a_yaml_mapping(tmp_path, text, path, words):
    found = problems_of(tmp_path, text)
    assert any(where.startswith(path) and words in message for where, message in found), found


def test_yaml_dates_stay_text_inside_a_form_schema(tmp_path):
    data, _ = parse_yaml("a: 2024-01-01\nb: {default: 2024-01-01}\n")
    assert data == {"a": "2024-01-01", "b": {"default": "2024-01-01"}}


def test_every_problem_of_every_file_is_reported_at_once(tmp_path):
    other = changed(code="other-matter", subject_kind="company")
    root = workflows_dir(tmp_path, {"residence-certificate.yaml": changed(promised_days=9, colour="red"),
                                    "other-matter.yaml": other, "ok.yaml": changed(code="ok")})
    with pytest.raises(CatalogueError) as error:
        load_catalogue(root)
    files = {Path(file).name for file, _, _ in error.value.problems}
    assert files == {"residence-certificate.yaml", "other-matter.yaml"}
    assert len(error.value.problems) >= 2
    assert "residence-certificate.yaml: colour: unknown field" in str(error.value)


def test_an_empty_catalogue_is_an_error(tmp_path):
    report = check_catalogue(workflows_dir(tmp_path, {}))
    assert report.catalogue is None and "no matter files" in report.problems[0][2]


def test_a_directory_of_matter_files_is_checked_against_the_shipped_lifecycles(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8")
    (tmp_path / "residence-certificate.yaml").write_text(text, encoding="utf-8")
    assert check_catalogue(tmp_path).problems == []
    (tmp_path / "residence-certificate.yml").write_text(text, encoding="utf-8")  # the same code twice
    report = check_catalogue(tmp_path)
    assert [(path, "duplicate matter code" in message) for _, path, message in report.problems] == [("code", True)]
    assert check_catalogue(tmp_path / "residence-certificate.yaml").problems == []  # one file


# ----------------------------------------------------------------------------- broken lifecycles

def standard() -> dict:
    return yaml.safe_load(STANDARD.read_text(encoding="utf-8"))


def lifecycle_problems_of(tmp_path: Path, lifecycle: dict) -> list[tuple[str, str]]:
    report = check_catalogue(workflows_dir(tmp_path, {"residence-certificate.yaml": shipped()}, lifecycle))
    return [(path, message) for file, path, message in report.problems if "lifecycles" in file]


def _with(change) -> dict:
    data = standard()
    change(data)
    return data


BROKEN_LIFECYCLES = [
    ("unreachable state", lambda d: d["states"].update(archived={"label": "归档", "national_status": "归档"}),
     "states.archived", "unreachable"),
    ("dead end", lambda d: d["actions"].pop("deliver"), "states.completed", "dead end"),
    ("terminal state with an action out",
     lambda d: d["actions"]["complete"]["transitions"][0]["from"].append("denied"), "states.denied", "terminal"),
    ("action without a role", lambda d: d["actions"]["accept"].pop("roles"), "actions.accept.roles", "no role"),
    ("unknown role", lambda d: d["actions"]["accept"].update(roles=["mayor"]), "actions.accept.roles.0", "clerk"),
    ("unknown state in a transition", lambda d: d["actions"]["accept"]["transitions"][0].update(to="acepted"),
     "actions.accept.transitions.0.to", "unknown state"),
    ("unknown from state", lambda d: d["actions"]["accept"]["transitions"][0]["from"].append("nowhere"),
     "actions.accept.transitions.0.from.1", "unknown state"),
    ("@previous outside resume", lambda d: d["actions"]["supplement"]["transitions"][0].update(to="@previous"),
     "actions.supplement.transitions.0.to", "only for"),
    ("ambiguous transitions",
     lambda d: d["actions"]["accept"]["transitions"].append({"from": ["submitted"], "to": "in_review"}),
     "actions.accept.transitions.1.from.0", "ambiguous"),
    ("unknown initial state", lambda d: d.update(initial="draft"), "initial", "unknown state"),
    ("a loop nothing leaves", lambda d: (
        d["states"].update(parked={"label": "暂存", "national_status": "暂存"}, parked2={"label": "暂存", "national_status": "暂存"}),
        d["actions"].update(park={"label": "暂存", "roles": ["clerk"],
                                  "transitions": [{"from": ["submitted"], "to": "parked"},
                                                  {"from": ["parked2"], "to": "parked"}]},
                            unpark={"label": "暂存", "roles": ["clerk"], "transitions": [{"from": ["parked"], "to": "parked2"}]})),
     "states.parked", "trapped"),
    ("review rules naming an unknown state", lambda d: d["review"].update(decision_state="deciding"),
     "review.decision_state", "unknown state"),
    ("an unknown need", lambda d: d["actions"]["refuse"].update(needs=["signature"]), "actions.refuse.needs.0", "comment"),
]


@pytest.mark.parametrize("what,change,path,words", BROKEN_LIFECYCLES, ids=[case[0] for case in BROKEN_LIFECYCLES])
def test_a_broken_lifecycle_is_a_load_error_with_its_path(tmp_path, what, change, path, words):
    found = lifecycle_problems_of(tmp_path, _with(change))
    assert any(where == path and words in message for where, message in found), found


def test_build_matter_validates_a_definition_like_a_file():
    matter, problems = build_matter(changed(promised_days=9), default_lifecycles())
    assert matter is None and problems[0][0] == "promised_days"
    matter, problems = build_matter(["not", "a", "mapping"], default_lifecycles())
    assert matter is None and problems == [("(root)", "expected a mapping of fields (a matter definition)")]
    matter, problems = build_matter(shipped("minimum-living-allowance"), default_lifecycles())
    assert problems == [] and matter.code == "minimum-living-allowance"
