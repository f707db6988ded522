"""How a resource of the provider is described once: its token, inputs and outputs.

Each resource's spec (in `specs.py`) is the one description from which the package schema
(`schema.py`), from it the generated SDK (`sdk/python`, scripts/gen-sdk) and the provider's
replace and secret handling (`base.py`, `server.py`) are made. Plain data: no Pulumi, no database,
so the program can import it without loading the provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PACKAGE = "supabase-access"
# The plugin's version: the schema and the generated SDK carry it, and the SDK asks the engine for it.
VERSION = "0.1.0"

# Property types, as the package schema writes them.
STRING: dict[str, Any] = {"type": "string"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
INTEGER: dict[str, Any] = {"type": "integer"}
STRINGS: dict[str, Any] = {"type": "array", "items": STRING}
MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"$ref": "pulumi.json#/Any"}}
MAPS: dict[str, Any] = {"type": "array", "items": MAP}


class _Unset:
    """No default: the program must give a value (required), or leaves the property out."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Prop:
    """One input or output property, named as state and the schema name it (camelCase)."""

    name: str
    type: dict[str, Any]
    description: str
    # Inputs: the program must give it (no default).
    required: bool = False
    # Inputs: what the program sends when it is not given (UNSET: left out).
    default: Any = UNSET
    # Encrypted in state and shown as [secret].
    secret: bool = False
    # Inputs: a change replaces the resource (delete, then create) instead of updating it.
    replaces: bool = False

    @property
    def python_name(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    description: str
    inputs: tuple[Prop, ...]
    # Outputs beyond the inputs (state holds the inputs too).
    outputs: tuple[Prop, ...] = ()
    # Kept only so stacks holding it can be refreshed and deleted; the program cannot declare it.
    retired: bool = False
    _by_name: dict[str, Prop] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [p.name for p in (*self.inputs, *self.outputs)]
        assert len(names) == len(set(names)), f"{self.name}: a property is declared twice"
        object.__setattr__(self, "_by_name", {p.name: p for p in (*self.inputs, *self.outputs)})

    @property
    def token(self) -> str:
        return f"{PACKAGE}:index:{self.name}"

    @property
    def replace_on(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.inputs if p.replaces)

    @property
    def secret_outputs(self) -> tuple[str, ...]:
        return tuple(p.name for p in (*self.inputs, *self.outputs) if p.secret)

    @property
    def property_names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def prop(self, name: str) -> Prop:
        return self._by_name[name]

    def with_defaults(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """`inputs` with the spec's default for each one left out. The SDK fills in the schema's scalar
        defaults itself; lists and maps have none in a package schema, so the provider fills those."""
        defaults = {p.name: p.default for p in self.inputs if p.default is not UNSET and p.default is not None}
        return {**{k: v for k, v in defaults.items() if k not in inputs}, **inputs}

    def undeclared(self, values: dict[str, Any]) -> list[str]:
        """The keys of `values` (a resource's state or inputs) that the spec does not declare."""
        return sorted(set(values) - self.property_names)


def schema_property(prop: Prop) -> dict[str, Any]:
    described = {**prop.type, "description": prop.description}
    if prop.secret:
        described["secret"] = True
    if prop.default is not UNSET and prop.default is not None and not isinstance(prop.default, (list, dict, tuple)):
        described["default"] = prop.default
    return described
