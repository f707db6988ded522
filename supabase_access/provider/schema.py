"""The provider's Pulumi package schema, made from the resources' specs (`specs.py`): what `pulumi import`
and SDK generators read, with a description for every property."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from supabase_access.provider.spec import Prop, ResourceSpec, schema_property
from supabase_access.provider.specs import PROVIDER_CONFIG, SPECS


def _properties(props: Iterable[Prop]) -> dict[str, Any]:
    return {p.name: schema_property(p) for p in props}


def resource_schema(spec: ResourceSpec) -> dict[str, Any]:
    required = sorted(p.name for p in spec.inputs if p.required)
    return {
        "description": spec.description,
        "inputProperties": _properties(spec.inputs),
        "requiredInputs": required,
        "properties": _properties((*spec.inputs, *spec.outputs)),
        "required": required,
    }


def package_schema(version: str) -> str:
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
        }
    )
