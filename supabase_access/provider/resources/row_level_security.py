"""RowLevelSecurity: RLS switched on for a table, and FORCE where asked.

It also takes from the roles in `revokeUnguardedFrom` the table privileges RLS does not guard
(every one the server knows but SELECT, INSERT, UPDATE, DELETE: TRUNCATE, REFERENCES, TRIGGER,
and MAINTAIN on PostgreSQL 17; Supabase's default privileges give them to anon and
authenticated). pulumi_postgresql.Grant revokes only the privileges it declares, so without this
`authenticated` could still empty a table. For the same reason it takes the table privileges in
`revokeUndeclared` (role -> privileges a table's access kind does not give, say INSERT on a
public-read table), which a Grant declaring only SELECT would leave in place on its first apply.
Before the stack's first change, the privileges those roles held are recorded in the ledger (in the
same transaction, the first record stands; a role added later, such as service_role for a stack made
before it was declared, is recorded at its first update, before its Grant); delete, which runs after
the table's Grants are deleted, gives exactly those back.
"""

from __future__ import annotations

from typing import Any

from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import (
    InputError,
    Log,
    Notice,
    PlainDatabaseResource,
    compare_fields,
    identifier,
    missing_table,
    split_id,
)
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction

# The ledger's record of a table before the stack first changed it: its RLS flags and the
# privileges the API roles held.
LEDGER_KIND = "rls-baseline"


def _table_state(db: Database, schema: str, table: str) -> catalog.RlsState:
    with db.connection() as conn:
        state = catalog.read_rls(conn, schema, table)
    if state is None:
        raise missing_table("table", schema, table)
    return state


