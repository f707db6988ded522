"""DefaultPrivilegesBaseline: the default privileges one creating role gave the API roles in one
schema before the stack closed them, put back by `destroy`.

The closing itself is pulumi_postgresql.DefaultPrivileges (privileges: none), which depends on
this resource: on destroy it revokes first, then this resource grants back what was found. The
baseline goes to the ledger too (first record stands), so a run killed after the revoke still
knows what to restore.
"""

from __future__ import annotations

from typing import Any

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    Notice,
    identifier,
    not_importable,
    split_id,
)
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import write_transaction

LEDGER_KIND = "default-privileges"


class DefaultPrivilegesBaseline(DatabaseResource):
    spec = specs.DEFAULT_PRIVILEGES_BASELINE

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        roles = [identifier({"roles": r}, "roles") for r in inputs.get("roles") or []]
        if not roles:
            raise InputError("roles", "roles: name the roles whose default privileges the stack manages")
        return {
            "owner": identifier(inputs, "owner"),
            "schema": identifier(inputs, "schema", "public"),
            "roles": sorted(set(roles)),
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        with db.connection() as conn:
            role_exists, schema_exists = catalog.role_and_schema_exist(conn, checked["owner"], checked["schema"])
        if not role_exists:
            raise InputError("owner", f"owner: role {checked['owner']} does not exist in the database")
        if not schema_exists:
            raise InputError("schema", f"schema: schema {checked['schema']} does not exist in the database")

    def _read(self, db: Database, owner: str, schema: str, roles: list[str]) -> dict[str, dict[str, list[str]]]:
        """object type -> role -> privileges, for `roles` (every object type present, maybe empty)."""
        found: dict[str, dict[str, list[str]]] = {t: {r: [] for r in roles} for t in render.DEFAULT_ACL_OBJECTS}
        with db.connection() as conn:
            for object_type, grantee, privilege in conn.execute(catalog.default_privileges_query(), (owner, schema)):
                if object_type in found and grantee in found[object_type]:
                    found[object_type][grantee].append(privilege)
        return {t: {r: sorted(p) for r, p in by_role.items()} for t, by_role in found.items()}

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        # It only remembers (pulumi_postgresql.DefaultPrivileges keeps the live ones): which stacks
        # use the baseline, so the last one gives it back (a stack made before that is added by `up`).
        with db.connection() as conn:
            recorded = ledger.read(conn, LEDGER_KIND, f"{inputs['owner']}.{inputs['schema']}") or {}
        return {} if CURRENT_STACK.get() in (recorded.get("stacks") or []) else {"previous": "update"}

    def _register(self, db: Database, inputs: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
        """The ledger's record (the first stands: what was there before the first stack), this stack among its users."""
        key = f"{inputs['owner']}.{inputs['schema']}"
        with write_transaction(db) as conn:
            ledger.record(conn, LEDGER_KIND, key, found)
            known = ledger.read(conn, LEDGER_KIND, key) or {}
            stacks = sorted({*(known.get("stacks") or []), CURRENT_STACK.get()})
            ledger.record(conn, LEDGER_KIND, key, {**known, "stacks": stacks}, replace=True)
        return known

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        owner, schema, roles = inputs["owner"], inputs["schema"], inputs["roles"]
        previous = self._read(db, owner, schema, roles)
        known = self._register(db, inputs, {"previous": previous, "roles": roles})
        # An earlier run's record (killed after closing), or another stack's, holds what was there before it.
        return f"{owner}.{schema}", {**inputs, "previous": known.get("previous") or previous}

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        previous = state.get("previous") or {}
        self._register(db, inputs, {"previous": previous, "roles": inputs["roles"]})
        return {**inputs, "previous": previous}

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        owner, schema = state["owner"], state["schema"]
        previous: dict[str, dict[str, list[str]]] = state.get("previous") or {}
        key = f"{owner}.{schema}"
        with write_transaction(db) as conn:
            known = ledger.read(conn, LEDGER_KIND, key) or {}
            others = [s for s in known.get("stacks") or [] if s != CURRENT_STACK.get()]
            if others:
                # The defaults stay closed for the stacks still using them; the last one gives them back.
                ledger.record(conn, LEDGER_KIND, key, {**known, "stacks": others}, replace=True)
                users = ", ".join(others)
                log(Notice(f"left the default privileges of {owner} in {schema} closed: stack(s) {users} use them"))
                return
            ledger.forget(conn, LEDGER_KIND, key)
            for object_type, by_role in previous.items():
                if object_type not in render.DEFAULT_ACL_OBJECTS:
                    continue
                for role, privileges in by_role.items():
                    conn.execute(render.alter_default_privileges(owner, schema, object_type, role, (), grant=False))
                    if privileges:
                        conn.execute(
                            render.alter_default_privileges(owner, schema, object_type, role, privileges, grant=True)
                        )
        ledger.tidy(db)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        split_id(resource_id, 2, "postgres.public")
        if not state:
            raise not_importable(
                "DefaultPrivilegesBaseline",
                "it holds the default privileges found before a stack closed them, which only that stack saw",
            )
        return state, inputs
