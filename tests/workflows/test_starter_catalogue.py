"""The shipped starter catalogue: the matters other parts of the project build against, with
real names, time limits, materials and sources, and nothing personal in it."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from workflows.catalogue import WORKFLOWS_DIR, default_catalogue, parse_yaml

# code: (name, subject kind, promise kind, handle level, certificate type, form keys, required form keys)
EXPECTED = {
    "residence-certificate": ("居住证明开具", "person", "promised", "village", "residence-certificate",
                              {"address", "since", "purpose"}, {"address", "since", "purpose"}),
    "individual-business-registration": ("个体工商户设立登记", "person", "promised", "county",
                                         "business-license-individual",
                                         {"business_name", "business_address", "business_scope", "composition",
                                          "capital"}, {"business_address", "business_scope", "composition"}),
    "food-business-license": ("食品经营许可（新办）", "organization", "promised", "county", "food-business-license",
                              {"premises_address", "main_format", "business_items", "food_safety_officer"},
                              {"premises_address", "main_format", "business_items"}),
    "birth-medical-certificate": ("出生医学证明首次签发", "person", "immediate", "county", "birth-medical-certificate",
                                  {"newborn_name", "newborn_gender", "birth_date", "birth_place", "mother_name",
                                   "father_name"}, {"newborn_name", "newborn_gender", "birth_date"}),
    "newborn-household-registration": ("出生登记（新生儿入户）", "person", "immediate", "town", None,
                                       {"newborn_name", "newborn_gender", "birth_date", "household_head_name"},
                                       {"newborn_name", "newborn_gender", "birth_date"}),
    "resident-medical-insurance-enrolment": ("城乡居民基本医疗保险参保登记", "person", "immediate", "town", None,
                                             {"insured_category", "household_address"}, {"insured_category"}),
    "social-security-card": ("社会保障卡申领", "person", "promised", "county", None,
                             {"delivery", "mail_address"}, {"delivery"}),
    "birth-registration": ("生育登记", "person", "immediate", "town", "birth-service-card",
                           {"spouse_name", "marriage_date", "child_order"}, {"spouse_name", "child_order"}),
    "disability-certificate": ("残疾人证（新办）", "person", "promised", "county", "disability-certificate",
                               {"disability_category", "disability_grade", "address", "guardian_name"},
                               {"disability_category", "disability_grade", "address"}),
    "minimum-living-allowance": ("最低生活保障审核确认", "person", "promised", "county",
                                 "subsistence-allowance-certificate",
                                 {"household_size", "household_address", "monthly_income", "reason"},
                                 {"household_size", "monthly_income"}),
    "resident-pension-enrolment": ("城乡居民基本养老保险参保登记", "person", "immediate", "town", None,
                                   {"contribution_grade"}, {"contribution_grade"}),
    "rural-homestead-approval": ("农村宅基地申请", "person", "promised", "town", "homestead-approval",
                                 {"village_group", "site_location", "area_sqm", "household_size", "building_floors"},
                                 {"site_location", "area_sqm"}),
    "construction-permit": ("建筑工程施工许可证核发", "organization", "promised", "county", "construction-permit",
                            {"project_name", "construction_site", "construction_scale", "contract_price",
                             "contractor_name", "design_unit", "supervision_unit"}, {"project_name", "contract_price"}),
}


def test_at_least_twelve_matters_with_the_agreed_codes():
    assert set(EXPECTED) <= set(default_catalogue().matters)
    assert len(default_catalogue().matters) >= 12


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_matter_has_the_agreed_shape(code):
    name, subject, promise, level, certificate, keys, required = EXPECTED[code]
    d = default_catalogue().get(code).definition
    assert (d.name, d.subject_kind, d.promise_kind, d.handle_level, d.certificate_type) == (
        name, subject, promise, level, certificate)
    assert set(d.form_schema["properties"]) == keys
    assert required <= set(d.form_schema.get("required", []))
    assert d.form_schema.get("additionalProperties") is False
    assert d.materials and d.sources and d.department and d.category
    assert d.handle_level in d.receive_levels or code == "social-security-card" or d.receive_levels


def test_the_mix_covers_subjects_promises_levels_and_limits():
    matters = [m.definition for m in default_catalogue().matters.values()]
    assert {d.subject_kind for d in matters} >= {"person", "organization"}
    assert {d.promise_kind for d in matters} == {"immediate", "promised"}
    assert {d.handle_level for d in matters} == {"village", "town", "county"}
    assert len({d.promised_days for d in matters if d.promise_kind == "promised"}) >= 5
    assert any(d.review_steps for d in matters) and any(d.roles for d in matters) and any(d.drop_actions for d in matters)


def test_known_time_limits_and_review_steps():
    get = lambda code: default_catalogue().get(code).definition  # noqa: E731
    assert (get("individual-business-registration").legal_days, get("individual-business-registration").extension_days) == (3, 3)
    assert (get("food-business-license").legal_days, get("food-business-license").extension_days) == (20, 10)
    assert (get("minimum-living-allowance").legal_days, get("minimum-living-allowance").extension_days) == (30, 15)
    assert get("construction-permit").legal_days == 7
    assert get("social-security-card").promised_days == 5
    assert get("disability-certificate").promised_days == 30
    assert [(s.code, s.label) for s in get("minimum-living-allowance").review_steps] == [
        ("first_review", "初审"), ("second_review", "复审")]
    assert [s.label for s in get("rural-homestead-approval").review_steps] == ["村级审查", "乡镇审核"]
    assert get("rural-homestead-approval").form_schema["properties"]["area_sqm"]["maximum"] <= 240


def test_e_certificates_stand_in_for_materials():
    stand_ins = {(code, m.code): m.certificate_type for code, matter in default_catalogue().matters.items()
                 for m in matter.definition.materials if m.certificate_type}
    assert stand_ins[("food-business-license", "business-license")] == "business-license-individual"
    assert stand_ins[("newborn-household-registration", "birth-medical-certificate")] == "birth-medical-certificate"
    assert "disability-certificate" in stand_ins.values()


def test_values_without_a_source_are_marked_as_assumptions():
    for code, matter in default_catalogue().matters.items():
        assert matter.definition.assumptions, code  # every matter says what was chosen for the demo
        assert all(len(text) > 10 for text in (*matter.definition.assumptions, *matter.definition.sources)), code


@pytest.mark.parametrize("file", sorted((WORKFLOWS_DIR / "catalogue").glob("*.yaml")), ids=lambda f: f.stem)
def test_each_file_validates_against_the_published_schema(file):
    import json

    schema = json.loads((WORKFLOWS_DIR / "schema" / "matter.schema.json").read_text(encoding="utf-8"))
    data, problems = parse_yaml(file.read_text(encoding="utf-8"))
    assert problems == []
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(data)]
    assert errors == []
    assert file.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=../schema/matter.schema.json")
