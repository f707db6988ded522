"""Conversions between Pulumi property values and plain Python data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pulumi.provider.experimental.property_value import Computed, PropertyValue

from supabase_access.provider.spec import ResourceSpec
from supabase_access.provider.specs import PROVIDER_CONFIG


class UnknownValueError(Exception):
    """An input is not known yet (preview before a dependency exists)."""


def to_plain(value: PropertyValue) -> Any:
    inner = value.value
    if isinstance(inner, Computed):
        raise UnknownValueError()
    if isinstance(inner, Mapping):
        return {k: to_plain(v) for k, v in inner.items()}
    if isinstance(inner, tuple):
        return [to_plain(v) for v in inner]
    if isinstance(inner, float) and inner.is_integer():
        return int(inner)
    return inner


def plain_map(values: Mapping[str, PropertyValue]) -> dict[str, Any]:
    return {k: to_plain(v) for k, v in values.items()}


def known_plain_map(values: Mapping[str, PropertyValue]) -> dict[str, Any] | None:
    """The values as plain data, or None while any of them is not known yet (a preview)."""
    try:
        return plain_map(values)
    except UnknownValueError:
        return None


def to_property(value: Any, *, secret: bool = False) -> PropertyValue:
    if isinstance(value, PropertyValue):
        return value
    if isinstance(value, Mapping):
        wrapped: Any = {k: to_property(v) for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        wrapped = [to_property(v) for v in value]
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        wrapped = value
    elif isinstance(value, (int, float)):
        wrapped = float(value)
    else:
        raise TypeError(f"cannot send {type(value).__name__} to the engine")
    return PropertyValue(wrapped, is_secret=secret)


def property_map(values: Mapping[str, Any]) -> dict[str, PropertyValue]:
    return {k: to_property(v) for k, v in values.items()}


def secret_property(value: Any) -> PropertyValue:
    """`value` marked secret: the engine encrypts it in state and shows `[secret]` in output.

    Needed because the provider accepts secrets (`accept_secrets=True`), so the engine keeps
    only the secret marks the provider itself sends back; `plain_map` drops them on the way in.
    """
    plain = to_property(value)
    return PropertyValue(plain.value, is_secret=True)


def state_properties(spec: ResourceSpec, values: Mapping[str, Any]) -> dict[str, PropertyValue]:
    """A resource's state for the engine, the properties its spec calls secret marked so."""
    secret = set(spec.secret_outputs)
    return {k: secret_property(v) if k in secret else to_property(v) for k, v in values.items()}


def typed_config(values: Mapping[str, PropertyValue]) -> dict[str, PropertyValue]:
    """The provider's settings with the types its schema gives them: generated SDKs (and stack config)
    send a setting that is not a string as JSON text (`port: "5432"`), Pulumi's convention for providers."""
    typed = dict(values)
    for prop in PROVIDER_CONFIG:
        value = values.get(prop.name)
        if prop.type != {"type": "string"} and value is not None and isinstance(value.value, str):
            try:
                decoded = json.loads(value.value)
            except ValueError:
                continue  # left as it is: connecting names the bad setting
            typed[prop.name] = PropertyValue(to_property(decoded).value, is_secret=value.is_secret)
    return typed


def changed_config(old: Mapping[str, PropertyValue], new: Mapping[str, PropertyValue]) -> dict[str, str] | None:
    """Provider setting -> "add", "delete" or "update", for the settings of the schema that differ; None
    while a new one is not known yet."""
    names = [p.name for p in PROVIDER_CONFIG]
    olds = known_plain_map({k: v for k, v in old.items() if k in names})
    news = known_plain_map({k: v for k, v in new.items() if k in names})
    if olds is None or news is None:
        return None
    changed = {}
    for name in names:
        if olds.get(name) != news.get(name):
            changed[name] = "add" if name not in olds else "delete" if name not in news else "update"
    return changed
