"""Driving one provider resource through its steps as the engine would, for the per-resource db tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from supabase_access.provider.base import CHECK_LOG, CURRENT_STACK, DatabaseSteps
from supabase_access.provider.values import plain_map, state_properties
from supabase_access.sql.database import Database


class UnreachableDatabase(Database):
    """A database no step may use: `connection` fails the test (for what must not ask the database)."""

    def __init__(self) -> None:
        super().__init__({"host": "unused", "username": "unused", "password": "unused"})

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        raise AssertionError("the database was asked")
        yield  # pragma: no cover


@contextmanager
def stack(name: str) -> Iterator[None]:
    """The provider runs as stack `name` (its marks on what it makes) inside the block."""
    token = CURRENT_STACK.set(name)
    try:
        yield
    finally:
        CURRENT_STACK.reset(token)


@contextmanager
def check_warnings() -> Iterator[list[str]]:
    """What the resources' checks say to the preview inside the block (the engine's warnings), in order."""
    said: list[str] = []
    token = CHECK_LOG.set(said.append)
    try:
        yield said
    finally:
        CHECK_LOG.reset(token)


def engine_view(resource: DatabaseSteps, values: dict[str, Any]) -> dict[str, Any]:
    """`values` as the provider gets them back from the engine (through the spec's secret marks)."""
    return plain_map(state_properties(resource.spec, values))


def create(
    resource: DatabaseSteps, db: Database, inputs: dict[str, Any], log: Any = print
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """check then create, as a first `up` does: (id, checked inputs, state); every state key is in the spec."""
    checked = engine_view(resource, resource.check(db, {}, inputs))
    resource_id, outputs = resource.create(db, checked, log)
    assert resource.spec.undeclared(outputs) == [], f"{resource.spec.name} writes undeclared state"
    return resource_id, checked, engine_view(resource, outputs)


def read(
    resource: DatabaseSteps, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """read, as a refresh does; every state key is in the spec."""
    found = resource.read(db, resource_id, state, inputs)
    if found is not None:
        assert resource.spec.undeclared(found[0]) == [], f"{resource.spec.name} reads undeclared state"
        assert resource.spec.undeclared(found[1]) == [], f"{resource.spec.name} reads undeclared inputs"
    return found


# AccessPreflight's inputs for the reference app's model, with the Data API's schema.
REFERENCE_PREFLIGHT: dict[str, Any] = {
    "schema": "public",
    "tables": ["sessions", "segments", "turns", "actions", "generated_content"],
    "roles": ["authenticated"],
    "policies": {},
    "source": "supabase-access:modelFile (access-model.yaml)",
    "policySettings": {},
    "exposedSchemas": ["public"],
}
