"""One description per resource: the package schema, the provider's resources and the program's
classes all show the surface of the resource's spec (token, inputs, outputs, required, defaults,
secrets, what replaces), and every property has a description in the schema."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from pulumi.provider.experimental.property_value import PropertyValue

from components.resources import PROGRAM_RESOURCES, SpecResource, program_inputs
from supabase_access.management_api.access import ManagementApiAccess
from supabase_access.provider.base import DatabaseResource, HttpResource
from supabase_access.provider.schema import package_schema
from supabase_access.provider.server import RESOURCE_TYPES, provider_resources
from supabase_access.provider.spec import UNSET, ResourceSpec
from supabase_access.provider.specs import PROVIDER_CONFIG, SPECS
from supabase_access.provider.values import state_properties

pytestmark = pytest.mark.unit

SCHEMA = json.loads(package_schema("0.1.0"))
BY_TOKEN = {spec.token: spec for spec in SPECS}
IDS = [spec.name for spec in SPECS]


def sample(spec: ResourceSpec) -> dict[str, Any]:
    """Keyword arguments for the program's class: a value of the right type for each required input."""
    values = {"string": "x", "boolean": True, "integer": 1, "array": ["x"], "object": {"k": "v"}}
    return {p.python_name: values[p.type["type"]] for p in spec.inputs if p.required}


def test_the_three_surfaces_name_the_same_resources() -> None:
    declarable = {spec.token for spec in SPECS if not spec.retired}
    assert set(SCHEMA["resources"]) == set(BY_TOKEN) == set(RESOURCE_TYPES)
    assert {cls.spec.token for cls in PROGRAM_RESOURCES} == declarable
    # The retired TableGrant stays readable and deletable for old states; the program cannot declare it.
    assert {spec.name for spec in SPECS if spec.retired} == {"TableGrant"}


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_schema_shows_the_spec_with_a_description_for_every_property(spec: ResourceSpec) -> None:
    resource = SCHEMA["resources"][spec.token]
    assert resource["description"] == spec.description
    assert list(resource["inputProperties"]) == [p.name for p in spec.inputs]
    assert list(resource["properties"]) == [p.name for p in (*spec.inputs, *spec.outputs)]
    assert resource["requiredInputs"] == sorted(p.name for p in spec.inputs if p.required)
    for prop in (*spec.inputs, *spec.outputs):
        described = resource["properties"][prop.name]
        assert described["description"].strip() and described["description"] == prop.description
        assert {k: v for k, v in described.items() if k in ("type", "items", "additionalProperties")} == prop.type
        assert described.get("secret", False) is prop.secret
    for prop in spec.inputs:
        assert resource["inputProperties"][prop.name] == resource["properties"][prop.name]


def test_provider_config_is_described_and_its_secrets_are_secret() -> None:
    variables = SCHEMA["config"]["variables"]
    assert list(variables) == [p.name for p in PROVIDER_CONFIG]
    assert all(v["description"].strip() for v in variables.values())
    assert {name for name, v in variables.items() if v.get("secret")} == {"password", "accessToken"}
    assert SCHEMA["provider"]["requiredInputs"] == ["host", "password"]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_the_provider_replaces_and_keeps_secret_what_the_spec_says(spec: ResourceSpec) -> None:
    resource_class = RESOURCE_TYPES[spec.token]
    assert resource_class.spec is spec and resource_class.token == spec.token
    assert resource_class.replace_on == spec.replace_on
    resource = provider_resources(ManagementApiAccess(), lambda: None)[spec.token]
    assert isinstance(resource, (DatabaseResource, HttpResource))
    # A change of each replacing input replaces; of any other input, it does not.
    state = {p.name: "old" for p in spec.inputs}
    for prop in spec.inputs:
        assert resource.replaced(state, {**state, prop.name: "new"}) == ([prop.name] if prop.replaces else [])
    # What the server sends the engine: the spec's secret properties marked, nothing else.
    sent = state_properties(spec, {p.name: "value" for p in (*spec.inputs, *spec.outputs)})
    assert {name for name, value in sent.items() if isinstance(value, PropertyValue) and value.is_secret} == set(
        spec.secret_outputs
    )


@pytest.mark.parametrize("cls", PROGRAM_RESOURCES, ids=[c.spec.name for c in PROGRAM_RESOURCES])
def test_the_program_sends_the_spec_inputs_with_their_defaults(cls: type[SpecResource]) -> None:
    spec = cls.spec
    assert cls.__doc__ == spec.description
    sent = program_inputs(spec, sample(spec))
    expected = {p.name for p in spec.inputs if p.required or p.default not in (UNSET, None)}
    assert set(sent) == expected
    for prop in spec.inputs:
        if not prop.required and prop.default not in (UNSET, None):
            assert sent[prop.name] == prop.default
    with pytest.raises(TypeError, match="unknown argument"):
        program_inputs(spec, {**sample(spec), "not_an_input": 1})
    for prop in spec.inputs:
        if prop.required:
            with pytest.raises(TypeError, match=f"missing argument {prop.python_name}"):
                program_inputs(spec, {k: v for k, v in sample(spec).items() if k != prop.python_name})


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered[args.typ] = args
        spec = BY_TOKEN[args.typ]
        return f"{args.name}-id", {**args.inputs, **{p.name: f"out-{p.name}" for p in spec.outputs}}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pulumi.runtime.test
def test_program_classes_register_inputs_and_outputs_and_read_outputs_by_python_name() -> pulumi.Output[None]:
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    declared = {cls.spec.token: cls(f"r-{cls.spec.name}", **sample(cls.spec)) for cls in PROGRAM_RESOURCES}
    retention = declared["supabase-access:index:RetentionPolicy"]

    def check(values: list[Any]) -> None:
        assert values[:2] == ["out-runManually", "out-scheduled"]
        assert set(mocks.registered) == set(declared)
        for token, args in mocks.registered.items():
            spec = BY_TOKEN[token]
            assert set(args.inputs) == set(program_inputs(spec, sample(spec)))

    return pulumi.Output.all(retention.run_manually, retention.scheduled, *[r.urn for r in declared.values()]).apply(
        check
    )
