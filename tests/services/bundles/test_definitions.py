"""Bundle definitions are data, validated on load: a broken reference is a load error."""

from __future__ import annotations

import pytest
import yaml

from services.bundles.definitions import DEFINITIONS_DIR, BundleDefinition, load_bundles


def newborn() -> dict:
    return yaml.safe_load((DEFINITIONS_DIR / "newborn.yaml").read_text(encoding="utf-8"))


def test_the_shipped_bundles_load():
    bundles = load_bundles()
    assert bundles["newborn"].name == "新生儿出生一件事" and len(bundles["newborn"].matters) == 4


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d["matters"][0]["form"].update(newborn_name="no_such_field"), "unknown 'no_such_field'"),
    (lambda d: d["matters"][1]["materials"].update(household_register="nothing"), "unknown 'nothing'"),
    (lambda d: d["matters"][1]["materials"].update(x="@no-such-matter"), "unknown matter"),
    (lambda d: d["matters"].append(d["matters"][0]), "once in a bundle"),
    (lambda d: d.update(matters=d["matters"][:1]), "at least 2"),
])
def test_broken_references_are_load_errors(breakage, message):
    data = newborn()
    breakage(data)
    with pytest.raises(ValueError) as error:
        BundleDefinition.model_validate(data)
    assert message in str(error.value)
