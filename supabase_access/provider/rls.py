"""RowLevelSecurity: RLS switched on for a table, and FORCE where asked."""

from __future__ import annotations

from typing import Any

from supabase_access import catalog
from supabase_access import sql as render
from supabase_access.provider import ledger
from supabase_access.provider.base import (
    InputError,
    Log,
    ManagedResource,
    compare_fields,
    identifier,
    lock_tables,
    missing_table,
    split_id,
    write_transaction,
)
from supabase_access.provider.database import Database

# The ledger's record of a table's RLS flags before the stack first changed them.
LEDGER_KIND = "rls-baseline"


def _table_state(db: Database, schema: str, table: str) -> catalog.RlsState:
    with db.connection() as conn:
        state = catalog.read_rls(conn, schema, table)
    if state is None:
        raise missing_table("table", schema, table)
    return state


class RowLevelSecurity(ManagedResource):
    token = "supabase-access:index:RowLevelSecurity"
    replace_on = ("schema", "table")

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
        force = inputs.get("force", False)
        if not isinstance(force, bool):
            raise InputError("force", "force: expected true or false")
        return {**inputs, "schema": schema, "table": table, "force": force}

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        _table_state(db, checked["schema"], checked["table"])

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        live = _table_state(db, inputs["schema"], inputs["table"])
        return compare_fields(
            "", {"enabled": live.enabled, "force": live.forced}, {"enabled": True, "force": inputs["force"]}
        )

    def _apply(
        self, db: Database, schema: str, table: str, *, enabled: bool, force: bool, baseline: bool = False
    ) -> catalog.RlsState:
        """Set RLS (and FORCE) in one transaction; returns the state before.

        `baseline` (the first create): the state before the stack, recorded in the ledger in this
        same transaction, or the record an interrupted earlier run left (the first stands).
        """
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            if baseline:
                ledger.prepare(conn)  # the private schema's lock after the table's
            before = catalog.read_rls(conn, schema, table)
            assert before is not None
            if baseline:
                key = f"{schema}.{table}"
                ledger.record(conn, LEDGER_KIND, key, {"enabled": before.enabled, "force": before.forced})
                recorded = ledger.read(conn, LEDGER_KIND, key) or {}
                before = catalog.RlsState(bool(recorded.get("enabled")), bool(recorded.get("force")))
            # Order matters only across transactions; inside one, no request sees the steps.
            conn.execute(render.set_row_level_security(schema, table, enabled=enabled))
            conn.execute(render.set_force_row_level_security(schema, table, force=force))
            return before

    def _outputs(self, schema: str, table: str, force: bool, previous: dict[str, Any]) -> dict[str, Any]:
        return {"schema": schema, "table": table, "enabled": True, "force": force, "previous": previous}

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        schema, table, force = inputs["schema"], inputs["table"], inputs["force"]
        before = self._apply(db, schema, table, enabled=True, force=force, baseline=True)
        return f"{schema}.{table}", self._outputs(
            schema, table, force, {"enabled": before.enabled, "force": before.forced}
        )

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        schema, table, force = inputs["schema"], inputs["table"], inputs["force"]
        self._apply(db, schema, table, enabled=True, force=force)
        return self._outputs(schema, table, force, state.get("previous") or {"enabled": True, "force": False})

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        previous = state.get("previous") or {"enabled": True, "force": False}
        schema, table = state["schema"], state["table"]
        with db.connection() as conn:
            missing = catalog.read_rls(conn, schema, table) is None
        if not missing:
            self._apply(db, schema, table, enabled=bool(previous["enabled"]), force=bool(previous["force"]))
        with write_transaction(db) as conn:
            ledger.forget(conn, LEDGER_KIND, f"{schema}.{table}")
        ledger.tidy(db)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        with db.connection() as conn:
            live = catalog.read_rls(conn, schema, table)
        if live is None:
            return None
        previous = state.get("previous") if state else {"enabled": live.enabled, "force": live.forced}
        outputs = {
            "schema": schema,
            "table": table,
            "enabled": live.enabled,
            "force": live.forced,
            "previous": previous,
        }
        return outputs, {"schema": schema, "table": table, "force": live.forced}
