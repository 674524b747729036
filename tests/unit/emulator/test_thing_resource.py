"""A template's AWS::IoT::Thing resource, as JITP and thing registration tasks apply it to the registry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from emulator.iot.template_runner import ProvisioningError, ThingResource


def thing(override: str | None = None, **props) -> dict:
    resource = {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "dev-1", **props}}
    if override:
        resource["OverrideSettings"] = {"AttributePayload": override}
    return resource


def test_the_resource_gives_name_type_groups_and_attributes_as_strings():
    spec = ThingResource.of(thing(ThingTypeName="Sensor", ThingGroups=["line-1"], AttributePayload={"rev": 2}))
    assert (spec.name, spec.type_name, spec.groups, spec.attributes) == ("dev-1", "Sensor", ("line-1",), {"rev": "2"})


def test_a_thing_without_a_name_is_refused():
    with pytest.raises(ProvisioningError, match="no ThingName"):
        ThingResource.of({"Type": "AWS::IoT::Thing", "Properties": {}})


@pytest.mark.parametrize(
    ("override", "after"),
    [
        ("REPLACE", {"rev": "2"}),
        ("MERGE", {"site": "a", "rev": "2"}),
        (None, {"site": "a", "rev": "1"}),  # DO_NOTHING, AWS's default
    ],
)
def test_an_existing_thing_takes_the_attributes_as_the_override_says(override, after):
    existing = SimpleNamespace(attributes={"site": "a", "rev": "1"})
    ThingResource.of(thing(override, AttributePayload={"rev": 2})).update(existing)
    assert existing.attributes == after


def test_override_fail_refuses_an_existing_thing():
    with pytest.raises(ProvisioningError, match="FAIL"):
        ThingResource.of(thing("FAIL")).update(SimpleNamespace(attributes={}))