class RowLevelSecurity(PlainDatabaseResource):
    spec = specs.ROW_LEVEL_SECURITY

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
        force = inputs.get("force", False)
        if not isinstance(force, bool):
            raise InputError("force", "force: expected true or false")
        revoke_from = inputs.get("revokeUnguardedFrom", [])
        if not isinstance(revoke_from, list):
            raise InputError("revokeUnguardedFrom", "revokeUnguardedFrom: expected a list of role names")
        roles = sorted({identifier({"revokeUnguardedFrom": r}, "revokeUnguardedFrom") for r in revoke_from})
        checked = {**inputs, "schema": schema, "table": table, "force": force, "revokeUnguardedFrom": roles}
        undeclared = _undeclared(inputs)
        if undeclared:
            checked["revokeUndeclared"] = undeclared
        else:
            checked.pop("revokeUndeclared", None)
        return checked

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        _table_state(db, checked["schema"], checked["table"])
        with db.connection() as conn:
            missing = catalog.missing_roles(conn, checked["revokeUnguardedFrom"])
            missing_undeclared = catalog.missing_roles(conn, list(checked.get("revokeUndeclared") or {}))
        if missing:
            raise InputError("revokeUnguardedFrom", f"revokeUnguardedFrom: role {', '.join(missing)} does not exist")
        if missing_undeclared:
            raise InputError(
                "revokeUndeclared", f"revokeUndeclared: role {', '.join(missing_undeclared)} does not exist"
            )

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        schema, table = inputs["schema"], inputs["table"]
        roles = inputs.get("revokeUnguardedFrom") or []
        undeclared = inputs.get("revokeUndeclared") or {}
        with db.connection() as conn:
            live = catalog.read_rls(conn, schema, table)
            holders = catalog.roles_holding_unguarded(conn, schema, table, roles) if live else []
            held_again = catalog.roles_holding(conn, schema, table, undeclared) if live and undeclared else []
        if live is None:
            raise missing_table("table", schema, table)
        changes = compare_fields(
            "", {"enabled": live.enabled, "force": live.forced}, {"enabled": True, "force": inputs["force"]}
        )
        if roles != (state.get("revokeUnguardedFrom") or []) or holders:
            changes["revokeUnguardedFrom"] = "update"
        if undeclared != (state.get("revokeUndeclared") or {}) or held_again:
            changes["revokeUndeclared"] = "update"
        return changes

    def _apply(
        self,
        db: Database,
        schema: str,
        table: str,
        *,
        enabled: bool,
        force: bool,
        revoke_from: list[str],
        undeclared: dict[str, list[str]] | None = None,
        baseline: bool = False,
    ) -> catalog.RlsState:
        """Set RLS (and FORCE) and take the unguarded privileges, in one transaction; returns the state before.

        `baseline` (the first create): the state before the stack (flags and the API roles'
        privileges), recorded in the ledger in this same transaction, or the record an interrupted
        earlier run left (the first stands). Otherwise a role of `revoke_from` the record lacks
        (added since) is recorded now, before anything of it changes.
        """
        roles = list(revoke_from)
        key = f"{schema}.{table}"
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            if baseline:
                ledger.prepare(conn)  # the private schema's lock after the table's
            before = catalog.read_rls(conn, schema, table)
            assert before is not None
            if baseline:
                held = {r: list(catalog.read_table_privileges(conn, r, schema, [table])[table]) for r in roles}
                ledger.record(
                    conn, LEDGER_KIND, key, {"enabled": before.enabled, "force": before.forced, "privileges": held}
                )
                recorded = ledger.read(conn, LEDGER_KIND, key) or {}
                before = catalog.RlsState(bool(recorded.get("enabled")), bool(recorded.get("force")))
            else:
                _record_new_roles(conn, key, schema, table, roles)
            # Order matters only across transactions; inside one, no request sees the steps.
            conn.execute(render.set_row_level_security(schema, table, enabled=enabled))
            conn.execute(render.set_force_row_level_security(schema, table, force=force))
            if revoke_from:
                conn.execute(render.revoke(revoke_from, schema, table, catalog.unguarded_privileges(conn)))
            # Only what a role holds table-wide: a REVOKE on the table takes the same privilege from
            # every column too, which would undo the column Grants of a table with column rules.
            for role, privileges in catalog.privileges_held(conn, schema, table, undeclared or {}).items():
                conn.execute(render.revoke([role], schema, table, privileges))
            return before

    def _outputs(self, inputs: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        revoked = inputs.get("revokeUnguardedFrom", [])
        keys = ("schema", "table", "force")
        outputs = {
            **{k: inputs[k] for k in keys},
            "revokeUnguardedFrom": revoked,
            "enabled": True,
            "previous": previous,
        }
        if inputs.get("revokeUndeclared"):
            outputs["revokeUndeclared"] = inputs["revokeUndeclared"]
        return outputs

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        schema, table = inputs["schema"], inputs["table"]
        before = self._apply(
            db,
            schema,
            table,
            enabled=True,
            force=inputs["force"],
            revoke_from=inputs.get("revokeUnguardedFrom", []),
            undeclared=inputs.get("revokeUndeclared"),
            baseline=True,
        )
        return f"{schema}.{table}", self._outputs(inputs, {"enabled": before.enabled, "force": before.forced})

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        schema, table = inputs["schema"], inputs["table"]
        self._apply(
            db,
            schema,
            table,
            enabled=True,
            force=inputs["force"],
            revoke_from=inputs.get("revokeUnguardedFrom", []),
            undeclared=inputs.get("revokeUndeclared"),
        )
        return self._outputs(inputs, state.get("previous") or {"enabled": True, "force": False})

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        previous = state.get("previous") or {"enabled": True, "force": False}
        schema, table = state["schema"], state["table"]
        key = f"{schema}.{table}"
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            other = claims.other_stack(conn, schema, table)
            if other is not None:
                _leave_to(conn, other, schema, table, log)
                return
            if catalog.read_rls(conn, schema, table) is not None:
                recorded = ledger.read(conn, LEDGER_KIND, key) or {}
                conn.execute(render.set_row_level_security(schema, table, enabled=bool(previous["enabled"])))
                conn.execute(render.set_force_row_level_security(schema, table, force=bool(previous["force"])))
                # The table's Grants are gone by now (they depend on this resource): give back
                # exactly what the API roles held before the stack.
                for role, privileges in (recorded.get("privileges") or {}).items():
                    conn.execute(render.revoke_all(role, schema, [table]))
                    if privileges:
                        conn.execute(render.grant(role, schema, [table], privileges))
            ledger.forget(conn, LEDGER_KIND, key)  # the private schema's lock after the table's
        ledger.tidy(db)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        declared = list((state or inputs or {}).get("revokeUnguardedFrom") or [])
        undeclared = dict((state or inputs or {}).get("revokeUndeclared") or {})
        with db.connection() as conn:
            live = catalog.read_rls(conn, schema, table)
            # A declared role that holds one again shows as drift (left out), which `up` repairs.
            holders = set(catalog.roles_holding_unguarded(conn, schema, table, declared)) if live else set()
            held_again = set(catalog.roles_holding(conn, schema, table, undeclared)) if live and undeclared else set()
        if live is None:
            return None
        previous = state.get("previous") if state else {"enabled": live.enabled, "force": live.forced}
        revoked = [r for r in declared if r not in holders]
        outputs = {
            "schema": schema,
            "table": table,
            "enabled": live.enabled,
            "force": live.forced,
            "revokeUnguardedFrom": revoked,
            "previous": previous,
        }
        read_inputs = {"schema": schema, "table": table, "force": live.forced, "revokeUnguardedFrom": revoked}
        still_revoked = {role: privileges for role, privileges in undeclared.items() if role not in held_again}
        if still_revoked:
            outputs["revokeUndeclared"] = read_inputs["revokeUndeclared"] = still_revoked
        return outputs, read_inputs


def _leave_to(conn: Any, other: str, schema: str, table: str, log: Log) -> None:
    """The table is another stack's (a stack made before claims shared it): leave its RLS and
    baseline, and give its roles back what that stack grants, which this stack's Grants (deleted
    just before, pulumi_postgresql's, unmarked) revoked."""
    if catalog.read_rls(conn, schema, table) is not None:
        for role, privileges in claims.owner_grants(conn, schema, table).items():
            conn.execute(render.revoke_all(role, schema, [table]))
            if privileges:
                conn.execute(render.grant(role, schema, [table], privileges))
    log(Notice(f"left {schema}.{table} as it is: stack {other!r} manages it"))


def _record_new_roles(conn: Any, key: str, schema: str, table: str, roles: list[str]) -> None:
    """Add to the table's baseline the privileges of the roles it does not hold yet (a role the stack
    started to grant after its first up: service_role, for a stack made before it did)."""
    recorded = ledger.read(conn, LEDGER_KIND, key)
    if recorded is None:
        return
    held = dict(recorded.get("privileges") or {})
    new = [r for r in roles if r not in held]
    if not new:
        return
    for role in new:
        held[role] = list(catalog.read_table_privileges(conn, role, schema, [table])[table])
    ledger.record(conn, LEDGER_KIND, key, {**recorded, "privileges": held}, replace=True)


def _undeclared(inputs: dict[str, Any]) -> dict[str, list[str]]:
    raw = inputs.get("revokeUndeclared") or {}
    if not isinstance(raw, dict):
        raise InputError("revokeUndeclared", "revokeUndeclared: expected a map of role to table privileges")
    undeclared = {}
    for role, privileges in sorted(raw.items()):
        identifier({"revokeUndeclared": role}, "revokeUndeclared")
        # The commands a table's access kind does not give; the others go by revokeUnguardedFrom.
        if not isinstance(privileges, list) or not set(privileges) <= set(catalog.GUARDED_PRIVILEGES):
            raise InputError(
                "revokeUndeclared",
                f"revokeUndeclared.{role}: expected a list of {', '.join(catalog.GUARDED_PRIVILEGES)}",
            )
        if privileges:
            undeclared[role] = sorted(set(privileges), key=catalog.GUARDED_PRIVILEGES.index)
    return undeclared
