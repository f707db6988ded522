"""The provider's Pulumi package schema, made from the resources' specs (`specs.py`): what `pulumi import`
and the SDK generator (scripts/gen-sdk) read, with a description for every property.

`python -m supabase_access.provider.schema` prints it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from supabase_access.provider.spec import VERSION, Prop, ResourceSpec, schema_property
from supabase_access.provider.specs import PROVIDER_CONFIG, SPECS

# What Pulumi's Python SDK generator makes of the schema: the package's version is the schema's
# (the SDK asks the engine for that plugin version), built by a pyproject.toml.
LANGUAGE = {"python": {"respectSchemaVersion": True, "pyproject": {"enabled": True}}}


def _properties(props: Iterable[Prop]) -> dict[str, Any]:
    return {p.name: schema_property(p) for p in props}


def resource_schema(spec: ResourceSpec) -> dict[str, Any]:
    required = sorted(p.name for p in spec.inputs if p.required)
    retired = {"deprecationMessage": spec.description} if spec.retired else {}
    return {
        "description": spec.description,
        **retired,
        "inputProperties": _properties(spec.inputs),
        "requiredInputs": required,
        "properties": _properties((*spec.inputs, *spec.outputs)),
        "required": required,
    }


def package_schema(version: str = VERSION) -> str:
    config = _properties(PROVIDER_CONFIG)
    return json.dumps(
        {
            "name": "supabase-access",
            "version": version,
            "description": "Supabase access rules: RLS, policies, grants and constraint removal as resources.",
            "config": {"variables": config},
            "provider": {
                "inputProperties": config,
                "requiredInputs": sorted(p.name for p in PROVIDER_CONFIG if p.required),
            },
            "resources": {spec.token: resource_schema(spec) for spec in SPECS},
            "language": LANGUAGE,
        }
    )


if __name__ == "__main__":
    print(json.dumps(json.loads(package_schema()), indent=2))
