"""How a resource of the provider is described once: its token, inputs and outputs.

Each resource's spec (in `specs.py`) is the one description from which the package schema
(`schema.py`), from it the generated SDK (`sdk/python`, scripts/gen-sdk) and the provider's
replace and secret handling (`base.py`, `server.py`) are made. Plain data: no Pulumi, no database,
so the program can import it without loading the provider.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

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
    # The types the properties are declared by (`typed`): what the provider parses inputs and state into.
    inputs_type: type[Props] | None = None
    state_type: type[Props] | None = None
    _by_name: dict[str, Prop] = field(init=False, repr=False, compare=False)

    @classmethod
    def typed(
        cls, name: str, description: str, inputs: type[Props], state: type[Props], *, retired: bool = False
    ) -> ResourceSpec:
        """The spec declared by its types: `inputs`' fields are the inputs, the fields `state` (a subclass
        of `inputs`: state holds the inputs too) adds are the outputs. A state that keeps only some of the
        inputs and adds none (AccessPreflight's) is a base of `inputs` instead."""
        assert issubclass(state, inputs) or issubclass(inputs, state), (
            f"{name}: the state type must extend the inputs type (or, keeping some inputs only, be its base)"
        )
        declared = inputs.props()
        outputs = tuple(p for p in state.props() if p not in declared)
        # A replacing input is compared with the state's value (DatabaseResource.diff): the state must keep it.
        kept = {p.name for p in state.props()}
        assert all(p.name in kept for p in declared if p.replaces), f"{name}: the state must keep each replacing input"
        return cls(name, description, declared, outputs, retired, inputs, state)

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


# --- Typed properties --------------------------------------------------------------------------------
# A resource's inputs and state are frozen dataclasses of `Props`, each field declared with `prop(...)`:
# the field's Python type gives the schema type, `prop` the rest of the Prop. The field `some_name` is the
# property `someName` in Pulumi state (the wire), as the generated SDK names it back.


class PropsError(ValueError):
    """A property whose value does not have its declared type; `property` is its name on the wire."""

    def __init__(self, property: str, reason: str) -> None:
        super().__init__(reason)
        self.property = property
        self.reason = reason


def wire_name(field_name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), field_name)


def prop(
    description: str,
    *,
    required: bool = False,
    default: Any = UNSET,
    secret: bool = False,
    replaces: bool = False,
    fallback: Any = UNSET,
) -> Any:
    """A field of a Props dataclass: an input or output property (see Prop). A required field has no
    default (parsing data without it fails), unless `fallback` gives what the provider takes when it is
    missing anyway (an older program's inputs, a resource's normalize filling it in); another takes
    `default` (the schema's, which the program's SDK sends too) or None."""
    meta = {
        "description": description,
        "required": required,
        "default": default,
        "secret": secret,
        "replaces": replaces,
    }
    if required:
        if fallback is UNSET:
            return field(metadata=meta)
        if isinstance(fallback, dict):
            return field(default_factory=functools.partial(dict, fallback), metadata=meta)
        return field(default=fallback, metadata=meta)
    if isinstance(default, (list, tuple)):
        items = tuple(default)
        return field(default=items, metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=None if default is UNSET else default, metadata=meta)


_SCALARS: dict[Any, dict[str, Any]] = {str: STRING, bool: BOOLEAN, int: INTEGER}


def _without_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _is_props(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Props)


def _schema_type(tp: Any, where: str) -> dict[str, Any]:
    tp = _without_none(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if _is_props(tp) or origin in (Mapping, dict) or tp is Any:
        return MAP
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _without_none(args[0])
        if item is str:
            return STRINGS
        if _is_props(item) or typing.get_origin(item) in (Mapping, dict):
            return MAPS
    raise TypeError(f"{where}: no schema type for {tp!r}")


def _kind(tp: Any) -> str:
    tp = _without_none(tp)
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if origin is tuple:
        return "a list"
    return "a map"


def _parse(tp: Any, value: Any, name: str) -> Any:
    """`value` (plain data from the engine) as the type `tp` declares; PropsError when it is not."""
    if value is None:
        return None
    tp = _without_none(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    elif _is_props(tp):
        if not isinstance(value, Mapping):
            raise PropsError(name, f"{name}: expected {_kind(tp)}, got {value!r}")
        return tp.from_wire(value, where=f"{name}.")
    elif origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise PropsError(name, f"{name}: expected {_kind(tp)}, got {value!r}")
        return tuple(_parse(args[0], item, name) for item in value)
    elif origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise PropsError(name, f"{name}: expected {_kind(tp)}, got {value!r}")
        return {str(k): _parse(args[1], v, name) for k, v in value.items()} if args else dict(value)
    else:
        raise TypeError(f"{name}: cannot parse into {tp!r}")
    if not ok:
        raise PropsError(name, f"{name}: expected {_kind(tp)}, got {value!r}")
    return value


def _to_wire(value: Any) -> Any:
    if isinstance(value, Props):
        return value.to_wire()
    if isinstance(value, (list, tuple)):
        return [_to_wire(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_wire(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class Props:
    """Base of a resource's typed inputs and state (frozen, keyword-only dataclasses)."""

    _hints: ClassVar[dict[str, Any]]

    @classmethod
    def _fields(cls) -> list[tuple[dataclasses.Field[Any], Any]]:
        if "_hints" not in cls.__dict__:
            cls._hints = typing.get_type_hints(cls)
        return [(f, cls._hints[f.name]) for f in dataclasses.fields(cls)]

    @classmethod
    def props(cls) -> tuple[Prop, ...]:
        """The Props (the schema's view) of the fields, in declaration order."""
        declared = []
        for f, tp in cls._fields():
            meta = f.metadata
            declared.append(
                Prop(
                    wire_name(f.name),
                    _schema_type(tp, f"{cls.__name__}.{f.name}"),
                    meta["description"],
                    required=meta["required"],
                    default=meta["default"],
                    secret=meta["secret"],
                    replaces=meta["replaces"],
                )
            )
        return tuple(declared)

    @classmethod
    def from_wire(cls, values: Mapping[str, Any], *, where: str = "") -> Self:
        """Parse plain data keyed by the wire's names; keys the type does not declare are ignored (an older
        version's). Raises PropsError naming the property."""
        parsed: dict[str, Any] = {}
        for f, tp in cls._fields():
            name = wire_name(f.name)
            value = values.get(name)
            if value is None:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise PropsError(name, f"{where}{name}: required, not given")
                continue
            try:
                parsed[f.name] = _parse(tp, value, f"{where}{name}")
            except PropsError as exc:
                if where:
                    raise
                raise PropsError(name, exc.reason) from None  # the top-level property, as the user wrote it
        return cls(**parsed)

    def to_wire(self) -> dict[str, Any]:
        """Plain data keyed by the wire's names; a property without a value is left out."""
        wire = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                wire[wire_name(f.name)] = _to_wire(value)
        return wire

    @classmethod
    def taking(cls, *sources: Props | None, **changes: Any) -> Self:
        """An instance with the fields each of `sources` shares with this type (the later ones win; None is
        skipped), then `changes`: state from inputs, inputs from state, a state with the inputs read back."""
        own = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for source in sources:
            if source is not None:
                values.update({f.name: getattr(source, f.name) for f in dataclasses.fields(source) if f.name in own})
        return cls(**{**values, **changes})
