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

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from supabase_access.model.access_model import COLUMN_PRIVILEGES
from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import (
    DatabaseResource,
    InputError,
    Log,
    Notice,
    compare_fields,
    identifier,
    missing_table,
    split_id,
)
from supabase_access.provider.private_schema import table_columns
from supabase_access.provider.specs import RlsFlags
from supabase_access.provider.specs import RowLevelSecurityInputs as Inputs
from supabase_access.provider.specs import RowLevelSecurityState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction

# The ledger's record of a table before the stack first changed it: its RLS flags and the
# privileges the API roles held.
LEDGER_KIND = "rls-baseline"
# What a state without `previous` (never applied) restores: RLS on, not forced.
ENABLED = RlsFlags(enabled=True, force=False)


@dataclass(frozen=True, kw_only=True)
class RlsRecord(RlsFlags):
    """The ledger's record of a table before the stack: its flags and what the roles held (role -> privileges)."""

    privileges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _table_state(db: Database, schema: str, table: str) -> catalog.RlsState:
    with db.connection() as conn:
        state = catalog.read_rls(conn, schema, table)
    if state is None:
        raise missing_table("table", schema, table)
    return state


class RowLevelSecurity(DatabaseResource[Inputs, State]):
    spec = specs.ROW_LEVEL_SECURITY

    def normalize(self, inputs: Inputs) -> Inputs:
        roles = sorted({identifier(r, "revokeUnguardedFrom") for r in inputs.revoke_unguarded_from})
        return replace(
            inputs,
            schema=identifier(inputs.schema, "schema"),
            table=identifier(inputs.table, "table"),
            revoke_unguarded_from=tuple(roles),
            revoke_undeclared=_undeclared(inputs.revoke_undeclared or {}) or None,
            withheld_columns=_withheld(inputs.withheld_columns or {}) or None,
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        _table_state(db, checked.schema, checked.table)
        withheld = checked.withheld_columns or {}
        with db.connection() as conn:
            missing = catalog.missing_roles(conn, list(checked.revoke_unguarded_from))
            missing_undeclared = catalog.missing_roles(conn, list(checked.revoke_undeclared or {}))
            missing_withheld = catalog.missing_roles(conn, list(withheld))
            # Only a table with column rules pays for reading its columns.
            columns = table_columns(conn, checked.schema, checked.table) if withheld else {}
        if missing:
            raise InputError("revokeUnguardedFrom", f"revokeUnguardedFrom: role {', '.join(missing)} does not exist")
        if missing_undeclared:
            raise InputError(
                "revokeUndeclared", f"revokeUndeclared: role {', '.join(missing_undeclared)} does not exist"
            )
        if missing_withheld:
            raise InputError("withheldColumns", f"withheldColumns: role {', '.join(missing_withheld)} does not exist")
        unknown = sorted({c for by in withheld.values() for cols in by.values() for c in cols} - set(columns))
        if unknown:
            raise InputError(
                "withheldColumns",
                f"withheldColumns: {checked.schema}.{checked.table} has no column {', '.join(unknown)}",
            )

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        schema, table = inputs.schema, inputs.table
        roles = list(inputs.revoke_unguarded_from)
        undeclared = _plain(inputs.revoke_undeclared)
        withheld = inputs.withheld_columns or {}
        with db.connection() as conn:
            live = catalog.read_rls(conn, schema, table)
            holders = catalog.roles_holding_unguarded(conn, schema, table, roles) if live else []
            held_again = catalog.roles_holding(conn, schema, table, undeclared) if live and undeclared else []
            columns_again = catalog.column_privileges_held(conn, schema, table, withheld) if live else {}
        if live is None:
            raise missing_table("table", schema, table)
        changes = compare_fields(
            "", {"enabled": live.enabled, "force": live.forced}, {"enabled": True, "force": inputs.force}
        )
        if inputs.revoke_unguarded_from != state.revoke_unguarded_from or holders:
            changes["revokeUnguardedFrom"] = "update"
        if undeclared != _plain(state.revoke_undeclared) or held_again:
            changes["revokeUndeclared"] = "update"
        if withheld != (state.withheld_columns or {}) or columns_again:
            changes["withheldColumns"] = "update"
        return changes

    def _apply(self, db: Database, inputs: Inputs, *, baseline: bool = False) -> catalog.RlsState:
        """Set RLS on (and FORCE as asked) and take the unguarded privileges, in one transaction; returns
        the state before.

        `baseline` (the first create): the state before the stack (flags and the API roles'
        privileges), recorded in the ledger in this same transaction, or the record an interrupted
        earlier run left (the first stands). Otherwise a role of `revokeUnguardedFrom` the record lacks
        (added since) is recorded now, before anything of it changes.
        """
        schema, table = inputs.schema, inputs.table
        roles = list(inputs.revoke_unguarded_from)
        key = f"{schema}.{table}"
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            if baseline:
                ledger.prepare(conn)  # the private schema's lock after the table's
            before = catalog.read_rls(conn, schema, table)
            assert before is not None
            if baseline:
                found = {r: tuple(catalog.read_table_privileges(conn, r, schema, [table])[table]) for r in roles}
                ledger.record(
                    conn, LEDGER_KIND, key, RlsRecord(enabled=before.enabled, force=before.forced, privileges=found)
                )
                recorded = ledger.read_as(conn, LEDGER_KIND, key, RlsRecord) or RlsRecord()
                before = catalog.RlsState(recorded.enabled, recorded.force)
            else:
                _record_new_roles(conn, key, schema, table, roles)
            # Order matters only across transactions; inside one, no request sees the steps.
            conn.execute(render.set_row_level_security(schema, table, enabled=True))
            conn.execute(render.set_force_row_level_security(schema, table, force=inputs.force))
            if roles:
                conn.execute(render.revoke(roles, schema, table, catalog.unguarded_privileges(conn)))
            # Only what a role holds table-wide: a REVOKE on the table takes the same privilege from
            # every column too, which would undo the column Grants of a table with column rules.
            held = catalog.privileges_held(conn, schema, table, _plain(inputs.revoke_undeclared))
            for role, privileges in held.items():
                conn.execute(render.revoke([role], schema, table, privileges))
            # A column-level grant of a withheld column (by hand): no column Grant lists it.
            granted = catalog.column_privileges_held(conn, schema, table, inputs.withheld_columns or {})
            for role, by_privilege in granted.items():
                for privilege, columns in by_privilege.items():
                    conn.execute(render.revoke_columns(role, schema, table, privilege, columns))
            return before

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        before = self._apply(db, inputs, baseline=True)
        previous = RlsFlags(enabled=before.enabled, force=before.forced)
        return f"{inputs.schema}.{inputs.table}", State.taking(inputs, enabled=True, previous=previous)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        self._apply(db, inputs)
        return State.taking(inputs, enabled=True, previous=state.previous or ENABLED)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        previous = state.previous or ENABLED
        schema, table = state.schema, state.table
        key = f"{schema}.{table}"
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            other = claims.other_stack(conn, schema, table)
            if other is not None:
                _leave_to(conn, other, schema, table, log)
                return
            if catalog.read_rls(conn, schema, table) is not None:
                recorded = ledger.read_as(conn, LEDGER_KIND, key, RlsRecord) or RlsRecord()
                conn.execute(render.set_row_level_security(schema, table, enabled=previous.enabled))
                conn.execute(render.set_force_row_level_security(schema, table, force=previous.force))
                # The table's Grants are gone by now (they depend on this resource): give back
                # exactly what the API roles held before the stack.
                for role, privileges in recorded.privileges.items():
                    conn.execute(render.revoke_all(role, schema, [table]))
                    if privileges:
                        conn.execute(render.grant(role, schema, [table], privileges))
            ledger.forget(conn, LEDGER_KIND, key)  # the private schema's lock after the table's
        ledger.tidy(db)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        known = state or inputs
        declared = list(known.revoke_unguarded_from) if known else []
        undeclared = _plain(known.revoke_undeclared if known else None)
        with db.connection() as conn:
            live = catalog.read_rls(conn, schema, table)
            # A declared role that holds one again shows as drift (left out), which `up` repairs.
            holders = set(catalog.roles_holding_unguarded(conn, schema, table, declared)) if live else set()
            held_again = set(catalog.roles_holding(conn, schema, table, undeclared)) if live and undeclared else set()
            withheld = (known.withheld_columns if known else None) or {}
            columns_again = catalog.column_privileges_held(conn, schema, table, withheld) if live else {}
        if live is None:
            return None
        still_revoked = {role: tuple(p) for role, p in undeclared.items() if role not in held_again}
        # A withheld column granted again shows as drift (left out), which `up` repairs.
        still_withheld = {
            role: {
                p: tuple(c for c in cols if c not in columns_again.get(role, {}).get(p, []))
                for p, cols in by_privilege.items()
            }
            for role, by_privilege in withheld.items()
        }
        read_inputs = Inputs(
            schema=schema,
            table=table,
            force=live.forced,
            revoke_unguarded_from=tuple(r for r in declared if r not in holders),
            revoke_undeclared=still_revoked or None,
            withheld_columns=still_withheld or None,
        )
        previous = state.previous if state else RlsFlags(enabled=live.enabled, force=live.forced)
        return State.taking(read_inputs, enabled=live.enabled, previous=previous), read_inputs


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
    recorded = ledger.read_as(conn, LEDGER_KIND, key, RlsRecord)
    if recorded is None:
        return
    held = dict(recorded.privileges)
    new = [r for r in roles if r not in held]
    if not new:
        return
    for role in new:
        held[role] = tuple(catalog.read_table_privileges(conn, role, schema, [table])[table])
    ledger.record(conn, LEDGER_KIND, key, replace(recorded, privileges=held), replace=True)


def _plain(undeclared: Mapping[str, tuple[str, ...]] | None) -> dict[str, list[str]]:
    return {role: list(privileges) for role, privileges in (undeclared or {}).items()}


def _undeclared(raw: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    undeclared = {}
    for role, privileges in sorted(raw.items()):
        identifier(role, "revokeUndeclared")
        # The commands a table's access kind does not give; the others go by revokeUnguardedFrom.
        if not set(privileges) <= set(catalog.GUARDED_PRIVILEGES):
            raise InputError(
                "revokeUndeclared",
                f"revokeUndeclared.{role}: expected a list of {', '.join(catalog.GUARDED_PRIVILEGES)}",
            )
        if privileges:
            undeclared[role] = tuple(sorted(set(privileges), key=catalog.GUARDED_PRIVILEGES.index))
    return undeclared


def _withheld(raw: Mapping[str, Mapping[str, tuple[str, ...]]]) -> dict[str, dict[str, tuple[str, ...]]]:
    withheld: dict[str, dict[str, tuple[str, ...]]] = {}
    for role, by_privilege in sorted(raw.items()):
        identifier(role, "withheldColumns")
        for privilege, columns in sorted(by_privilege.items()):
            if privilege not in COLUMN_PRIVILEGES:
                raise InputError(
                    "withheldColumns",
                    f"withheldColumns.{role}: expected one of {', '.join(COLUMN_PRIVILEGES)}, got {privilege}",
                )
            names = tuple(sorted({identifier(c, "withheldColumns") for c in columns}))
            if names:
                withheld.setdefault(role, {})[privilege] = names
    return withheld
