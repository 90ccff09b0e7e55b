"""Matter versions: the shipped files synced into the table, administrators' edits, the version
in force by date, and a running case keeping the version it started with."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from services.matters import service
from services.matters.models import MatterVersion
from services.matters.service import (InvalidMatterDefinition, MatterNotFound, MatterVersionNotFound, UnknownMatter,
                                      current_matter, ensure_catalogue_loads, list_matters, list_versions,
                                      matter_version, save_matter_version, sync_catalogue, today_in_china)
from workflows.catalogue import (WORKFLOWS_DIR, Catalogue, CatalogueError, build_matter, default_catalogue,
                                 default_lifecycles, matter_sha256, parse_yaml)

CODE = "residence-certificate"
ADMIN = "staff:1"


def file_data(code: str = CODE) -> dict:
    data, problems = parse_yaml((WORKFLOWS_DIR / "catalogue" / f"{code}.yaml").read_text(encoding="utf-8"))
    assert problems == []
    return data


def edited(**changes) -> dict:
    data = copy.deepcopy(file_data(CODE))
    data.update(changes)
    return data


def catalogue_with(*matters) -> Catalogue:
    """The shipped catalogue with some matters replaced (a new release of the files)."""
    replaced = dict(default_catalogue().matters)
    for matter in matters:
        replaced[matter.code] = matter
    return Catalogue(matters=replaced, lifecycles=default_catalogue().lifecycles)


def built(data: dict):
    matter, problems = build_matter(data, default_lifecycles())
    assert problems == []
    return matter


def rows(session, code: str = CODE) -> list[MatterVersion]:
    return service.repository.versions(session, code=code)


def test_sync_stores_every_shipped_matter_and_is_idempotent(session):
    sync_catalogue(session)
    again = sync_catalogue(session)
    assert again["created"] == [] and again["unchanged"] == len(default_catalogue().matters)
    for code, matter in default_catalogue().matters.items():
        stored = rows(session, code)
        assert stored and stored[-1].sha256 == matter_sha256(matter) and stored[-1].created_by is None
        assert current_matter(session, code).definition == matter.definition.model_copy(
            update={"version": stored[-1].version})
        assert current_matter(session, code).lifecycle == matter.lifecycle


def test_a_changed_file_becomes_a_new_version_and_running_cases_keep_theirs(session):
    sync_catalogue(session)
    before = current_matter(session, CODE)
    release = built(edited(promised_days=1, materials=[{"code": "id-card", "name": "居民身份证"}]))
    report = sync_catalogue(session, catalogue=catalogue_with(release))
    assert report["created"] == [f"{CODE}@{before.version + 1}"]
    now = current_matter(session, CODE)
    assert (now.version, now.definition.promised_days) == (before.version + 1, 1)
    pinned = matter_version(session, CODE, before.version)  # what a case started on the old version uses
    assert pinned.definition.promised_days == before.definition.promised_days
    assert [m.code for m in pinned.definition.materials] == ["id-card", "residence-proof"]
    assert sync_catalogue(session, catalogue=catalogue_with(release))["created"] == []


def test_a_lifecycle_change_is_a_new_version_and_the_old_lifecycle_stays_pinned(session):
    sync_catalogue(session)
    before = current_matter(session, CODE)
    release = built(edited(roles={"approve": ["supervisor"]}))  # same definition fields but the resolved lifecycle
    sync_catalogue(session, catalogue=catalogue_with(release))
    assert current_matter(session, CODE).lifecycle.actions["approve"].all_roles == ("supervisor",)
    assert matter_version(session, CODE, before.version).lifecycle.actions["approve"].all_roles == (
        "clerk", "reviewer", "supervisor")


def test_an_administrators_edit_is_a_new_version_in_force_from_its_date(session):
    sync_catalogue(session)
    today = today_in_china()
    old = current_matter(session, CODE)
    later, created = save_matter_version(session, code=CODE, data=edited(
        promised_days=1, effective_from=(today + timedelta(days=30)).isoformat()), created_by=ADMIN)
    assert created and later.version == old.version + 1
    assert current_matter(session, CODE).version == old.version  # not yet in force
    assert current_matter(session, CODE, on=today + timedelta(days=30)).version == later.version
    versions = list_versions(session, code=CODE)
    assert versions["current_version"] == old.version
    assert [(item["version"], item["source"], item["in_force"]) for item in versions["items"]][-2:] == [
        (old.version, "file", True), (later.version, "admin", False)]

    same, created_again = save_matter_version(session, code=CODE, data=edited(
        promised_days=1, effective_from=(today + timedelta(days=30)).isoformat()), created_by=ADMIN)
    assert not created_again and same.version == later.version  # the same PUT twice stores nothing new

    now, _ = save_matter_version(session, code=CODE, data=edited(promised_days=3, effective_from=today.isoformat(),
                                                                 version=99), created_by=ADMIN)
    assert now.version == later.version + 1  # the store numbers versions, not the body
    assert current_matter(session, CODE).definition.promised_days == 3
    assert sync_catalogue(session)["created"] == []  # the file didn't change: the edit stays in force
    assert current_matter(session, CODE).version == now.version


def test_a_changed_file_after_an_edit_supersedes_it_and_says_so(session):
    sync_catalogue(session)
    save_matter_version(session, code=CODE, data=edited(promised_days=1, effective_from=today_in_china().isoformat()),
                        created_by=ADMIN)
    report = sync_catalogue(session, catalogue=catalogue_with(built(edited(promised_days=4))))
    assert report["superseded_edits"] == [CODE]
    assert current_matter(session, CODE).definition.promised_days == 4


def test_an_edit_is_validated_like_a_file(session):
    today = today_in_china().isoformat()
    with pytest.raises(InvalidMatterDefinition) as error:
        save_matter_version(session, code=CODE, data=edited(promised_days=9, subject_kind="company",
                                                            effective_from=today), created_by=ADMIN)
    fields = {item["field"] for item in error.value.detail}
    assert fields == {"subject_kind"}  # the schema first; cross-field rules once the fields are valid
    with pytest.raises(InvalidMatterDefinition) as error:
        save_matter_version(session, code=CODE, data=edited(promised_days=9, effective_from=today,
                                                            drop_actions=["stamp"]), created_by=ADMIN)
    assert {item["field"] for item in error.value.detail} == {"promised_days", "drop_actions.0"}
    with pytest.raises(InvalidMatterDefinition) as error:
        save_matter_version(session, code=CODE, data=edited(code="other-code", effective_from=today), created_by=ADMIN)
    assert [item["field"] for item in error.value.detail] == ["code"]
    with pytest.raises(InvalidMatterDefinition) as error:
        save_matter_version(session, code=CODE, data=edited(effective_from="2020-01-01"), created_by=ADMIN)
    assert [item["field"] for item in error.value.detail] == ["effective_from"]
    with pytest.raises(InvalidMatterDefinition):
        save_matter_version(session, code=CODE, data=["not", "a", "definition"], created_by=ADMIN)
    assert all(row.created_by is None for row in rows(session))  # nothing stored


def test_an_administrator_can_add_a_matter(session):
    data = edited(name="临时测试事项", effective_from=today_in_china().isoformat())
    data.pop("code")
    matter, created = save_matter_version(session, code="temporary-matter", data=data, created_by=ADMIN)
    assert created and (matter.code, matter.version) == ("temporary-matter", 1)
    codes = [item["code"] for item in list_matters(session, limit=100)["items"]]
    assert "temporary-matter" in codes and CODE in codes


def test_an_edit_before_the_first_sync_keeps_the_file_as_version_one(session, monkeypatch):
    fresh = built(edited(code="fresh-matter"))
    monkeypatch.setattr(service, "default_catalogue", lambda: catalogue_with(fresh))
    assert current_matter(session, "fresh-matter").version == 1  # served from the file before any sync
    assert matter_version(session, "fresh-matter", 1).definition == fresh.definition
    assert "fresh-matter" in [item["code"] for item in list_matters(session, limit=100)["items"]]
    edit, _ = save_matter_version(session, code="fresh-matter", data=edited(
        code="fresh-matter", promised_days=1, effective_from=today_in_china().isoformat()), created_by=ADMIN)
    assert edit.version == 2
    assert [(row.version, row.created_by) for row in rows(session, "fresh-matter")] == [(1, None), (2, ADMIN)]


def test_unknown_matters_and_versions(session):
    with pytest.raises(MatterNotFound):
        current_matter(session, "no-such-matter")
    with pytest.raises(UnknownMatter):
        current_matter(session, "no-such-matter", from_body=True)
    sync_catalogue(session)
    with pytest.raises(MatterVersionNotFound):
        matter_version(session, CODE, 999)
    with pytest.raises(MatterNotFound):
        list_versions(session, code="no-such-matter")


def test_a_matter_whose_only_version_lies_ahead_is_not_yet_served(session):
    data = edited(effective_from=(today_in_china() + timedelta(days=7)).isoformat())
    save_matter_version(session, code="future-matter", data={**data, "code": "future-matter"}, created_by=ADMIN)
    with pytest.raises(MatterNotFound):
        current_matter(session, "future-matter")
    assert "future-matter" not in [item["code"] for item in list_matters(session, limit=100)["items"]]


def test_a_broken_catalogue_refuses_to_load_with_every_problem(tmp_path):
    assert ensure_catalogue_loads().get(CODE) is not None
    (tmp_path / "lifecycles").mkdir()
    (tmp_path / "catalogue").mkdir()
    (tmp_path / "lifecycles" / "standard.yaml").write_text(
        (WORKFLOWS_DIR / "lifecycles" / "standard.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "catalogue" / "a.yaml").write_text("code: a\nname: [\n", encoding="utf-8")
    (tmp_path / "catalogue" / f"{CODE}.yaml").write_text(
        (WORKFLOWS_DIR / "catalogue" / f"{CODE}.yaml").read_text(encoding="utf-8").replace("promised_days: 2",
                                                                                          "promised_days: 9"),
        encoding="utf-8")
    with pytest.raises(CatalogueError) as error:
        ensure_catalogue_loads(tmp_path)
    assert {problem[0].rsplit("/", 1)[-1] for problem in error.value.problems} == {"a.yaml", f"{CODE}.yaml"}
