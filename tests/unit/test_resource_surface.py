"""One description per resource: the package schema, the provider's resources and the generated SDK's
classes all show the surface of the resource's spec (token, inputs, outputs, required, defaults,
secrets, what replaces), and every property has a description in the schema."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pulumi
import pulumi_supabase_access as supabase_access
import pytest
from pulumi.provider.experimental.property_value import PropertyValue

from supabase_access.management_api.access import ManagementApiAccess
from supabase_access.provider.base import DatabaseSteps, HttpResource, InputError
from supabase_access.provider.schema import package_schema
from supabase_access.provider.server import RESOURCE_TYPES, provider_resources
from supabase_access.provider.spec import UNSET, ResourceSpec
from supabase_access.provider.specs import PROVIDER_CONFIG, SPECS
from supabase_access.provider.values import changed_config, state_properties, typed_config

pytestmark = pytest.mark.unit

SCHEMA = json.loads(package_schema("0.1.0"))
BY_TOKEN = {spec.token: spec for spec in SPECS}
IDS = [spec.name for spec in SPECS]
DECLARABLE = [spec for spec in SPECS if not spec.retired]


def sdk_class(spec: ResourceSpec) -> type[pulumi.CustomResource]:
    cls = getattr(supabase_access, spec.name)
    assert issubclass(cls, pulumi.CustomResource)
    return cls


def sample(spec: ResourceSpec) -> dict[str, Any]:
    """Keyword arguments for the SDK's class: a value of the right type for each required input."""
    values = {"string": "x", "boolean": True, "integer": 1, "array": ["x"], "object": {"k": "v"}}
    return {p.python_name: values[p.type["type"]] for p in spec.inputs if p.required}


def test_the_three_surfaces_name_the_same_resources() -> None:
    assert set(SCHEMA["resources"]) == set(BY_TOKEN) == set(RESOURCE_TYPES)
    # The SDK has a class per resource; the retired TableGrant's is deprecated (stays readable and
    # deletable for old states, warns when declared).
    assert all(sdk_class(spec) for spec in SPECS)
    assert {spec.name for spec in SPECS if spec.retired} == {"TableGrant"}
    assert SCHEMA["resources"]["supabase-access:index:TableGrant"]["deprecationMessage"]


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
    assert isinstance(resource, (DatabaseSteps, HttpResource))
    # A change of each replacing input replaces; of any other input, it does not.
    state = {p.name: "old" for p in spec.inputs}
    for prop in spec.inputs:
        assert resource.replaced(state, {**state, prop.name: "new"}) == ([prop.name] if prop.replaces else [])
    # What the server sends the engine: the spec's secret properties marked, nothing else.
    sent = state_properties(spec, {p.name: "value" for p in (*spec.inputs, *spec.outputs)})
    assert {name for name, value in sent.items() if isinstance(value, PropertyValue) and value.is_secret} == set(
        spec.secret_outputs
    )


def test_provider_settings_sent_as_json_text_get_their_schema_type() -> None:
    """The SDK's Provider (like stack config) sends `port` as the text "5432": check_config gives it back
    as the number a stack made before the SDK holds, so its provider sees no change."""
    sent = {
        "host": PropertyValue("db"),
        "port": PropertyValue("5432"),
        "password": PropertyValue("pw", is_secret=True),
    }
    checked = typed_config(sent)
    assert checked["port"].value == 5432.0 and checked["host"].value == "db"
    assert checked["password"].is_secret
    assert typed_config({"port": PropertyValue("not json")})["port"].value == "not json"


@pytest.mark.parametrize("spec", DECLARABLE, ids=[s.name for s in DECLARABLE])
def test_the_sdk_takes_the_spec_inputs_in_snake_case(spec: ResourceSpec) -> None:
    cls = sdk_class(spec)
    parameters = inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]
    taken = set(parameters) - {"__self__", "resource_name", "opts", "__props__"}
    assert taken == {p.python_name for p in spec.inputs}
    for prop in (*spec.inputs, *spec.outputs):
        assert isinstance(getattr(cls, prop.python_name), property), prop.python_name


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
def test_sdk_classes_send_the_spec_inputs_and_the_provider_fills_the_other_defaults() -> pulumi.Output[None]:
    """The SDK sends what the program gives and the schema's scalar defaults, names as state holds them;
    the provider's check adds the list and map defaults (a package schema has none): together, what
    the program sent when it made every input itself, so stacks made before the SDK see no change."""
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    declared = {spec.token: sdk_class(spec)(f"r-{spec.name}", **sample(spec)) for spec in DECLARABLE}
    retention = declared["supabase-access:index:RetentionPolicy"]
    assert isinstance(retention, supabase_access.RetentionPolicy)

    def check(values: list[Any]) -> None:
        assert values[:2] == ["out-runManually", "out-scheduled"]
        assert set(mocks.registered) == set(declared)
        for token, args in mocks.registered.items():
            spec = BY_TOKEN[token]
            checked = spec.with_defaults(dict(args.inputs))
            expected = {p.name for p in spec.inputs if p.required or p.default not in (UNSET, None)}
            assert set(checked) == expected, token
            for prop in spec.inputs:
                if not prop.required and prop.default not in (UNSET, None):
                    assert checked[prop.name] == prop.default, (token, prop.name)

    return pulumi.Output.all(retention.run_manually, retention.scheduled, *[r.urn for r in declared.values()]).apply(
        check
    )


# The kinds whose id cannot tell the resource (what each holds only its stack saw, inputs no id
# carries, or nothing made at all), with an id of the right shape. The others are imported by
# tests/e2e/test_e2e_import.py.
NOT_IMPORTABLE = {
    "AccessPreflight": "preflight.public",
    "DefaultPrivilegesBaseline": "postgres.public",
    "RlsForNewTables": "rls-for-new-tables",
    "GroupFunctions": "public.project_members",
    "OwnerCopy": "public.actions.user_id",
    "RetentionPolicy": "supabase_access.purge_expired",
    "TableGrant": "anon",
}


@pytest.mark.parametrize(("name", "resource_id"), NOT_IMPORTABLE.items(), ids=list(NOT_IMPORTABLE))
def test_a_kind_its_id_cannot_tell_refuses_import_saying_why(name: str, resource_id: str) -> None:
    resource = provider_resources(ManagementApiAccess(), lambda: None)[f"supabase-access:index:{name}"]
    assert isinstance(resource, DatabaseSteps)
    with pytest.raises(InputError, match=f"^{name} cannot be imported by its id: .+"):
        resource.read(None, resource_id, {}, {})  # type: ignore[arg-type]  # asks no database


def test_provider_settings_diff_leaves_the_engines_own_keys_out() -> None:
    """A stack made before the SDK holds no `version`; the SDK's Provider sends one: no change."""
    old = {"host": PropertyValue("db"), "port": PropertyValue(5432.0)}
    assert changed_config(old, {**old, "version": PropertyValue("0.1.0")}) == {}
    assert changed_config(old, {"host": PropertyValue("other"), "sslmode": PropertyValue("require")}) == {
        "host": "update",
        "port": "delete",
        "sslmode": "add",
    }
