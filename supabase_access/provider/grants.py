"""TableGrant: exactly these privileges for one role on a list of tables.

The semantics of pulumi-postgresql's Grant (which cannot be built here, see README):
revoke then grant in one transaction, drift read from the ACLs, every field but
`privileges` forces replacement. One resource per (role, schema, object type).
Unlike it, delete restores the privileges found before the first apply.
"""

from __future__ import annotations

from typing import Any

from supabase_access import catalog
from supabase_access import sql as render
from supabase_access.provider.base import (
    InputError,
    Log,
    ManagedResource,
    identifier,
    lock_tables,
    split_id,
    write_transaction,
)
from supabase_access.provider.database import Database


def _privileges(inputs: dict[str, Any]) -> tuple[str, ...]:
    raw = inputs.get("privileges")
    if not isinstance(raw, list):
        raise InputError("privileges", "privileges: expected a list (empty means none)")
    wanted = {str(p).upper() for p in raw}
    unknown = sorted(wanted - set(catalog.TABLE_PRIVILEGES))
    if unknown:
        raise InputError("privileges", f"privileges: unknown {unknown} (known: {', '.join(catalog.TABLE_PRIVILEGES)})")
    return tuple(p for p in catalog.TABLE_PRIVILEGES if p in wanted)


def _objects(inputs: dict[str, Any]) -> list[str]:
    raw = inputs.get("objects")
    if not isinstance(raw, list) or not raw:
        raise InputError("objects", "objects: expected a non-empty list of table names")
    return [identifier({"objects": o}, "objects") for o in raw]


class TableGrant(ManagedResource):
    token = "supabase-access:index:TableGrant"
    replace_on = ("role", "schema", "objectType", "objects")

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        role, schema = identifier(inputs, "role"), identifier(inputs, "schema", "public")
        if inputs.get("objectType", "table") != "table":
            raise InputError("objectType", "objectType: only 'table' is supported")
        return {
            **inputs,
            "role": role,
            "schema": schema,
            "objectType": "table",
            "objects": _objects(inputs),
            "privileges": list(_privileges(inputs)),
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        role, schema, objects = checked["role"], checked["schema"], checked["objects"]
        with db.connection() as conn:
            if catalog.missing_roles(conn, [role]):
                raise InputError("role", f"role: {role} does not exist in the database")
            missing = catalog.missing_tables(conn, schema, objects)
            if missing:
                raise InputError(
                    "objects", f"objects: {', '.join(f'{schema}.{t}' for t in missing)} do not exist in the database"
                )

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        with db.connection() as conn:
            live = catalog.read_table_privileges(conn, inputs["role"], inputs["schema"], inputs["objects"])
        wanted = _privileges(inputs)
        return {"privileges": "update"} if any(p != wanted for p in live.values()) else {}

    def _apply(
        self, db: Database, inputs: dict[str, Any], per_table: dict[str, tuple[str, ...]]
    ) -> dict[str, tuple[str, ...]]:
        role, schema, objects = inputs["role"], inputs["schema"], inputs["objects"]
        with write_transaction(db) as conn:
            lock_tables(conn, schema, objects)
            before = catalog.read_table_privileges(conn, role, schema, objects)
            conn.execute(render.revoke_all(role, schema, objects))
            for table, privileges in per_table.items():
                if privileges:
                    conn.execute(render.grant(role, schema, [table], privileges))
            return before

    def _outputs(self, inputs: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        keys = ("role", "schema", "objectType", "objects", "privileges")
        return {**{k: inputs[k] for k in keys}, "previous": previous}

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        wanted = _privileges(inputs)
        before = self._apply(db, inputs, {t: wanted for t in inputs["objects"]})
        previous = {t: list(p) for t, p in before.items()}
        return f"{inputs['role']}.{inputs['schema']}.table", self._outputs(inputs, previous)

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        wanted = _privileges(inputs)
        self._apply(db, inputs, {t: wanted for t in inputs["objects"]})
        return self._outputs(inputs, state.get("previous") or {})

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        previous = state.get("previous") or {}
        with db.connection() as conn:
            missing = set(catalog.missing_tables(conn, state["schema"], state["objects"]))
        present = [t for t in state["objects"] if t not in missing]
        if present:
            self._apply(db, {**state, "objects": present}, {t: tuple(previous.get(t, ())) for t in present})

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        role, schema, _ = split_id(resource_id, 3, "anon.public.table")
        objects = (state or inputs or {}).get("objects")
        if not objects:
            raise InputError("id", "import a TableGrant with its objects set in the program (the id names no tables)")
        with db.connection() as conn:
            missing = set(catalog.missing_tables(conn, schema, objects))
            present = [t for t in objects if t not in missing]
            if not present:
                return None
            live = catalog.read_table_privileges(conn, role, schema, present)
        # The ACLs hold privileges per table; a resource holds one list, so differing tables show as the union.
        union = [p for p in catalog.TABLE_PRIVILEGES if any(p in v for v in live.values())]
        same = len({v for v in live.values()}) == 1
        current = {"role": role, "schema": schema, "objectType": "table", "objects": list(objects), "privileges": union}
        previous = state.get("previous") if state else {t: list(p) for t, p in live.items()}
        outputs = {**current, "previous": previous, "privilegesByTable": {t: list(p) for t, p in live.items()}}
        if inputs and same and list(inputs.get("privileges", [])) == union:
            return outputs, inputs
        return outputs, current
